//! The restart policy: crashed longruns come back after a backoff; more than maxRestarts
//! restarts within the window stop the whole tree with the failing service's exit code.

use crate::common;

use std::time::{Duration, Instant};

use common::harness::{wait_until, Enclave};
use enclave::service::state::{Exit, Status};
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(30);

/// A longrun `name` running `body` whose finish script appends its arguments to the marker
/// `finish-args` and exits 125: do not restart.
fn with_recording_finish(e: &Enclave, name: &str, body: &str) {
    let args = e.marker("finish-args");
    e.longrun(
        name,
        body,
        &[(
            "finish",
            &format!(
                "#!/bin/sh\necho \"$1 $2 $3\" >> {}\nexit 125\n",
                args.display()
            ),
        )],
    );
}

#[test]
fn a_crashed_longrun_is_restarted_after_a_backoff() {
    let mut e = Enclave::new();
    let count = e.marker("count");
    // Crashes on its first run only.
    e.longrun(
        "flaky",
        &format!(
            "n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}\n[ $n -eq 0 ] && exit 9\nexec sleep 1000",
            c = count.display()
        ),
        &[],
    );
    e.start(&[]);
    wait_until(T, "second run", || e.read_marker("count").trim() == "2");
    let state = e.wait_status("flaky", Status::Up, T);
    assert_eq!(state.restart_count, 1);
    assert_eq!(state.last_exit, Some(Exit::Code(9)));
    assert!(state.last_restart.is_some());
    assert!(state.pid.is_some());
    e.stop_cleanly(T);
}

#[test]
fn a_killed_longrun_comes_back_with_a_new_pid() {
    let mut e = Enclave::new();
    e.longrun("victim", "exec sleep 1000", &[]);
    e.start(&[]);
    let before = e.wait_status("victim", Status::Up, T).pid.expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(before as i32), Signal::SIGKILL)
        .expect("kill");
    wait_until(T, "a new pid", || {
        e.state("victim")
            .is_some_and(|s| s.status == Status::Up && s.pid.is_some_and(|p| p != before))
    });
    let state = e.state("victim").expect("state");
    assert_eq!(state.last_exit, Some(Exit::Signal(9)));
    assert_eq!(state.restart_count, 1);
    e.stop_cleanly(T);
}

#[test]
fn a_crash_loop_stops_the_tree_with_the_services_exit_code() {
    let mut e = Enclave::new();
    e.longrun("bystander", "exec sleep 1000", &[]);
    e.longrun("crasher", "exit 42", &[]);
    let started = Instant::now();
    e.start(&[]);
    assert_eq!(e.wait_exit(T), 42, "{}", e.logs());
    // 3 restarts with backoff 100, 200, 400 ms: the policy waited before giving up.
    assert!(started.elapsed() >= Duration::from_millis(700));
    let crasher = e.state("crasher").expect("state");
    assert_eq!(crasher.status, Status::Failed);
    assert_eq!(crasher.restart_count, 3);
    assert_eq!(e.state("bystander").expect("state").status, Status::Down);
}

/// Init's exit code when its only longrun, `name`, runs `body` and dies every time: one restart
/// allowed.
fn crash_loop_exit_code(name: &str, body: &str) -> i32 {
    let mut e = Enclave::new();
    e.configure(|s| s["maxRestarts"] = serde_json::json!(1));
    e.longrun(name, body, &[]);
    e.start(&[]);
    e.wait_exit(T)
}

#[test]
fn a_crash_loop_of_a_signalled_service_exits_128_plus_the_signal() {
    assert_eq!(crash_loop_exit_code("segv", "kill -SEGV $$"), 128 + 11);
}

#[test]
fn a_clean_exit_counts_as_a_death_and_never_yields_exit_0() {
    assert_eq!(crash_loop_exit_code("quitter", "exit 0"), 1);
}

#[test]
fn restarts_spread_beyond_the_window_do_not_stop_the_tree() {
    let mut e = Enclave::new();
    e.configure(|s| {
        s["maxRestarts"] = serde_json::json!(1);
        s["restartWindowMs"] = serde_json::json!(1000);
    });
    // Dies every ~1.3 s: one restart per window at most.
    e.longrun("periodic", "sleep 1.3; exit 1", &[]);
    e.start(&[]);
    wait_until(T, "three restarts", || {
        e.state("periodic").is_some_and(|s| s.restart_count >= 3)
    });
    assert!(e.child.is_some());
    e.stop_cleanly(T);
}

#[test]
fn finish_runs_with_the_s6_arguments_and_125_means_do_not_restart() {
    let mut e = Enclave::new();
    with_recording_finish(&e, "permafail", "exit 5");
    e.longrun("other", "exec sleep 1000", &[]);
    e.start(&[]);
    e.wait_status("permafail", Status::Failed, T);
    assert_eq!(e.read_marker("finish-args"), "5 0 permafail\n");
    assert_eq!(e.state("permafail").expect("state").restart_count, 0);
    // The rest keeps running.
    assert_eq!(e.state("other").expect("state").status, Status::Up);
    e.stop_cleanly(T);
}

#[test]
fn finish_gets_256_and_the_signal_for_a_signalled_death() {
    let mut e = Enclave::new();
    with_recording_finish(&e, "signalled", "kill -TERM $$");
    e.start(&[]);
    e.wait_status("signalled", Status::Failed, T);
    assert_eq!(e.read_marker("finish-args"), "256 15 signalled\n");
    e.stop_cleanly(T);
}
