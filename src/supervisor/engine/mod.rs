//! The supervisor's decisions, and nothing else: a state machine that takes what happened
//! ([`Event`]: a process started, became ready, exited; a timer fired; a stop was requested) and
//! the time, updates every service's phase, and returns what to do ([`Command`]: start a
//! process, send a signal, arm a timer, write a state file, log, exit with a code). It performs
//! no I/O; the executor (`super::executor`) does what it says and feeds the outcomes back.
//!
//! Start order: a service starts once each of its dependencies is up (longrun) or finished
//! (oneshot); independent services start together. A longrun that dies on its own is restarted
//! within the restart limits (`super::restart`); past them, or when a oneshot fails or a
//! longrun is not ready within `timeout-up`, the whole tree comes down with the failure's code.
//! Stop order is the reverse: a service is stopped once everything that depends on it has
//! stopped. A generation number per service makes events of an earlier process harmless.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::time::Instant;

use super::definition::{Definition, Kind as DefKind};
use super::graph::Graph;
use super::metrics::BootPhase;
use super::restart::{Decision, RestartLimits, RestartTracker};
use crate::service::state::{Exit, Kind, ServiceState, Status};

mod messages;
#[cfg(test)]
mod tests;

pub use messages::{Command, Event, Metric, Note, Now, ScriptEnd, Shutdown, Timer};

/// How long a `finish` script may run (s6's default `timeout-finish`).
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// A `finish` script exiting 125 says: do not restart.
const PERMANENT_FAILURE: Exit = Exit::Code(125);
/// What a process that cannot even be started counts as: the shell's "command not found or
/// not executable".
const CANNOT_START: Exit = Exit::Code(127);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not started yet (waiting for its dependencies).
    Pending,
    Starting,
    Up,
    /// Dead, waiting for its restart delay.
    Backoff,
    Stopping,
    Down,
    Finished,
    Failed,
}

impl Phase {
    fn status(self) -> Status {
        match self {
            Phase::Pending | Phase::Backoff | Phase::Down => Status::Down,
            Phase::Starting => Status::Starting,
            Phase::Up => Status::Up,
            Phase::Stopping => Status::Stopping,
            Phase::Finished => Status::Finished,
            Phase::Failed => Status::Failed,
        }
    }

    /// Nothing of the service runs and nothing will be started for it.
    fn is_stopped(self) -> bool {
        matches!(self, Phase::Pending | Phase::Down | Phase::Failed)
    }
}

struct Unit {
    def: Definition,
    state: ServiceState,
    phase: Phase,
    tracker: RestartTracker,
    generation: u64,
    pid: Option<Pid>,
    /// Its `timeout-up` killed the current oneshot.
    timed_out: bool,
}

impl Unit {
    fn is_oneshot(&self) -> bool {
        matches!(self.def.kind, DefKind::Oneshot { .. })
    }
}

/// The state of the whole tree, and the rules that move it.
pub struct Engine {
    units: BTreeMap<String, Unit>,
    graph: Graph,
    limits: RestartLimits,
    shutdown: Option<Shutdown>,
    started_at: Instant,
    boot_reported: bool,
    postgres_reported: bool,
    exited: bool,
    /// The commands of the event being handled.
    out: Vec<Command>,
}

impl Engine {
    /// `started_at` is when `enclave init` started, so boot phases count from there.
    pub fn new(graph: Graph, limits: RestartLimits, started_at: Instant) -> Self {
        let mut units = BTreeMap::new();
        for name in graph.names() {
            let Some(def) = graph.get(name) else { continue };
            let kind = match def.kind {
                DefKind::Oneshot { .. } => Kind::Oneshot,
                _ => Kind::Longrun,
            };
            units.insert(
                name.to_owned(),
                Unit {
                    def: def.clone(),
                    state: ServiceState::new(name, kind),
                    phase: Phase::Pending,
                    tracker: RestartTracker::new(limits),
                    generation: 0,
                    pid: None,
                    timed_out: false,
                },
            );
        }
        Self {
            units,
            graph,
            limits,
            shutdown: None,
            started_at,
            boot_reported: false,
            postgres_reported: false,
            exited: false,
            out: Vec::new(),
        }
    }

    /// Every service's state, as the state files must show it before anything starts.
    pub fn states(&self) -> impl Iterator<Item = &ServiceState> {
        self.units.values().map(|u| &u.state)
    }

    pub fn definition(&self, service: &str) -> Option<&Definition> {
        self.units.get(service).map(|u| &u.def)
    }

    #[cfg(test)]
    pub(crate) fn phase(&self, service: &str) -> Option<Phase> {
        self.units.get(service).map(|u| u.phase)
    }

    /// Applies `event`, which happened at `now`, and returns what to do about it.
    pub fn handle(&mut self, event: Event, now: Now) -> Vec<Command> {
        match event {
            Event::Boot => self.start_ready_services(now),
            Event::StopRequested(signal) => self.begin_shutdown(Shutdown::Requested(signal), now),
            Event::Spawned {
                service,
                generation,
                pid,
            } => self.on_spawned(&service, generation, pid, now),
            Event::SpawnFailed {
                service,
                generation,
            } => {
                if self.unit(&service).is_some_and(|u| u.is_oneshot()) {
                    self.on_oneshot_done(&service, generation, CANNOT_START, now);
                } else {
                    self.on_exit(&service, generation, CANNOT_START, now);
                }
            }
            Event::Ready {
                service,
                generation,
            } => {
                if self.current(&service, generation, Phase::Starting) {
                    self.set_phase(&service, Phase::Up, now);
                    self.start_ready_services(now);
                }
            }
            Event::Exited {
                service,
                generation,
                exit,
            } => self.on_exit(&service, generation, exit, now),
            Event::FinishDone {
                service,
                generation,
                exit,
                group,
                finish,
            } => {
                if let Some(pid) = group {
                    // Stragglers of the dead process would clash with its replacement.
                    self.kill_group(pid);
                }
                if self.generation_of(&service) == Some(generation) {
                    self.after_death(&service, exit, finish.map(|(e, _)| e), now);
                }
            }
            Event::OneshotDone {
                service,
                generation,
                exit,
            } => self.on_oneshot_done(&service, generation, exit, now),
            Event::DownDone { service, end } => {
                if let Some((exit, timed_out)) = end.filter(|(exit, _)| !exit.success()) {
                    self.log(Note::DownScriptFailed {
                        service: service.clone(),
                        exit,
                        timed_out,
                    });
                }
                self.set_phase(&service, Phase::Down, now);
                self.advance_shutdown(now);
            }
            Event::TimerFired {
                service,
                generation,
                timer,
            } => self.on_timer(&service, generation, timer, now),
        }
        if !self.exited && self.is_done() {
            self.exited = true;
            let code = match &self.shutdown {
                Some(Shutdown::Failure { code, .. }) => *code,
                _ => crate::exit::OK,
            };
            self.out.push(Command::Exit(code));
        }
        std::mem::take(&mut self.out)
    }

    fn is_done(&self) -> bool {
        self.shutdown.is_some() && self.units.values().all(|u| u.phase.is_stopped())
    }

    fn unit(&self, service: &str) -> Option<&Unit> {
        self.units.get(service)
    }

    fn current(&self, service: &str, generation: u64, phase: Phase) -> bool {
        self.unit(service)
            .is_some_and(|u| u.generation == generation && u.phase == phase)
    }

    fn generation_of(&self, service: &str) -> Option<u64> {
        self.unit(service).map(|u| u.generation)
    }

    fn log(&mut self, note: Note) {
        self.out.push(Command::Log(note));
    }

    fn metric(&mut self, metric: Metric) {
        self.out.push(Command::Metric(metric));
    }

    fn kill_group(&mut self, pid: Pid) {
        self.out.push(Command::Signal {
            pid,
            signal: Signal::SIGKILL,
            group: true,
        });
    }

    fn arm(&mut self, service: &str, generation: u64, timer: Timer, after: Duration) {
        self.out.push(Command::Arm {
            service: service.to_owned(),
            generation,
            timer,
            after,
        });
    }

    /// Starts every pending service whose dependencies are all up (longruns) or finished
    /// (oneshots).
    fn start_ready_services(&mut self, now: Now) {
        if self.shutdown.is_some() {
            return;
        }
        let ready: Vec<String> = self
            .units
            .iter()
            .filter(|(_, u)| u.phase == Phase::Pending)
            .filter(|(name, _)| {
                self.graph.dependencies(name).all(|d| {
                    self.unit(d)
                        .is_some_and(|u| matches!(u.phase, Phase::Up | Phase::Finished))
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in ready {
            self.start(&name);
        }
        if !self.boot_reported
            && self
                .units
                .values()
                .all(|u| matches!(u.phase, Phase::Up | Phase::Finished))
        {
            self.boot_reported = true;
            let elapsed = now.at.saturating_duration_since(self.started_at);
            self.metric(Metric::BootPhase {
                phase: BootPhase::AllUp,
                after: elapsed,
            });
            self.log(Note::AllUp {
                services: self.units.len(),
                elapsed,
            });
        }
    }

    /// A new process for the service. Its phase is `Starting` from now on, but its files say
    /// so only once it runs ([`Event::Spawned`]).
    fn start(&mut self, name: &str) {
        let Some(unit) = self.units.get_mut(name) else {
            return;
        };
        if matches!(unit.def.kind, DefKind::Bundle { .. }) {
            return;
        }
        unit.generation += 1;
        unit.phase = Phase::Starting;
        unit.timed_out = false;
        let generation = unit.generation;
        self.out.push(Command::Start {
            service: name.to_owned(),
            generation,
        });
    }

    fn on_spawned(&mut self, name: &str, generation: u64, pid: Pid, now: Now) {
        let Some(unit) = self.units.get_mut(name) else {
            return;
        };
        if unit.generation != generation {
            return;
        }
        unit.pid = Some(pid);
        unit.state.pid = u32::try_from(pid.as_raw()).ok();
        // A longrun without a readiness pipe is ready as soon as it runs: nothing to time.
        let timeout = match &unit.def.kind {
            DefKind::Longrun {
                notification_fd: None,
                ..
            } => None,
            _ => unit.def.timeout_up,
        };
        self.set_phase(name, Phase::Starting, now);
        if let Some(after) = timeout {
            self.arm(name, generation, Timer::Up, after);
        }
    }

    fn restart(&mut self, name: &str, now: Now) {
        let Some(unit) = self.units.get_mut(name) else {
            return;
        };
        unit.state.restart_count += 1;
        unit.state.last_restart = Some(now.unix);
        let restarts = unit.state.restart_count;
        self.metric(Metric::Restart {
            service: name.to_owned(),
        });
        self.log(Note::Restarting {
            service: name.to_owned(),
            restarts,
        });
        self.start(name);
    }

    fn on_timer(&mut self, name: &str, generation: u64, timer: Timer, now: Now) {
        match timer {
            Timer::Up => {
                if !self.current(name, generation, Phase::Starting) {
                    return;
                }
                let Some(unit) = self.units.get_mut(name) else {
                    return;
                };
                if unit.is_oneshot() {
                    // Its end (killed) decides, as for any exit of a oneshot.
                    unit.timed_out = true;
                    if let Some(pid) = unit.pid {
                        self.kill_group(pid);
                    }
                } else {
                    self.log(Note::NotReady {
                        service: name.to_owned(),
                    });
                    self.fail(name, 1, now);
                }
            }
            Timer::Restart => {
                if self.current(name, generation, Phase::Backoff) && self.shutdown.is_none() {
                    self.restart(name, now);
                }
            }
            Timer::Grace => {
                if self.current(name, generation, Phase::Stopping) {
                    if let Some(pid) = self.unit(name).and_then(|u| u.pid) {
                        self.log(Note::Killing {
                            service: name.to_owned(),
                        });
                        self.kill_group(pid);
                    }
                }
            }
        }
    }

    fn on_exit(&mut self, name: &str, generation: u64, exit: Exit, now: Now) {
        let Some(unit) = self.units.get_mut(name) else {
            return;
        };
        if unit.generation != generation {
            return;
        }
        unit.state.last_exit = Some(exit);
        let pid = unit.pid.take();
        unit.state.pid = None;
        let finish = match &unit.def.kind {
            DefKind::Longrun { finish, .. } => finish.clone(),
            _ => None,
        };
        let service = name.to_owned();
        if unit.phase == Phase::Stopping {
            self.log(Note::Stopped { service, exit });
        } else {
            self.log(Note::Exited { service, exit });
        }
        match finish {
            Some(script) => self.out.push(Command::RunFinish {
                service: name.to_owned(),
                generation,
                script,
                exit,
                pid,
                timeout: FINISH_TIMEOUT,
            }),
            None => {
                if let Some(pid) = pid {
                    // Stragglers of the dead process would clash with its replacement.
                    self.kill_group(pid);
                }
                self.after_death(name, exit, None, now);
            }
        }
    }

    /// A longrun's process is gone (and its `finish` ran): restart it, give up, or, during
    /// shutdown, count it as stopped.
    fn after_death(&mut self, name: &str, exit: Exit, finish: Option<Exit>, now: Now) {
        if self.shutdown.is_some() {
            self.set_stopped(name, now);
            return;
        }
        if finish == Some(PERMANENT_FAILURE) {
            self.log(Note::PermanentFailure {
                service: name.to_owned(),
            });
            self.set_phase(name, Phase::Failed, now);
            return;
        }
        let limits = self.limits;
        let Some(unit) = self.units.get_mut(name) else {
            return;
        };
        match unit.tracker.on_death(now.at) {
            Decision::GiveUp => {
                self.log(Note::RestartLimit {
                    service: name.to_owned(),
                    exit,
                    max_restarts: limits.max_restarts,
                    window: limits.window,
                });
                self.fail(name, exit.failure_code(), now);
            }
            Decision::RestartAfter(delay) => {
                let generation = unit.generation;
                self.set_phase(name, Phase::Backoff, now);
                self.log(Note::RestartScheduled {
                    service: name.to_owned(),
                    delay,
                });
                self.arm(name, generation, Timer::Restart, delay);
            }
        }
    }

    fn on_oneshot_done(&mut self, name: &str, generation: u64, exit: Exit, now: Now) {
        let Some(unit) = self.units.get_mut(name) else {
            return;
        };
        if unit.generation != generation {
            return;
        }
        unit.pid = None;
        unit.state.pid = None;
        unit.state.last_exit = Some(exit);
        let timed_out = unit.timed_out;
        if self.shutdown.is_some() {
            self.set_stopped(name, now);
        } else if exit.success() {
            self.log(Note::Finished {
                service: name.to_owned(),
            });
            self.set_phase(name, Phase::Finished, now);
            self.start_ready_services(now);
        } else {
            self.log(Note::OneshotFailed {
                service: name.to_owned(),
                exit,
                timed_out,
            });
            self.fail(name, exit.failure_code(), now);
        }
    }

    /// A service stopped during shutdown: `down`, or `failed` if it is the one that failed.
    fn set_stopped(&mut self, name: &str, now: Now) {
        let culprit =
            matches!(&self.shutdown, Some(Shutdown::Failure { service, .. }) if service == name);
        let phase = if culprit { Phase::Failed } else { Phase::Down };
        self.set_phase(name, phase, now);
        self.advance_shutdown(now);
    }

    /// Marks the service failed and brings the tree down with `code`.
    fn fail(&mut self, name: &str, code: u8, now: Now) {
        self.begin_shutdown(
            Shutdown::Failure {
                service: name.to_owned(),
                code,
            },
            now,
        );
        // A process still running (readiness timeout) is stopped by the shutdown; only a dead
        // service is marked failed at once.
        if self.unit(name).is_some_and(|u| u.pid.is_none()) {
            self.set_phase(name, Phase::Failed, now);
            self.advance_shutdown(now);
        }
    }

    fn begin_shutdown(&mut self, reason: Shutdown, now: Now) {
        if self.shutdown.is_some() {
            // A second signal must not cut a graceful stop short.
            return;
        }
        self.log(Note::ShuttingDown(reason.clone()));
        self.shutdown = Some(reason);
        self.metric(Metric::ShuttingDown);
        let idle: Vec<String> = self
            .units
            .iter()
            .filter(|(_, u)| matches!(u.phase, Phase::Pending | Phase::Backoff))
            .map(|(n, _)| n.clone())
            .collect();
        for name in idle {
            self.set_phase(&name, Phase::Down, now);
        }
        self.advance_shutdown(now);
    }

    /// Stops every running service whose dependents have all stopped: reverse dependency
    /// order, independent services in parallel.
    fn advance_shutdown(&mut self, now: Now) {
        if self.shutdown.is_none() {
            return;
        }
        // A service with nothing to stop (a oneshot without `down`) is down at once, which
        // may free its dependencies in turn: repeat until nothing more can stop now.
        loop {
            let stoppable: Vec<String> = self
                .units
                .iter()
                .filter(|(_, u)| matches!(u.phase, Phase::Starting | Phase::Up | Phase::Finished))
                .filter(|(name, _)| {
                    self.graph
                        .dependents(name)
                        .all(|d| self.unit(d).is_none_or(|u| u.phase.is_stopped()))
                })
                .map(|(n, _)| n.clone())
                .collect();
            for name in &stoppable {
                self.stop(name, now);
            }
            let stopped_at_once = stoppable
                .iter()
                .any(|n| self.unit(n).is_some_and(|u| u.phase.is_stopped()));
            if !stopped_at_once {
                break;
            }
        }
    }

    fn stop(&mut self, name: &str, now: Now) {
        let Some(unit) = self.unit(name) else {
            return;
        };
        let generation = unit.generation;
        let grace = unit.def.timeout_down;
        let down_signal = unit.def.down_signal;
        let (phase, pid) = (unit.phase, unit.pid);
        let (oneshot, down) = match &unit.def.kind {
            DefKind::Oneshot { down, .. } => (true, down.clone()),
            _ => (false, None),
        };
        match (phase, pid, down) {
            (Phase::Finished, _, Some(script)) => {
                self.set_phase(name, Phase::Stopping, now);
                self.out.push(Command::RunDown {
                    service: name.to_owned(),
                    script,
                    timeout: grace,
                });
            }
            (Phase::Finished, _, _) | (_, None, _) => self.set_phase(name, Phase::Down, now),
            (_, Some(pid), _) => {
                let signal = if oneshot {
                    Signal::SIGTERM
                } else {
                    down_signal
                };
                self.log(Note::Stopping {
                    service: name.to_owned(),
                    signal,
                });
                self.set_phase(name, Phase::Stopping, now);
                // A oneshot is a shell script: its commands must stop too.
                self.out.push(Command::Signal {
                    pid,
                    signal,
                    group: oneshot,
                });
                // A stopped process would never see the signal.
                self.out.push(Command::Signal {
                    pid,
                    signal: Signal::SIGCONT,
                    group: false,
                });
                if let Some(after) = grace {
                    self.arm(name, generation, Timer::Grace, after);
                }
            }
        }
    }

    fn set_phase(&mut self, name: &str, phase: Phase, now: Now) {
        let Some(unit) = self.units.get_mut(name) else {
            return;
        };
        unit.phase = phase;
        let status = phase.status();
        let changed = unit.state.status != status;
        unit.state.status = status;
        if !matches!(phase, Phase::Starting | Phase::Up | Phase::Stopping) {
            unit.state.pid = None;
        }
        let state = unit.state.clone();
        if changed {
            self.metric(Metric::Status {
                service: name.to_owned(),
                status,
            });
        }
        if name == "postgres" && phase == Phase::Up && !self.postgres_reported {
            self.postgres_reported = true;
            self.metric(Metric::BootPhase {
                phase: BootPhase::PostgresReady,
                after: now.at.saturating_duration_since(self.started_at),
            });
        }
        self.log(Note::State {
            service: name.to_owned(),
            status,
        });
        self.out.push(Command::WriteState(state));
    }
}
