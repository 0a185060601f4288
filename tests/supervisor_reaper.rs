//! The reaper: exit codes and signals reach whoever spawned the child, the readiness
//! descriptor reaches the child, and the environment is exactly what was given; and the
//! supervisor run in process, which reaps through it. In its own test binary: the reaper waits
//! for any child, so it must not share a process with tests that wait for their own children.

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

mod ownership {
    //! The supervisor in process: every task it starts ends before `run` returns.

    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::Duration;

    use enclave::backoff::Backoff;
    use enclave::config::schema::LogPolicy;
    use enclave::paths::Root;
    use enclave::service::state::{Exit, StateDir, Status};
    use enclave::supervisor::graph::Graph;
    use enclave::supervisor::logs::LogHub;
    use enclave::supervisor::metrics::SupervisorMetrics;
    use enclave::supervisor::restart::RestartLimits;
    use enclave::supervisor::{definition, Supervisor};
    use nix::sys::signal::Signal;

    /// Longer than the test may take: a timer of this length still running shows.
    const LONG_MS: u64 = 60_000;
    const DEADLINE: Duration = Duration::from_secs(20);

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn longrun(dir: &Path, name: &str, script: &str, files: &[(&str, &str)]) {
        write(&dir.join(name).join("type"), "longrun\n");
        let run = dir.join(name).join("run");
        write(&run, &format!("#!/bin/sh\n{script}\n"));
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for (file, text) in files {
            write(&dir.join(name).join(file), text);
        }
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stopped_supervisor_returns_only_after_every_task_it_started_has_ended() {
        let tmp = tempfile::tempdir().expect("tmp");
        let services = tmp.path().join("s6-rc.d");
        let long = LONG_MS.to_string();
        // Each leaves a long timer armed when the stop comes: a grace period after a prompt
        // exit, a readiness timeout, a restart delay.
        longrun(
            &services,
            "prompt",
            "trap 'exit 0' TERM\nwhile true; do sleep 0.05; done",
            &[("timeout-down", &long)],
        );
        longrun(
            &services,
            "never-ready",
            "exec sleep 1000",
            &[("notification-fd", "3"), ("timeout-up", &long)],
        );
        longrun(&services, "crasher", "exit 3", &[]);
        let graph =
            Graph::build(definition::load(&services, &[1]).expect("definitions")).expect("graph");
        let limits = RestartLimits {
            max_restarts: 3,
            window: Duration::from_secs(300),
            backoff: Backoff::new(
                Duration::from_millis(LONG_MS / 2),
                Duration::from_millis(LONG_MS),
                0.0,
            )
            .expect("valid"),
        };
        let root = Root::new(tmp.path());
        let state_dir = StateDir::new(&root);
        state_dir.reset().expect("state dir");
        let logs = LogHub::new(
            tmp.path().join("log"),
            LogPolicy {
                max_file_bytes: 1 << 20,
                archives: 1,
            },
        );
        let metrics = SupervisorMetrics::register(&prometheus::Registry::new()).expect("metrics");
        let env = BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
        let supervisor = Supervisor::new(
            graph,
            limits,
            env,
            state_dir.clone(),
            &logs,
            metrics,
            tokio::time::Instant::now(),
        )
        .expect("supervisor");
        let tasks = supervisor.tasks();
        let stopper = supervisor.stopper();

        let status = |name: &str| state_dir.read(name).ok();
        let stop = async {
            wait_for("every service where the test wants it", || {
                status("prompt").is_some_and(|s| s.status == Status::Up)
                    && status("never-ready").is_some_and(|s| s.status == Status::Starting)
                    && status("crasher").is_some_and(|s| {
                        s.status == Status::Down && s.last_exit == Some(Exit::Code(3))
                    })
            })
            .await;
            assert!(!tasks.is_empty(), "watchers and timers run");
            stopper.stop(Signal::SIGTERM);
        };
        let (code, ()) = tokio::join!(tokio::time::timeout(DEADLINE, supervisor.run()), stop);
        let code = code
            .expect("run returns without waiting for the timers")
            .expect("run");
        assert_eq!(code, 0);
        assert!(tasks.is_closed() && tasks.is_empty(), "{tasks:?}");
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            0,
            "no task of the supervisor outlives it"
        );
        for name in ["prompt", "never-ready", "crasher"] {
            assert_eq!(status(name).map(|s| s.status), Some(Status::Down), "{name}");
        }
    }
}
