//! The reaper: exit codes and signals reach whoever spawned the child, the readiness
//! descriptor reaches the child, and the environment is exactly what was given. In its own test
//! binary: the reaper waits for any child, so it must not share a process with tests that wait
//! for their own children.

use std::collections::BTreeMap;
use std::time::Duration;

use enclave::service::state::Exit;
use enclave::supervisor::process::{output_pipe, Child, Reaper, Spawn};

fn sh(script: &str) -> Spawn {
    Spawn {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        cwd: "/".into(),
        env: BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
        notification_fd: None,
    }
}

async fn exit_of(reaper: &Reaper, mut child: Child) -> Exit {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        reaper.reap();
        if let Ok(exit) = child.exit.try_recv() {
            return exit;
        }
        assert!(tokio::time::Instant::now() < deadline, "child did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn exit_codes_and_signals_are_delivered() {
    let reaper = Reaper::global();
    let (_r, w) = output_pipe().expect("pipe");
    let child = reaper.spawn(&sh("exit 7"), &w).expect("spawn");
    assert_eq!(exit_of(reaper, child).await, Exit::Code(7));
    let child = reaper.spawn(&sh("kill -9 $$"), &w).expect("spawn");
    assert_eq!(exit_of(reaper, child).await, Exit::Signal(9));
}

#[tokio::test(flavor = "current_thread")]
async fn the_notification_fd_reaches_the_child() {
    let reaper = Reaper::global();
    let (_r, w) = output_pipe().expect("pipe");
    let mut spec = sh("echo ready >&5");
    spec.notification_fd = Some(5);
    let mut child = reaper.spawn(&spec, &w).expect("spawn");
    let read = child.notification.take().expect("pipe");
    let mut text = String::new();
    use std::io::Read;
    std::fs::File::from(read)
        .read_to_string(&mut text)
        .expect("read");
    assert_eq!(text, "ready\n");
    assert_eq!(exit_of(reaper, child).await, Exit::Code(0));
}

#[tokio::test(flavor = "current_thread")]
async fn the_environment_is_exactly_what_was_given() {
    let reaper = Reaper::global();
    let (r, w) = output_pipe().expect("pipe");
    // HOME is set for the test process but must not reach the child.
    let mut spec = sh("echo \"${HOME:-clean} $ONLY\"");
    spec.env.insert("ONLY".into(), "given".into());
    let child = reaper.spawn(&spec, &w).expect("spawn");
    drop(w);
    assert_eq!(exit_of(reaper, child).await, Exit::Code(0));
    let mut text = String::new();
    use std::io::Read;
    std::fs::File::from(r)
        .read_to_string(&mut text)
        .expect("read");
    assert_eq!(text, "clean given\n");
}
