//! Shutdown: reverse dependency order, grace period then SIGKILL, oneshots' `down`, exit 0;
//! exits caused by our own shutdown are not crashes.

use crate::common;

use std::time::{Duration, Instant};

use common::harness::Enclave;
use enclave::service::state::Status;
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(30);

/// A longrun that idles and runs `action` on `signal` (`trap '<action>' <signal>`).
fn trapping(e: &Enclave, name: &str, action: &str, signal: &str, extra: &[(&str, &str)]) {
    e.longrun(
        name,
        &format!("trap '{action}' {signal}\nwhile true; do sleep 0.05; done"),
        extra,
    );
}

/// A longrun that writes "stop <name>" to `log` when it receives TERM and exits 0.
fn polite(e: &Enclave, name: &str, log: &std::path::Path) {
    let action = format!("echo stop {name} >> {}; exit 0", log.display());
    trapping(e, name, &action, "TERM", &[]);
}

#[test]
fn sigterm_stops_services_in_reverse_dependency_order_and_exits_0() {
    let mut e = Enclave::new();
    let log = e.marker("stops");
    polite(&e, "database", &log);
    polite(&e, "api", &log);
    e.depends("api", "database");
    polite(&e, "frontend", &log);
    e.depends("frontend", "api");
    e.service(
        "setup",
        "oneshot",
        &[
            ("up", "true"),
            ("down", &format!("echo stop setup >> {}", log.display())),
        ],
    );
    e.depends("database", "setup");
    e.start(&[]);
    e.wait_status("frontend", Status::Up, T);
    e.stop_cleanly(T);
    assert_eq!(
        e.read_marker("stops"),
        "stop frontend\nstop api\nstop database\nstop setup\n"
    );
    for name in ["frontend", "api", "database", "setup"] {
        assert_eq!(e.state(name).expect("state").status, Status::Down, "{name}");
    }
}

#[test]
fn a_process_ignoring_term_is_killed_after_timeout_down() {
    let mut e = Enclave::new();
    trapping(&e, "stubborn", "", "TERM", &[("timeout-down", "500")]);
    e.start(&[]);
    e.wait_status("stubborn", Status::Up, T);
    let asked = Instant::now();
    e.stop_cleanly(T);
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "killed before the grace period: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "grace period not enforced: {took:?}"
    );
    let state = e.state("stubborn").expect("state");
    assert_eq!(
        state.last_exit,
        Some(enclave::service::state::Exit::Signal(9))
    );
}

#[test]
fn down_signal_is_what_the_service_gets() {
    let mut e = Enclave::new();
    let log = e.marker("got");
    let action = format!("echo INT >> {}; exit 0", log.display());
    trapping(
        &e,
        "wants-int",
        &action,
        "INT",
        &[("down-signal", "SIGINT")],
    );
    e.start(&[]);
    e.wait_status("wants-int", Status::Up, T);
    e.stop_cleanly(T);
    assert_eq!(e.read_marker("got"), "INT\n");
}

#[test]
fn exits_during_shutdown_are_not_counted_as_crashes() {
    let mut e = Enclave::new();
    e.configure(|s| s["maxRestarts"] = serde_json::json!(1));
    let log = e.marker("stops");
    polite(&e, "a", &log);
    polite(&e, "b", &log);
    e.start(&[]);
    e.wait_status("a", Status::Up, T);
    e.wait_status("b", Status::Up, T);
    e.signal(Signal::SIGINT);
    assert_eq!(e.wait_exit(T), 0);
    assert_eq!(e.state("a").expect("state").restart_count, 0);
    assert_eq!(e.state("b").expect("state").restart_count, 0);
}

#[test]
fn a_second_sigterm_does_not_cut_the_grace_period_short() {
    let mut e = Enclave::new();
    let log = e.marker("stops");
    let action = format!("sleep 0.5; echo done >> {}; exit 0", log.display());
    trapping(&e, "slowstop", &action, "TERM", &[]);
    e.start(&[]);
    e.wait_status("slowstop", Status::Up, T);
    e.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(100));
    e.stop_cleanly(T);
    assert_eq!(e.read_marker("stops"), "done\n");
}

#[test]
fn a_oneshot_without_down_does_not_hold_up_the_services_below_it() {
    let mut e = Enclave::new();
    let log = e.marker("stops");
    polite(&e, "server", &log);
    e.service("configure", "oneshot", &[("up", "true")]);
    e.depends("configure", "server");
    e.start(&[]);
    e.wait_status("configure", Status::Finished, T);
    e.stop_cleanly(T);
    assert_eq!(e.read_marker("stops"), "stop server\n");
}

#[test]
fn a_sigterm_during_the_boot_ends_init_cleanly_with_0() {
    let mut e = Enclave::new();
    let log = e.marker("stops");
    polite(&e, "worker", &log);
    e.start(&[]);
    // Right after verification init generates keys and states its identity before its event
    // loop runs: a SIGTERM there used to kill it with the signal's default action.
    let deadline = Instant::now() + T;
    while !e.logs().contains("configuration verified") {
        assert!(Instant::now() < deadline, "{}", e.logs());
        std::thread::sleep(Duration::from_millis(2));
    }
    e.stop_cleanly(T);
    let logs = e.logs();
    assert!(
        logs.contains("starting nothing") || logs.contains("shutting down"),
        "{logs}"
    );
}
