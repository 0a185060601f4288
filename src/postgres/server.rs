//! `enclave postgres run`: becomes the postmaster. The process drops to the server's account and
//! execs `postgres`, so the pid the supervisor watches is the postmaster itself (no `su`
//! wrapper) and the down signal reaches it directly.
//!
//! Readiness: a small watcher, detached by a double fork so that it is not the postmaster's
//! child (the postmaster would take its exit for a crashed backend), polls until the server
//! accepts connections and then writes the newline on the notification descriptor.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::kill;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

use super::account::Account;
use super::binaries::Binaries;
use super::bootstrap::{inspect, DataDir};
use super::error::PgError;
use super::layout::{Layout, LISTEN_ADDRESS};
use super::probe::accepts_connections;

const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Prepares and execs the server; returns only on failure.
pub fn exec_server(layout: &Layout, binaries: &Binaries, notify_fd: Option<i32>) -> PgError {
    match prepare(layout, binaries) {
        Ok(account) => {
            if let Some(fd) = notify_fd {
                if let Err(e) = spawn_readiness_watcher(layout.port, fd) {
                    return e;
                }
            }
            if let Err(e) = account.become_it() {
                return e;
            }
            tracing::info!(dir = %layout.data_dir.display(), port = layout.port, "starting PostgreSQL");
            let error = Command::new(binaries.postgres())
                .arg("-D")
                .arg(&layout.data_dir)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("LC_ALL", "C")
                .exec();
            PgError::io("cannot exec", &binaries.postgres())(error)
        }
        Err(e) => e,
    }
}

fn prepare(layout: &Layout, binaries: &Binaries) -> Result<Account, PgError> {
    match inspect(&layout.data_dir)? {
        DataDir::Cluster { .. } => {}
        _ => {
            return Err(PgError::NotBootstrapped(
                layout.data_dir.display().to_string(),
            ))
        }
    }
    let account = Account::for_server()?;
    let socket = &layout.socket_dir;
    account.private_dir(
        socket,
        "cannot create socket directory",
        &binaries.postgres(),
    )?;
    Ok(account)
}

/// Double fork: the grandchild is re-parented to the supervisor (PID 1 or subreaper), which
/// reaps it. Called while this process is still single-threaded, so forking is sound.
fn spawn_readiness_watcher(port: u16, notify_fd: i32) -> Result<(), PgError> {
    let server = Pid::this();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    debug_assert_eq!(LISTEN_ADDRESS, "127.0.0.1");
    // SAFETY: no other thread exists yet in this process (see above).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            let _ = waitpid(child, None);
            // The postmaster must not hold the readiness pipe: only the watcher writes to it.
            // SAFETY: closing a descriptor number we were handed for this purpose.
            unsafe { libc::close(notify_fd) };
            Ok(())
        }
        Ok(ForkResult::Child) => {
            // SAFETY: as above; the intermediate child only forks again and exits.
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                watch(server, addr, notify_fd);
            }
            // SAFETY: leave without running destructors shared with the parent.
            unsafe { libc::_exit(0) }
        }
        Err(e) => Err(PgError::Privileges(format!(
            "cannot fork the readiness watcher: {e}"
        ))),
    }
}

fn watch(server: Pid, addr: SocketAddr, notify_fd: i32) -> ! {
    loop {
        if accepts_connections(addr, Duration::from_secs(1)) {
            // SAFETY: writing one byte to our own descriptor.
            unsafe { libc::write(notify_fd, b"\n".as_ptr().cast(), 1) };
            break;
        }
        if kill(server, None).is_err() {
            // The server is gone; whoever restarts it starts a new watcher.
            break;
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
    // SAFETY: the watcher owns nothing that needs dropping.
    unsafe { libc::_exit(0) }
}
