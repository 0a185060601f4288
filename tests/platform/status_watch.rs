//! `enclave status --watch`: on a pseudo-terminal the frame is redrawn in place with coloured
//! state words; into a pipe each frame is plain text. Both stop cleanly on a signal.

use crate::common;
use crate::common::assert_contains;

use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::don::free_range;
use common::harness::{free_port, wait_until, Enclave};
use common::has_line;
use common::live_view::{collect, text};
use enclave::paths::Root;
use enclave::service::state::{Kind, ServiceState, StateDir, Status};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

/// A root with a signed configuration (every local port free: nothing answers) and the state
/// files of two services, as a supervisor would leave them.
fn enclave_root() -> Enclave {
    let e = Enclave::new();
    let api_base = free_range(5);
    let aggregator = free_port();
    e.configure(|s| {
        s["ports"]["nodeApiBase"] = json!(api_base);
        s["priceAggregatorConfig"]["port"] = json!(aggregator);
    });
    let dir = StateDir::new(&Root::new(&e.root));
    dir.reset().expect("state dir");
    let mut postgres = ServiceState::new("postgres", Kind::Longrun);
    postgres.status = Status::Up;
    postgres.pid = Some(4242);
    let mut keys = ServiceState::new("node-keys", Kind::Oneshot);
    keys.status = Status::Failed;
    dir.write(&postgres).expect("write");
    dir.write(&keys).expect("write");
    e
}

fn watch(e: &Enclave, stdout: Stdio) -> Child {
    common::enclave_at(&e.root)
        .args(["status", "--watch", "--interval-ms", "200"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("enclave status --watch starts")
}

/// The text a terminal shows: escape sequences (`ESC [ … letter`) and control characters removed.
fn visible(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

fn stop(mut child: Child, signal: Signal) -> i32 {
    kill(Pid::from_raw(child.id() as i32), signal).expect("signal");
    let mut code = None;
    wait_until(T, "the live view to exit", || {
        code = child.try_wait().expect("wait").map(|s| s.code());
        code.is_some()
    });
    code.flatten().expect("exited with a code, not killed")
}

#[test]
fn on_a_terminal_the_view_redraws_in_place_with_colour_and_stops_on_ctrl_c() {
    let e = enclave_root();
    let size = nix::pty::Winsize {
        ws_row: 60,
        ws_col: 60,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
    let child = watch(&e, Stdio::from(pty.slave));
    let screen = collect(std::fs::File::from(pty.master));
    wait_until(T, "two frames on the terminal", || {
        text(&screen).matches("\x1b[Henclave at ").count() >= 2
    });
    let shown = text(&screen);
    assert!(shown.starts_with("\x1b[2J"), "{shown:?}");
    assert!(shown.contains("\x1b[32mup\x1b[0m"), "{shown:?}");
    assert!(shown.contains("\x1b[31mfailed\x1b[0m"), "{shown:?}");
    // Each line clears its rest (the terminal turns "\n" into "\r\n").
    assert!(shown.contains("\x1b[K\r\n"), "{shown:?}");
    assert!(shown.contains("not answering"), "{shown:?}");
    let widest = shown.lines().map(|l| visible(l).chars().count()).max();
    // The services table is wider than 60 columns: its lines are cut, none wraps.
    assert_eq!(widest, Some(60), "lines are cut at the terminal's width");
    assert_eq!(stop(child, Signal::SIGINT), 0);
}

#[test]
fn into_a_pipe_each_frame_is_plain_text() {
    let e = enclave_root();
    let mut child = watch(&e, Stdio::piped());
    let out = collect(child.stdout.take().expect("stdout"));
    wait_until(T, "two plain frames", || {
        text(&out).matches("enclave at ").count() >= 2
    });
    let shown = text(&out);
    assert!(!shown.contains('\x1b'), "{shown:?}");
    let first = shown.split("\n\n\n").next().expect("frame");
    assert_contains(first, "SERVICE ");
    assert!(has_line(first, "postgres", &["  up  ", "4242"]), "{first}");
    assert!(has_line(first, "node-keys", &["failed"]), "{first}");
    assert!(has_line(first, "node-2", &["not answering"]), "{first}");
    assert_contains(first, "EVIDENCE  attestation not published yet");
    assert_eq!(stop(child, Signal::SIGTERM), 0);
}

#[test]
fn a_configuration_that_does_not_verify_is_refused_with_its_exit_code() {
    let e = enclave_root();
    let path = e.config_path();
    let tampered = std::fs::read_to_string(&path).expect("config").replace(
        "\"pgDatabase\": \"chainlink_node\"",
        "\"pgDatabase\": \"other_node\"",
    );
    std::fs::write(&path, tampered).expect("write");
    let out = common::enclave_at(&e.root)
        .args(["status", "--watch"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert!(out.stdout.is_empty());
}
