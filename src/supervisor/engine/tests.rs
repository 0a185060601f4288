//! The engine's rules, as tables: events in, commands out, no process or clock involved.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::time::Instant;

use super::*;
use crate::backoff::Backoff;
use crate::supervisor::definition::{Definition, Kind as DefKind, DEFAULT_TIMEOUT_DOWN};
use crate::supervisor::graph::Graph;
use crate::supervisor::restart::RestartLimits;

const BOOT_UNIX: u64 = 1_700_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn def(name: &str, kind: DefKind, deps: &[&str]) -> Definition {
    Definition {
        name: name.to_owned(),
        template: None,
        dir: "/".into(),
        kind,
        dependencies: deps.iter().map(|d| (*d).to_owned()).collect(),
        timeout_up: None,
        timeout_down: Some(DEFAULT_TIMEOUT_DOWN),
        down_signal: Signal::SIGTERM,
        env: BTreeMap::new(),
    }
}

/// A longrun without a readiness pipe.
fn longrun(name: &str, deps: &[&str]) -> Definition {
    def(
        name,
        DefKind::Longrun {
            run: "/run".into(),
            finish: None,
            notification_fd: None,
        },
        deps,
    )
}

/// A longrun that notifies readiness, within `timeout_up`.
fn notified(name: &str, deps: &[&str], timeout_up: Duration) -> Definition {
    let mut d = def(
        name,
        DefKind::Longrun {
            run: "/run".into(),
            finish: None,
            notification_fd: Some(3),
        },
        deps,
    );
    d.timeout_up = Some(timeout_up);
    d
}

fn with_finish(mut d: Definition) -> Definition {
    if let DefKind::Longrun { finish, .. } = &mut d.kind {
        *finish = Some("/finish".into());
    }
    d
}

fn oneshot(name: &str, deps: &[&str], down: bool) -> Definition {
    def(
        name,
        DefKind::Oneshot {
            up: "true".into(),
            down: down.then(|| "true".to_owned()),
        },
        deps,
    )
}

fn limits(max_restarts: u32) -> RestartLimits {
    RestartLimits {
        max_restarts,
        window: secs(300),
        backoff: Backoff::new(secs(1), secs(3), 0.0).expect("valid"),
    }
}

/// The engine with what the executor would add: each `Start` answered at once with `Spawned`
/// and a fresh pid, and a clock the test moves.
struct Tree {
    engine: Engine,
    t0: Instant,
    now: Duration,
    generation: BTreeMap<String, u64>,
    pid: BTreeMap<String, Pid>,
    names: BTreeMap<Pid, String>,
    next_pid: i32,
}

impl Tree {
    fn new(defs: Vec<Definition>) -> Self {
        Self::with_limits(defs, limits(3))
    }

    fn with_limits(defs: Vec<Definition>, limits: RestartLimits) -> Self {
        let graph = Graph::build(defs).expect("valid graph");
        let t0 = Instant::now();
        Self {
            engine: Engine::new(graph, limits, t0),
            t0,
            now: Duration::ZERO,
            generation: BTreeMap::new(),
            pid: BTreeMap::new(),
            names: BTreeMap::new(),
            next_pid: 100,
        }
    }

    fn clock(&self) -> Now {
        Now {
            at: self.t0 + self.now,
            unix: BOOT_UNIX + self.now.as_secs(),
        }
    }

    /// Moves the clock to `at` since the boot.
    fn at(&mut self, at: Duration) -> &mut Self {
        self.now = at;
        self
    }

    fn send(&mut self, event: Event) -> Vec<Command> {
        let commands = self.engine.handle(event, self.clock());
        let mut out = Vec::new();
        self.perform(commands, &mut out);
        out
    }

    fn perform(&mut self, commands: Vec<Command>, out: &mut Vec<Command>) {
        for command in commands {
            out.push(command.clone());
            if let Command::Start {
                service,
                generation,
            } = command
            {
                let pid = Pid::from_raw(self.next_pid);
                self.next_pid += 1;
                self.generation.insert(service.clone(), generation);
                self.pid.insert(service.clone(), pid);
                self.names.insert(pid, service.clone());
                let more = self.engine.handle(
                    Event::Spawned {
                        service,
                        generation,
                        pid,
                    },
                    self.clock(),
                );
                self.perform(more, out);
            }
        }
    }

    fn gen(&self, name: &str) -> u64 {
        self.generation.get(name).copied().unwrap_or(0)
    }

    fn boot(&mut self) -> Vec<Command> {
        self.send(Event::Boot)
    }

    fn stop(&mut self, signal: Signal) -> Vec<Command> {
        self.send(Event::StopRequested(signal))
    }

    /// An event about the current process of `name`.
    fn about(&mut self, name: &str, event: impl FnOnce(String, u64) -> Event) -> Vec<Command> {
        let generation = self.gen(name);
        self.send(event(name.to_owned(), generation))
    }

    fn ready(&mut self, name: &str) -> Vec<Command> {
        self.about(name, |service, generation| Event::Ready {
            service,
            generation,
        })
    }

    fn exit(&mut self, name: &str, exit: Exit) -> Vec<Command> {
        self.about(name, |service, generation| Event::Exited {
            service,
            generation,
            exit,
        })
    }

    fn done(&mut self, name: &str, exit: Exit) -> Vec<Command> {
        self.about(name, |service, generation| Event::OneshotDone {
            service,
            generation,
            exit,
        })
    }

    fn fire(&mut self, name: &str, timer: Timer) -> Vec<Command> {
        self.about(name, |service, generation| Event::TimerFired {
            service,
            generation,
            timer,
        })
    }

    fn phase(&self, name: &str) -> Phase {
        self.engine.phase(name).expect("a service of the tree")
    }

    /// (service, signal, to its group) of every signal but the SIGCONT after a stop signal.
    fn signals(&self, commands: &[Command]) -> Vec<(String, Signal, bool)> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Signal { pid, signal, group } if *signal != Signal::SIGCONT => {
                    Some((self.names[pid].clone(), *signal, *group))
                }
                _ => None,
            })
            .collect()
    }

    fn stopping(&self, commands: &[Command]) -> Vec<String> {
        let mut names: Vec<String> = self
            .signals(commands)
            .into_iter()
            .filter(|(_, s, _)| *s != Signal::SIGKILL)
            .map(|(n, _, _)| n)
            .collect();
        names.extend(commands.iter().filter_map(|c| match c {
            Command::RunDown { service, .. } => Some(format!("{service} (down)")),
            _ => None,
        }));
        names
    }
}

fn started(commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Start { service, .. } => Some(service.clone()),
            _ => None,
        })
        .collect()
}

fn armed(commands: &[Command]) -> Vec<(String, Timer, Duration)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Arm {
                service,
                timer,
                after,
                ..
            } => Some((service.clone(), *timer, *after)),
            _ => None,
        })
        .collect()
}

fn exit_code(commands: &[Command]) -> Option<u8> {
    commands.iter().find_map(|c| match c {
        Command::Exit(code) => Some(*code),
        _ => None,
    })
}

fn notes(commands: &[Command]) -> Vec<Note> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Log(Note::State { .. }) => None,
            Command::Log(note) => Some(note.clone()),
            _ => None,
        })
        .collect()
}

fn last_state(commands: &[Command], name: &str) -> Option<ServiceState> {
    commands.iter().rev().find_map(|c| match c {
        Command::WriteState(s) if s.name == name => Some(s.clone()),
        _ => None,
    })
}

// ---- restart policy ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Then {
    /// After this many seconds.
    RestartAfter(u64),
    GiveUp(u8),
}

#[test]
fn the_restart_policy_restarts_with_backoff_and_gives_up_with_the_failures_code() {
    /// (case, limit, deaths as (seconds since boot, exit, what it leads to))
    type Case = (&'static str, u32, &'static [(u64, Exit, Then)]);
    let cases: &[Case] = &[
        (
            "a crash is restarted after the first delay",
            3,
            &[(10, Exit::Code(3), Then::RestartAfter(1))],
        ),
        (
            "delays double up to the cap, then the limit stops the tree with the exit code",
            3,
            &[
                (10, Exit::Code(3), Then::RestartAfter(1)),
                (20, Exit::Code(3), Then::RestartAfter(2)),
                (30, Exit::Code(3), Then::RestartAfter(3)),
                (40, Exit::Code(3), Then::GiveUp(3)),
            ],
        ),
        (
            "a service killed by a signal gives up with 128 + the signal",
            1,
            &[
                (10, Exit::Signal(9), Then::RestartAfter(1)),
                (20, Exit::Signal(9), Then::GiveUp(137)),
            ],
        ),
        (
            "an exit 0 of a longrun is a death too, and never stops the tree with 0",
            1,
            &[
                (10, Exit::Code(0), Then::RestartAfter(1)),
                (20, Exit::Code(0), Then::GiveUp(1)),
            ],
        ),
        (
            "deaths spread beyond the window are forgiven",
            2,
            &[
                (10, Exit::Code(3), Then::RestartAfter(1)),
                (210, Exit::Code(3), Then::RestartAfter(2)),
                (410, Exit::Code(3), Then::RestartAfter(2)),
                (610, Exit::Code(3), Then::RestartAfter(2)),
            ],
        ),
    ];
    for (case, limit, deaths) in cases {
        let mut tree = Tree::with_limits(vec![longrun("svc", &[])], limits(*limit));
        tree.boot();
        tree.ready("svc");
        for (i, (at, exit, then)) in deaths.iter().enumerate() {
            let out = tree.at(secs(*at)).exit("svc", *exit);
            match then {
                Then::RestartAfter(delay) => {
                    let delay = &secs(*delay);
                    assert_eq!(
                        armed(&out),
                        [("svc".to_owned(), Timer::Restart, *delay)],
                        "{case}: death {i}"
                    );
                    assert_eq!(tree.phase("svc"), Phase::Backoff, "{case}: death {i}");
                    assert_eq!(exit_code(&out), None, "{case}: death {i}");
                    let out = tree.at(secs(*at) + *delay).fire("svc", Timer::Restart);
                    assert_eq!(started(&out), ["svc"], "{case}: restart {i}");
                    let state = last_state(&out, "svc").expect("state written");
                    assert_eq!(state.restart_count, i as u64 + 1, "{case}: restart {i}");
                    assert_eq!(
                        state.last_restart,
                        Some(BOOT_UNIX + (secs(*at) + *delay).as_secs())
                    );
                    assert_eq!(state.last_exit, Some(*exit), "{case}");
                    tree.ready("svc");
                }
                Then::GiveUp(code) => {
                    assert!(armed(&out).is_empty(), "{case}: no restart");
                    assert_eq!(exit_code(&out), Some(*code), "{case}");
                    assert_eq!(tree.phase("svc"), Phase::Failed, "{case}");
                    assert!(
                        notes(&out)
                            .iter()
                            .any(|n| matches!(n, Note::RestartLimit { max_restarts, .. } if max_restarts == limit)),
                        "{case}: {:?}",
                        notes(&out)
                    );
                }
            }
        }
    }
}

#[test]
fn a_finish_exiting_125_marks_the_service_failed_without_restarting_it() {
    let mut tree = Tree::new(vec![
        with_finish(longrun("svc", &[])),
        longrun("other", &[]),
    ]);
    tree.boot();
    tree.ready("svc");
    tree.ready("other");
    let pid = tree.pid["svc"];
    let out = tree.exit("svc", Exit::Code(2));
    assert!(
        out.contains(&Command::RunFinish {
            service: "svc".into(),
            generation: 1,
            script: "/finish".into(),
            exit: Exit::Code(2),
            pid: Some(pid),
            timeout: FINISH_TIMEOUT,
        }),
        "{out:?}"
    );
    // Until its finish is done the service is neither restarted nor its group killed.
    assert!(armed(&out).is_empty() && tree.signals(&out).is_empty());
    let out = tree.send(Event::FinishDone {
        service: "svc".into(),
        generation: 1,
        exit: Exit::Code(2),
        group: Some(pid),
        finish: Some((Exit::Code(125), false)),
    });
    assert_eq!(tree.signals(&out), [("svc".into(), Signal::SIGKILL, true)]);
    assert!(armed(&out).is_empty());
    assert_eq!(tree.phase("svc"), Phase::Failed);
    assert_eq!(tree.phase("other"), Phase::Up, "the others run on");
    assert_eq!(exit_code(&out), None);
}

#[test]
fn a_run_script_that_cannot_start_counts_as_exit_127() {
    let mut tree = Tree::new(vec![longrun("svc", &[])]);
    let out = tree.engine.handle(Event::Boot, tree.clock());
    assert_eq!(started(&out), ["svc"]);
    let out = tree.send(Event::SpawnFailed {
        service: "svc".into(),
        generation: 1,
    });
    assert_eq!(armed(&out), [("svc".into(), Timer::Restart, secs(1))]);
    assert_eq!(
        last_state(&out, "svc").and_then(|s| s.last_exit),
        Some(Exit::Code(127))
    );
}

#[test]
fn events_of_an_earlier_process_change_nothing() {
    let mut tree = Tree::new(vec![notified("svc", &[], secs(5))]);
    tree.boot();
    tree.ready("svc");
    tree.exit("svc", Exit::Code(1));
    tree.fire("svc", Timer::Restart);
    assert_eq!(tree.gen("svc"), 2);
    for stale in [
        Event::Ready {
            service: "svc".into(),
            generation: 1,
        },
        Event::Exited {
            service: "svc".into(),
            generation: 1,
            exit: Exit::Code(1),
        },
        Event::TimerFired {
            service: "svc".into(),
            generation: 1,
            timer: Timer::Up,
        },
        Event::TimerFired {
            service: "svc".into(),
            generation: 1,
            timer: Timer::Restart,
        },
    ] {
        let out = tree.send(stale.clone());
        assert!(out.is_empty(), "{stale:?}: {out:?}");
        assert_eq!(tree.phase("svc"), Phase::Starting, "{stale:?}");
    }
}

// ---- dependency order --------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Step {
    Boot,
    Ready(&'static str),
    Done(&'static str, i32),
}

#[test]
fn services_start_when_their_dependencies_are_up_or_finished() {
    type Case = (
        &'static str,
        Vec<Definition>,
        Vec<(Step, Vec<&'static str>)>,
    );
    let cases: Vec<Case> = vec![
        (
            "independent services start together",
            vec![longrun("a", &[]), longrun("b", &[]), longrun("c", &[])],
            vec![(Step::Boot, vec!["a", "b", "c"])],
        ),
        (
            "a chain starts one service at a time, each once the one below is up",
            vec![
                longrun("db", &[]),
                longrun("api", &["db"]),
                longrun("web", &["api"]),
            ],
            vec![
                (Step::Boot, vec!["db"]),
                (Step::Ready("db"), vec!["api"]),
                (Step::Ready("api"), vec!["web"]),
                (Step::Ready("web"), vec![]),
            ],
        ),
        (
            "a service with two dependencies waits for both",
            vec![
                longrun("a", &[]),
                longrun("b", &[]),
                longrun("c", &["a", "b"]),
            ],
            vec![
                (Step::Boot, vec!["a", "b"]),
                (Step::Ready("b"), vec![]),
                (Step::Ready("a"), vec!["c"]),
            ],
        ),
        (
            "a oneshot gates its dependents until it finishes",
            vec![
                oneshot("setup", &[], false),
                longrun("db", &["setup"]),
                longrun("free", &[]),
            ],
            vec![
                (Step::Boot, vec!["free", "setup"]),
                (Step::Ready("free"), vec![]),
                (Step::Done("setup", 0), vec!["db"]),
            ],
        ),
        (
            "a failed oneshot starts nothing more",
            vec![oneshot("setup", &[], false), longrun("db", &["setup"])],
            vec![
                (Step::Boot, vec!["setup"]),
                (Step::Done("setup", 4), vec![]),
            ],
        ),
    ];
    for (case, defs, steps) in cases {
        let mut tree = Tree::new(defs);
        for (step, expected) in steps {
            let out = match step {
                Step::Boot => tree.boot(),
                Step::Ready(name) => tree.ready(name),
                Step::Done(name, code) => tree.done(name, Exit::Code(code)),
            };
            assert_eq!(started(&out), expected, "{case}: after {step:?}");
        }
    }
}

#[test]
fn all_services_up_is_reported_once_with_the_time_since_the_boot() {
    let mut tree = Tree::new(vec![
        oneshot("setup", &[], false),
        longrun("postgres", &["setup"]),
    ]);
    tree.boot();
    tree.at(ms(400)).done("setup", Exit::Code(0));
    let out = tree.at(ms(900)).ready("postgres");
    assert!(out.contains(&Command::Metric(Metric::BootPhase {
        phase: BootPhase::PostgresReady,
        after: ms(900),
    })));
    assert!(out.contains(&Command::Metric(Metric::BootPhase {
        phase: BootPhase::AllUp,
        after: ms(900),
    })));
    assert_eq!(
        notes(&out),
        [Note::AllUp {
            services: 2,
            elapsed: ms(900)
        }]
    );
    tree.exit("postgres", Exit::Code(1));
    tree.fire("postgres", Timer::Restart);
    let out = tree.ready("postgres");
    assert!(notes(&out).is_empty(), "{out:?}");
    assert!(!out
        .iter()
        .any(|c| matches!(c, Command::Metric(Metric::BootPhase { .. }))));
}

#[test]
fn a_failed_oneshot_stops_what_started_and_exits_with_its_code() {
    let mut tree = Tree::new(vec![
        oneshot("setup", &[], false),
        longrun("db", &["setup"]),
        longrun("free", &[]),
    ]);
    tree.boot();
    tree.ready("free");
    let out = tree.done("setup", Exit::Code(4));
    assert_eq!(
        notes(&out)[0],
        Note::OneshotFailed {
            service: "setup".into(),
            exit: Exit::Code(4),
            timed_out: false
        }
    );
    assert_eq!(tree.phase("setup"), Phase::Failed);
    assert_eq!(tree.phase("db"), Phase::Down, "never started");
    assert_eq!(tree.stopping(&out), ["free"]);
    assert_eq!(exit_code(&out), None, "free still runs");
    let out = tree.exit("free", Exit::Code(0));
    assert_eq!(exit_code(&out), Some(4));
    assert_eq!(tree.phase("setup"), Phase::Failed);
}

// ---- readiness ---------------------------------------------------------------------------

#[test]
fn a_notified_longrun_is_starting_until_its_line_and_gates_its_dependents() {
    let mut tree = Tree::new(vec![notified("db", &[], secs(5)), longrun("api", &["db"])]);
    let out = tree.boot();
    let state = last_state(&out, "db").expect("written");
    assert_eq!(state.status, Status::Starting);
    assert_eq!(state.pid, Some(tree.pid["db"].as_raw() as u32));
    assert_eq!(armed(&out), [("db".into(), Timer::Up, secs(5))]);
    assert!(started(&tree.at(secs(4)).fire("db", Timer::Restart)).is_empty());
    let out = tree.ready("db");
    assert_eq!(last_state(&out, "db").map(|s| s.status), Some(Status::Up));
    assert_eq!(started(&out), ["api"]);
    // The timeout of a process that became ready changes nothing.
    assert!(tree.at(secs(5)).fire("db", Timer::Up).is_empty());
    assert_eq!(tree.phase("db"), Phase::Up);
}

#[test]
fn a_longrun_without_a_notification_fd_has_no_up_timer() {
    let mut tree = Tree::new(vec![{
        let mut d = longrun("svc", &[]);
        d.timeout_up = Some(secs(1));
        d
    }]);
    assert!(armed(&tree.boot()).is_empty());
}

#[test]
fn a_longrun_not_ready_within_timeout_up_is_stopped_and_fails_the_boot_with_1() {
    let mut tree = Tree::new(vec![
        notified("slow", &[], secs(2)),
        longrun("api", &["slow"]),
        longrun("free", &[]),
    ]);
    tree.boot();
    tree.ready("free");
    let out = tree.at(secs(2)).fire("slow", Timer::Up);
    assert_eq!(
        notes(&out)[0],
        Note::NotReady {
            service: "slow".into()
        }
    );
    let mut stopped = tree.stopping(&out);
    stopped.sort();
    assert_eq!(stopped, ["free", "slow"]);
    assert_eq!(tree.phase("api"), Phase::Down, "never started");
    tree.exit("free", Exit::Code(0));
    let out = tree.exit("slow", Exit::Signal(15));
    assert_eq!(exit_code(&out), Some(1));
    assert_eq!(tree.phase("slow"), Phase::Failed);
    assert_eq!(tree.phase("free"), Phase::Down);
}

#[test]
fn a_oneshot_over_its_timeout_up_is_killed_and_fails_the_boot_as_timed_out() {
    let mut tree = Tree::new(vec![{
        let mut d = oneshot("setup", &[], false);
        d.timeout_up = Some(secs(3));
        d
    }]);
    let out = tree.boot();
    assert_eq!(armed(&out), [("setup".into(), Timer::Up, secs(3))]);
    let out = tree.at(secs(3)).fire("setup", Timer::Up);
    assert_eq!(
        tree.signals(&out),
        [("setup".into(), Signal::SIGKILL, true)]
    );
    let out = tree.done("setup", Exit::Signal(9));
    assert_eq!(
        notes(&out)[0],
        Note::OneshotFailed {
            service: "setup".into(),
            exit: Exit::Signal(9),
            timed_out: true
        }
    );
    assert_eq!(exit_code(&out), Some(137));
}

// ---- shutdown ----------------------------------------------------------------------------

/// setup (oneshot with down) <- database <- api <- frontend, everything up.
fn stack() -> Tree {
    let mut tree = Tree::new(vec![
        oneshot("setup", &[], true),
        longrun("database", &["setup"]),
        longrun("api", &["database"]),
        longrun("frontend", &["api"]),
    ]);
    tree.boot();
    tree.done("setup", Exit::Code(0));
    for name in ["database", "api", "frontend"] {
        tree.ready(name);
    }
    tree
}

#[test]
fn a_stop_goes_in_reverse_dependency_order_and_exits_0() {
    let mut tree = stack();
    let out = tree.stop(Signal::SIGTERM);
    assert_eq!(
        notes(&out)[0],
        Note::ShuttingDown(Shutdown::Requested(Signal::SIGTERM))
    );
    assert!(out.contains(&Command::Metric(Metric::ShuttingDown)));
    // (event, what stops next, exit code)
    let steps: [(&str, Vec<&str>); 4] = [
        ("stop", vec!["frontend"]),
        ("frontend", vec!["api"]),
        ("api", vec!["database"]),
        ("database", vec!["setup (down)"]),
    ];
    let mut out = out;
    for (after, expected) in steps {
        if after != "stop" {
            out = tree.exit(after, Exit::Code(0));
            assert_eq!(tree.phase(after), Phase::Down, "{after}");
        }
        assert_eq!(tree.stopping(&out), expected, "after {after}");
        assert_eq!(exit_code(&out), None, "after {after}");
    }
    let out = tree.send(Event::DownDone {
        service: "setup".into(),
        end: Some((Exit::Code(0), false)),
    });
    assert_eq!(exit_code(&out), Some(0));
    assert_eq!(tree.phase("setup"), Phase::Down);
}

#[test]
fn independent_services_stop_together_with_their_down_signal_then_sigcont() {
    let mut tree = Tree::new(vec![
        {
            let mut d = longrun("a", &[]);
            d.down_signal = Signal::SIGINT;
            d
        },
        longrun("b", &[]),
        longrun("c", &["a", "b"]),
    ]);
    tree.boot();
    tree.ready("a");
    tree.ready("b");
    tree.ready("c");
    tree.stop(Signal::SIGTERM);
    let out = tree.exit("c", Exit::Code(0));
    assert_eq!(
        tree.signals(&out),
        [
            // What is left of c's process group goes first.
            ("c".into(), Signal::SIGKILL, true),
            ("a".into(), Signal::SIGINT, false),
            ("b".into(), Signal::SIGTERM, false)
        ]
    );
    let a = tree.pid["a"];
    let cont = out.iter().position(|c| {
        *c == Command::Signal {
            pid: a,
            signal: Signal::SIGCONT,
            group: false,
        }
    });
    let int = out.iter().position(|c| {
        *c == Command::Signal {
            pid: a,
            signal: Signal::SIGINT,
            group: false,
        }
    });
    assert!(int < cont && int.is_some(), "SIGCONT after the down signal");
}

#[test]
fn the_exit_code_says_why_the_tree_came_down() {
    // (case, what brings it down, the exit code)
    type Cause = fn(&mut Tree) -> Vec<Command>;
    let cases: [(&str, Cause, u8); 4] = [
        (
            "a requested stop is clean",
            |t| {
                t.stop(Signal::SIGINT);
                t.exit("svc", Exit::Signal(2))
            },
            0,
        ),
        (
            "a crash loop ends with the service's code",
            |t| t.exit("svc", Exit::Code(42)),
            42,
        ),
        (
            "a crash loop of a killed service ends with 128 + the signal",
            |t| t.exit("svc", Exit::Signal(11)),
            139,
        ),
        (
            "a service past timeout-down is killed; the requested stop stays clean",
            |t| {
                t.stop(Signal::SIGTERM);
                t.fire("svc", Timer::Grace);
                t.exit("svc", Exit::Signal(9))
            },
            0,
        ),
    ];
    for (case, cause, code) in cases {
        let mut tree = Tree::with_limits(vec![longrun("svc", &[])], limits(1));
        tree.boot();
        tree.ready("svc");
        // One restart is allowed: use it up.
        tree.exit("svc", Exit::Code(1));
        tree.fire("svc", Timer::Restart);
        tree.ready("svc");
        let out = cause(&mut tree);
        assert_eq!(exit_code(&out), Some(code), "{case}: {out:?}");
    }
}

#[test]
fn a_service_past_timeout_down_gets_sigkill_on_its_group() {
    let mut tree = Tree::new(vec![{
        let mut d = longrun("stubborn", &[]);
        d.timeout_down = Some(ms(500));
        d
    }]);
    tree.boot();
    tree.ready("stubborn");
    let out = tree.stop(Signal::SIGTERM);
    assert_eq!(armed(&out), [("stubborn".into(), Timer::Grace, ms(500))]);
    let out = tree.at(ms(500)).fire("stubborn", Timer::Grace);
    assert_eq!(
        notes(&out),
        [Note::Killing {
            service: "stubborn".into()
        }]
    );
    assert_eq!(
        tree.signals(&out),
        [("stubborn".into(), Signal::SIGKILL, true)]
    );
    // After it is gone, its grace timer changes nothing.
    tree.exit("stubborn", Exit::Signal(9));
    assert!(tree.fire("stubborn", Timer::Grace).is_empty());
}

#[test]
fn without_timeout_down_a_stop_waits_forever() {
    let mut tree = Tree::new(vec![{
        let mut d = longrun("patient", &[]);
        d.timeout_down = None;
        d
    }]);
    tree.boot();
    tree.ready("patient");
    assert!(armed(&tree.stop(Signal::SIGTERM)).is_empty());
}

#[test]
fn a_second_stop_request_changes_nothing() {
    let mut tree = stack();
    tree.stop(Signal::SIGTERM);
    let out = tree.stop(Signal::SIGTERM);
    assert!(out.is_empty(), "{out:?}");
    let out = tree.stop(Signal::SIGINT);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn at_a_stop_services_not_running_are_down_at_once() {
    let mut tree = Tree::new(vec![
        longrun("crashed", &[]),
        notified("slow", &[], secs(60)),
        longrun("waiting", &["slow"]),
    ]);
    tree.boot();
    tree.ready("crashed");
    tree.exit("crashed", Exit::Code(1));
    assert_eq!(tree.phase("crashed"), Phase::Backoff);
    let out = tree.stop(Signal::SIGTERM);
    assert_eq!(tree.phase("crashed"), Phase::Down, "in backoff");
    assert_eq!(tree.phase("waiting"), Phase::Down, "never started");
    assert_eq!(tree.stopping(&out), ["slow"], "starting, so stopped");
    // Its restart delay ending starts nothing.
    assert!(started(&tree.fire("crashed", Timer::Restart)).is_empty());
    let out = tree.exit("slow", Exit::Signal(15));
    assert_eq!(exit_code(&out), Some(0));
}

#[test]
fn a_oneshot_without_down_is_down_at_once_and_frees_what_it_depends_on() {
    let mut tree = Tree::new(vec![
        longrun("db", &[]),
        oneshot("migrate", &["db"], false),
        longrun("api", &["migrate"]),
    ]);
    tree.boot();
    tree.ready("db");
    tree.done("migrate", Exit::Code(0));
    tree.ready("api");
    tree.stop(Signal::SIGTERM);
    let out = tree.exit("api", Exit::Code(0));
    assert_eq!(tree.phase("migrate"), Phase::Down);
    assert_eq!(tree.stopping(&out), ["db"]);
}

#[test]
fn a_running_oneshot_is_stopped_with_sigterm_to_its_group() {
    let mut tree = Tree::new(vec![oneshot("setup", &[], true)]);
    tree.boot();
    let out = tree.stop(Signal::SIGTERM);
    assert_eq!(
        tree.signals(&out),
        [("setup".into(), Signal::SIGTERM, true)]
    );
    let out = tree.done("setup", Exit::Signal(15));
    assert_eq!(exit_code(&out), Some(0));
}

#[test]
fn a_failing_down_script_is_logged_and_the_stop_goes_on() {
    let mut tree = Tree::new(vec![oneshot("setup", &[], true)]);
    tree.boot();
    tree.done("setup", Exit::Code(0));
    let out = tree.stop(Signal::SIGTERM);
    assert!(out.contains(&Command::RunDown {
        service: "setup".into(),
        script: "true".into(),
        timeout: Some(DEFAULT_TIMEOUT_DOWN)
    }));
    let out = tree.send(Event::DownDone {
        service: "setup".into(),
        end: Some((Exit::Signal(9), true)),
    });
    assert_eq!(
        notes(&out),
        [Note::DownScriptFailed {
            service: "setup".into(),
            exit: Exit::Signal(9),
            timed_out: true
        }]
    );
    assert_eq!(exit_code(&out), Some(0));
}

// ---- a crash during shutdown -------------------------------------------------------------

#[test]
fn a_crash_during_a_stop_is_not_restarted_and_the_stop_stays_clean() {
    let mut tree = stack();
    tree.stop(Signal::SIGTERM);
    // The database dies on its own while the frontend is still stopping.
    let out = tree.exit("database", Exit::Code(3));
    assert!(armed(&out).is_empty(), "no restart: {out:?}");
    assert!(started(&out).is_empty());
    assert_eq!(tree.phase("database"), Phase::Down);
    assert_eq!(
        notes(&out),
        [Note::Exited {
            service: "database".into(),
            exit: Exit::Code(3)
        }]
    );
    // Nothing depends on setup but the database: its `down` runs now.
    assert_eq!(tree.stopping(&out), ["setup (down)"]);
    tree.send(Event::DownDone {
        service: "setup".into(),
        end: Some((Exit::Code(0), false)),
    });
    let out = tree.exit("frontend", Exit::Code(0));
    assert_eq!(tree.stopping(&out), ["api"]);
    let out = tree.exit("api", Exit::Code(0));
    assert_eq!(exit_code(&out), Some(0));
}

#[test]
fn a_crash_during_a_failure_stop_keeps_the_first_failures_code() {
    let mut tree = Tree::with_limits(
        vec![longrun("a", &[]), longrun("b", &[]), longrun("c", &[])],
        limits(1),
    );
    tree.boot();
    for name in ["a", "b", "c"] {
        tree.ready(name);
    }
    tree.exit("a", Exit::Code(1));
    tree.fire("a", Timer::Restart);
    tree.ready("a");
    let out = tree.exit("a", Exit::Code(5));
    assert_eq!(tree.phase("a"), Phase::Failed);
    let mut stopping = tree.stopping(&out);
    stopping.sort();
    assert_eq!(stopping, ["b", "c"]);
    // b crashes with its own code while the tree is coming down.
    let out = tree.exit("b", Exit::Code(9));
    assert!(armed(&out).is_empty());
    assert_eq!(tree.phase("b"), Phase::Down);
    let out = tree.exit("c", Exit::Code(0));
    assert_eq!(exit_code(&out), Some(5));
}

#[test]
fn the_first_states_are_down_and_each_change_is_written_with_its_metric() {
    let mut tree = Tree::new(vec![oneshot("setup", &[], false)]);
    let first: Vec<_> = tree.engine.states().cloned().collect();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].status, Status::Down);
    let out = tree.boot();
    let start = out
        .iter()
        .position(|c| matches!(c, Command::Start { .. }))
        .expect("started");
    let write = out
        .iter()
        .position(|c| matches!(c, Command::WriteState(s) if s.status == Status::Starting))
        .expect("written");
    assert!(
        start < write,
        "the state says starting once the process runs"
    );
    assert!(out.contains(&Command::Metric(Metric::Status {
        service: "setup".into(),
        status: Status::Starting
    })));
    let out = tree.done("setup", Exit::Code(0));
    let state = last_state(&out, "setup").expect("written");
    assert_eq!(
        (state.status, state.pid, state.last_exit),
        (Status::Finished, None, Some(Exit::Code(0)))
    );
}
