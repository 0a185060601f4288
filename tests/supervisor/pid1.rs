//! PID-1 duties: orphans are reaped (as real PID 1 in a new PID namespace, and as a child
//! subreaper outside it), and signals to PID 1 shut the tree down cleanly.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::harness::{wait_until, Enclave};
use enclave::service::state::Status;
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(30);

/// (pid, state) of every process whose parent is `parent`.
fn children_of(parent: u32) -> Vec<(u32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may contain spaces; the fields after its closing paren do not.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split(' ');
            let state = fields.next()?.chars().next()?;
            let ppid: u32 = fields.next()?.parse().ok()?;
            (ppid == parent).then_some((pid, state))
        })
        .collect()
}

/// A service that leaves an orphan behind: its grandchild outlives its parent and exits later.
fn orphan_maker(e: &Enclave) {
    let done = e.marker("orphan-done");
    e.longrun(
        "orphans",
        &format!(
            "sh -c '(sleep 0.3; touch {}) &'\nexec sleep 1000",
            done.display()
        ),
        &[],
    );
}

fn assert_orphan_reaped(e: &Enclave, init_pid: u32) {
    wait_until(T, "the orphan to finish", || {
        e.marker("orphan-done").exists()
    });
    wait_until(T, "no zombie children of init", || {
        children_of(init_pid).iter().all(|(_, state)| *state != 'Z')
    });
}

#[test]
fn as_a_subreaper_outside_pid_1_orphans_are_reaped() {
    let mut e = Enclave::new();
    orphan_maker(&e);
    e.start(&[]);
    e.wait_status("orphans", Status::Up, T);
    assert_orphan_reaped(&e, e.pid());
    e.stop_cleanly(T);
}

fn unshare_available() -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("not running as root".into());
    }
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output()
        .map_err(|e| format!("unshare not runnable: {e}"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!(
            "unshare --pid --fork --mount-proc failed: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ))
    }
}

#[test]
fn as_real_pid_1_orphans_are_reaped_and_sigterm_stops_cleanly() {
    if let Err(reason) = unshare_available() {
        eprintln!("SKIPPED as_real_pid_1_orphans_are_reaped_and_sigterm_stops_cleanly: {reason}");
        return;
    }
    let mut e = Enclave::new();
    orphan_maker(&e);
    let pid_file = e.marker("pid1");
    e.service(
        "whoami",
        "oneshot",
        &[("up", &format!("echo $PPID > {}", pid_file.display()))],
    );
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc", "--"])
        .arg(env!("CARGO_BIN_EXE_enclave"));
    e.start_with(command, &[]);
    e.wait_status("orphans", Status::Up, T);
    e.wait_status("whoami", Status::Finished, T);
    // Inside the namespace the oneshot's parent is init itself: PID 1.
    assert_eq!(e.read_marker("pid1").trim(), "1");
    let init = children_of(e.pid())
        .first()
        .map(|(pid, _)| *pid)
        .expect("unshare's child is init");
    assert!(Path::new(&format!("/proc/{init}")).exists());
    assert_orphan_reaped(&e, init);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init as i32), Signal::SIGTERM)
        .expect("signal");
    assert_eq!(e.wait_exit(T), 0, "{}", e.logs());
    assert_eq!(e.state("orphans").expect("state").status, Status::Down);
}

/// Where in the boot a SIGTERM lands.
#[derive(Debug, Clone, Copy)]
enum BootPhase {
    /// As soon as init handles SIGTERM: while the configuration is read and verified.
    Verification,
    /// Once the configuration is verified: keys, identity.
    KeysAndIdentity,
    /// While init waits (up to 30 s) for an attestation that hangs.
    AttestationWait,
}

/// Whether `pid` has a handler for SIGTERM (the `SigCgt` mask in /proc).
fn catches_sigterm(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (Signal::SIGTERM as u64 - 1)) != 0)
}

/// Boots init (as PID 1 of a new namespace when `pid1`), sends SIGTERM in `phase`, and checks
/// that init ends promptly with 0 and started nothing.
fn sigterm_during_the_boot(phase: BootPhase, pid1: bool) {
    let mut e = Enclave::new();
    e.recorder("innocent");
    let marker = e.marker("innocent");
    let mut command = if pid1 {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", "--"])
            .arg(env!("CARGO_BIN_EXE_enclave"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_enclave"))
    };
    if let BootPhase::AttestationWait = phase {
        // An RTMR3 "device" that never answers: opening a FIFO for reading waits for a writer,
        // as a hung kernel interface would.
        let rtmr3 = e.root.join("hung-rtmr3");
        nix::unistd::mkfifo(&rtmr3, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
        command.env("ENCLAVE_RTMR3_PATH", &rtmr3);
    }
    e.start_with(command, &[]);
    let init = if pid1 {
        let mut init = None;
        wait_until(T, "unshare's child, init", || {
            init = children_of(e.pid()).first().map(|(pid, _)| *pid);
            init.is_some()
        });
        init.expect("init")
    } else {
        e.pid()
    };
    match phase {
        BootPhase::Verification => {
            // Before the handler, SIGTERM would kill init, or be dropped by PID 1.
            wait_until(T, "init to handle SIGTERM", || catches_sigterm(init));
        }
        BootPhase::KeysAndIdentity => wait_until(T, "verification", || {
            e.logs().contains("configuration verified")
        }),
        BootPhase::AttestationWait => {
            wait_until(T, "the identity", || e.logs().contains("enclave identity"))
        }
    }
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init as i32), Signal::SIGTERM)
        .expect("signal");
    let code = e.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 0, "{phase:?}: {}", e.logs());
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{phase:?}: init took {:?}",
        sent.elapsed()
    );
    assert!(!marker.exists(), "{phase:?}: a service started");
    let logs = e.logs();
    assert!(
        logs.contains("stop requested") || logs.contains("starting nothing"),
        "{phase:?}: {logs}"
    );
}

#[test]
fn a_sigterm_ends_init_promptly_in_every_phase_of_the_boot() {
    for phase in [
        BootPhase::Verification,
        BootPhase::KeysAndIdentity,
        BootPhase::AttestationWait,
    ] {
        sigterm_during_the_boot(phase, false);
    }
}

#[test]
fn a_sigterm_ends_init_as_real_pid_1_promptly_in_every_phase_of_the_boot() {
    if let Err(reason) = unshare_available() {
        eprintln!(
            "SKIPPED a_sigterm_ends_init_as_real_pid_1_promptly_in_every_phase_of_the_boot: {reason}"
        );
        return;
    }
    for phase in [
        BootPhase::Verification,
        BootPhase::KeysAndIdentity,
        BootPhase::AttestationWait,
    ] {
        sigterm_during_the_boot(phase, true);
    }
}
