//! The supervisor's event loop: starts services in dependency order, watches readiness and
//! deaths, applies the restart policy and stops everything in reverse order.
//!
//! All decisions are taken here, in one task, from events sent by small per-process tasks; a
//! generation number per service makes events of an earlier process of that service harmless.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::definition::{Definition, Kind as DefKind};
use super::graph::Graph;
use super::logs::LogHub;
use super::metrics::{BootPhase, SupervisorMetrics};
use super::process::{output_pipe, signal_group, signal_process, Reaper, Spawn};
use super::restart::{Decision, RestartTracker};
use super::state_files::StateFiles;
use crate::config::schema::RestartPolicy;
use crate::service::readiness::wait_for_readiness;
use crate::service::state::{Exit, Kind, ServiceState, StateDir, Status};

/// How long a `finish` script may run (s6's default `timeout-finish`).
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
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

#[derive(Debug)]
enum Event {
    Ready {
        name: String,
        generation: u64,
    },
    ReadyTimeout {
        name: String,
        generation: u64,
    },
    Exited {
        name: String,
        generation: u64,
        exit: Exit,
    },
    FinishDone {
        name: String,
        generation: u64,
        exit: Exit,
        finish: Option<Exit>,
    },
    OneshotDone {
        name: String,
        generation: u64,
        exit: Exit,
        timed_out: bool,
    },
    DownDone {
        name: String,
    },
    RestartDue {
        name: String,
        generation: u64,
    },
    GraceExpired {
        name: String,
        generation: u64,
    },
}

/// Why the tree is coming down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shutdown {
    /// A signal asked for it: a clean stop, exit 0.
    Requested(Signal),
    /// A service failed: exit with this code.
    Failure { service: String, code: u8 },
}

struct Service {
    def: Definition,
    state: ServiceState,
    phase: Phase,
    tracker: RestartTracker,
    generation: u64,
    pid: Option<Pid>,
    /// Write end of the service's log pipe, handed to each of its processes.
    output: OwnedFd,
}

pub struct Supervisor {
    services: BTreeMap<String, Service>,
    graph: Graph,
    policy: RestartPolicy,
    base_env: BTreeMap<String, String>,
    state_files: StateFiles,
    events: mpsc::UnboundedSender<Event>,
    inbox: mpsc::UnboundedReceiver<Event>,
    shutdown: Option<Shutdown>,
    started_at: Instant,
    boot_reported: bool,
    postgres_reported: bool,
    metrics: SupervisorMetrics,
}

impl Supervisor {
    /// `started_at` is when `enclave init` started, so boot phases count from there.
    pub fn new(
        graph: Graph,
        policy: RestartPolicy,
        base_env: BTreeMap<String, String>,
        state_dir: StateDir,
        logs: &LogHub,
        metrics: SupervisorMetrics,
        started_at: Instant,
    ) -> std::io::Result<Self> {
        let (events, inbox) = mpsc::unbounded_channel();
        let mut services = BTreeMap::new();
        let mut state_files = StateFiles::new(state_dir, metrics.clone());
        for name in graph.names() {
            let Some(def) = graph.get(name) else { continue };
            let kind = match def.kind {
                DefKind::Oneshot { .. } => Kind::Oneshot,
                _ => Kind::Longrun,
            };
            let (read, write) = output_pipe()?;
            logs.attach(name, read);
            let service = Service {
                def: def.clone(),
                state: ServiceState::new(name, kind),
                phase: Phase::Pending,
                tracker: RestartTracker::new(policy),
                generation: 0,
                pid: None,
                output: write,
            };
            state_files.write(&service.state);
            metrics.state(name, service.state.status);
            services.insert(name.to_owned(), service);
        }
        Ok(Self {
            services,
            graph,
            policy,
            base_env,
            state_files,
            events,
            inbox,
            shutdown: None,
            started_at,
            boot_reported: false,
            postgres_reported: false,
            metrics,
        })
    }

    /// Runs until the tree is down; returns the exit code.
    pub async fn run(mut self) -> std::io::Result<u8> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut chld = signal(SignalKind::child())?;
        // SIGCHLDs coalesce and one may have come before the handler: sweep regularly too.
        let mut sweep = tokio::time::interval(Duration::from_millis(500));
        match super::early_signals::requested() {
            Some(signal) => {
                tracing::info!(%signal, "stop requested during the boot: starting nothing");
                self.begin_shutdown(Shutdown::Requested(signal));
            }
            None => self.start_ready_services(),
        }
        while !self.is_done() {
            tokio::select! {
                Some(event) = self.inbox.recv() => self.handle(event),
                _ = chld.recv() => Reaper::global().reap(),
                _ = sweep.tick() => {
                    Reaper::global().reap();
                    self.state_files.retry();
                }
                _ = term.recv() => self.begin_shutdown(Shutdown::Requested(Signal::SIGTERM)),
                _ = int.recv() => self.begin_shutdown(Shutdown::Requested(Signal::SIGINT)),
                _ = hup.recv() => self.begin_shutdown(Shutdown::Requested(Signal::SIGHUP)),
            }
        }
        Ok(match &self.shutdown {
            Some(Shutdown::Failure { code, .. }) => *code,
            _ => crate::exit::OK,
        })
    }

    fn is_done(&self) -> bool {
        self.shutdown.is_some() && self.services.values().all(|s| s.phase.is_stopped())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Ready { name, generation } => {
                if self.current(&name, generation, Phase::Starting) {
                    self.set_phase(&name, Phase::Up);
                    self.start_ready_services();
                }
            }
            Event::ReadyTimeout { name, generation } => {
                if self.current(&name, generation, Phase::Starting) {
                    tracing::error!(service = %name, "not ready within timeout-up; stopping the enclave");
                    self.fail(&name, 1);
                }
            }
            Event::Exited {
                name,
                generation,
                exit,
            } => self.on_exit(&name, generation, exit),
            Event::FinishDone {
                name,
                generation,
                exit,
                finish,
            } => {
                if self.generation_of(&name) == Some(generation) {
                    self.after_death(&name, exit, finish);
                }
            }
            Event::OneshotDone {
                name,
                generation,
                exit,
                timed_out,
            } => {
                if self.generation_of(&name) == Some(generation) {
                    self.on_oneshot_done(&name, exit, timed_out);
                }
            }
            Event::DownDone { name } => {
                self.set_phase(&name, Phase::Down);
                self.advance_shutdown();
            }
            Event::RestartDue { name, generation } => {
                if self.current(&name, generation, Phase::Backoff) && self.shutdown.is_none() {
                    self.restart(&name);
                }
            }
            Event::GraceExpired { name, generation } => {
                if self.current(&name, generation, Phase::Stopping) {
                    if let Some(pid) = self.services.get(&name).and_then(|s| s.pid) {
                        tracing::warn!(service = %name, "did not stop within timeout-down; sending SIGKILL to its process group");
                        signal_group(pid, Signal::SIGKILL);
                    }
                }
            }
        }
    }

    fn current(&self, name: &str, generation: u64, phase: Phase) -> bool {
        self.services
            .get(name)
            .is_some_and(|s| s.generation == generation && s.phase == phase)
    }

    fn generation_of(&self, name: &str) -> Option<u64> {
        self.services.get(name).map(|s| s.generation)
    }

    /// Starts every pending service whose dependencies are all up (longruns) or finished
    /// (oneshots).
    fn start_ready_services(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        let ready: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| s.phase == Phase::Pending)
            .filter(|(name, _)| {
                self.graph.dependencies(name).all(|d| {
                    self.services
                        .get(d)
                        .is_some_and(|s| matches!(s.phase, Phase::Up | Phase::Finished))
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in ready {
            self.start(&name);
        }
        if !self.boot_reported
            && self
                .services
                .values()
                .all(|s| matches!(s.phase, Phase::Up | Phase::Finished))
        {
            self.boot_reported = true;
            self.metrics
                .boot_phase(BootPhase::AllUp, self.started_at.elapsed().as_secs_f64());
            tracing::info!(
                services = self.services.len(),
                elapsed_ms = self.started_at.elapsed().as_millis() as u64,
                "all services up"
            );
        }
    }

    fn start(&mut self, name: &str) {
        let Some(service) = self.services.get_mut(name) else {
            return;
        };
        service.generation += 1;
        let generation = service.generation;
        let timeout = service.def.timeout_up;
        let kind = service.def.kind.clone();
        let spec = match &kind {
            DefKind::Longrun {
                run,
                notification_fd,
                ..
            } => self.spawn_spec(name, run.clone(), Vec::new(), *notification_fd),
            DefKind::Oneshot { up, .. } => self.shell_spec(name, up),
            DefKind::Bundle { .. } => return,
        };
        let Some(service) = self.services.get_mut(name) else {
            return;
        };
        let oneshot = matches!(service.def.kind, DefKind::Oneshot { .. });
        let child = match Reaper::global().spawn(&spec, &service.output) {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(
                    service = %name,
                    program = %spec.program.display(),
                    error = %e,
                    "cannot start"
                );
                // 127: the shell's "command not found or not executable".
                let exit = Exit::Code(127);
                let event = if oneshot {
                    Event::OneshotDone {
                        name: name.into(),
                        generation,
                        exit,
                        timed_out: false,
                    }
                } else {
                    Event::Exited {
                        name: name.into(),
                        generation,
                        exit,
                    }
                };
                service.phase = Phase::Starting;
                let _ = self.events.send(event);
                return;
            }
        };
        service.pid = Some(child.pid);
        service.state.pid = Some(child.pid.as_raw() as u32);
        self.set_phase(name, Phase::Starting);
        let events = self.events.clone();
        let name = name.to_owned();
        if oneshot {
            tokio::spawn(watch_oneshot(
                name, generation, child.pid, child.exit, timeout, events,
            ));
        } else {
            tokio::spawn(watch_longrun(
                name,
                generation,
                child.exit,
                child.notification,
                timeout,
                events,
            ));
        }
    }

    fn restart(&mut self, name: &str) {
        if let Some(service) = self.services.get_mut(name) {
            service.state.restart_count += 1;
            service.state.last_restart = Some(unix_now());
            self.metrics.restart(name);
            tracing::info!(service = %name, restarts = service.state.restart_count, "restarting");
        }
        self.start(name);
    }

    fn on_exit(&mut self, name: &str, generation: u64, exit: Exit) {
        let Some(service) = self.services.get_mut(name) else {
            return;
        };
        if service.generation != generation {
            return;
        }
        service.state.last_exit = Some(exit);
        let pid = service.pid.take();
        service.state.pid = None;
        let expected = service.phase == Phase::Stopping;
        if expected {
            tracing::info!(service = %name, %exit, "stopped");
        } else {
            tracing::warn!(service = %name, %exit, "exited");
        }
        let finish = match &service.def.kind {
            DefKind::Longrun {
                finish: Some(f), ..
            } => Some(f.clone()),
            _ => None,
        };
        match finish {
            Some(path) => {
                let (code, sig) = exit.finish_args();
                let mut spec = self.spawn_spec(
                    name,
                    path,
                    vec![code.to_string().into(), sig.to_string().into(), name.into()],
                    None,
                );
                if let Some(pid) = pid {
                    spec.args.push(pid.as_raw().to_string().into());
                }
                self.run_finish(name, generation, exit, spec, pid);
            }
            None => {
                if let Some(pid) = pid {
                    // Stragglers of the dead process would clash with its replacement.
                    signal_group(pid, Signal::SIGKILL);
                }
                self.after_death(name, exit, None);
            }
        }
    }

    fn run_finish(
        &mut self,
        name: &str,
        generation: u64,
        exit: Exit,
        spec: Spawn,
        group: Option<Pid>,
    ) {
        let service = name.to_owned();
        self.run_helper(name, "finish", &spec, Some(FINISH_TIMEOUT), move |result| {
            if let Some(pid) = group {
                signal_group(pid, Signal::SIGKILL);
            }
            Event::FinishDone {
                name: service,
                generation,
                exit,
                finish: result.map(|(finish, _)| finish),
            }
        });
    }

    /// Runs a script of the service (`finish`, `down`) within `timeout` and turns its outcome
    /// (`None` when it could not even start) into the event that continues the service's story.
    fn run_helper(
        &self,
        name: &str,
        what: &'static str,
        spec: &Spawn,
        timeout: Option<Duration>,
        then: impl FnOnce(Option<(Exit, bool)>) -> Event + Send + 'static,
    ) {
        let Some(service) = self.services.get(name) else {
            return;
        };
        let events = self.events.clone();
        match Reaper::global().spawn(spec, &service.output) {
            Ok(child) => {
                tokio::spawn(async move {
                    let outcome = wait_with_timeout(child.pid, child.exit, timeout).await;
                    let _ = events.send(then(Some(outcome)));
                });
            }
            Err(e) => {
                tracing::error!(service = %name, script = what, error = %e, "cannot run");
                let _ = events.send(then(None));
            }
        }
    }

    /// A longrun's process is gone (and its `finish` ran): restart it, give up, or, during
    /// shutdown, count it as stopped.
    fn after_death(&mut self, name: &str, exit: Exit, finish: Option<Exit>) {
        if self.shutdown.is_some() {
            self.set_stopped(name);
            return;
        }
        if finish == Some(Exit::Code(125)) {
            tracing::error!(service = %name, "finish exited 125: permanent failure, not restarting");
            self.set_phase(name, Phase::Failed);
            return;
        }
        let Some(service) = self.services.get_mut(name) else {
            return;
        };
        match service.tracker.on_death(Instant::now()) {
            Decision::GiveUp => {
                tracing::error!(
                    service = %name,
                    %exit,
                    max_restarts = self.policy.max_restarts,
                    window_ms = self.policy.window.as_millis() as u64,
                    "restart limit exceeded; stopping the enclave"
                );
                self.fail(name, exit.failure_code());
            }
            Decision::RestartAfter(delay) => {
                let generation = service.generation;
                self.set_phase(name, Phase::Backoff);
                let events = self.events.clone();
                let name = name.to_owned();
                tracing::info!(service = %name, delay_ms = delay.as_millis() as u64, "restart scheduled");
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = events.send(Event::RestartDue { name, generation });
                });
            }
        }
    }

    fn on_oneshot_done(&mut self, name: &str, exit: Exit, timed_out: bool) {
        if let Some(service) = self.services.get_mut(name) {
            service.pid = None;
            service.state.pid = None;
            service.state.last_exit = Some(exit);
        }
        if self.shutdown.is_some() {
            self.set_stopped(name);
        } else if exit.success() {
            tracing::info!(service = %name, "finished");
            self.set_phase(name, Phase::Finished);
            self.start_ready_services();
        } else {
            let why = if timed_out {
                "timed out (timeout-up)"
            } else {
                "failed"
            };
            tracing::error!(service = %name, %exit, "oneshot {why}; stopping the enclave");
            self.fail(name, exit.failure_code());
        }
    }

    /// A service stopped during shutdown: `down`, or `failed` if it is the one that failed.
    fn set_stopped(&mut self, name: &str) {
        let culprit =
            matches!(&self.shutdown, Some(Shutdown::Failure { service, .. }) if service == name);
        self.set_phase(name, if culprit { Phase::Failed } else { Phase::Down });
        self.advance_shutdown();
    }

    /// Marks the service failed and brings the tree down with `code`.
    fn fail(&mut self, name: &str, code: u8) {
        self.begin_shutdown(Shutdown::Failure {
            service: name.to_owned(),
            code,
        });
        // A process still running (readiness timeout) is stopped by the shutdown; only a dead
        // service is marked failed at once.
        let dead = self.services.get(name).is_some_and(|s| s.pid.is_none());
        if dead {
            self.set_phase(name, Phase::Failed);
            self.advance_shutdown();
        }
    }

    pub fn begin_shutdown(&mut self, reason: Shutdown) {
        if self.shutdown.is_some() {
            // A second signal must not cut a graceful stop short.
            return;
        }
        match &reason {
            Shutdown::Requested(sig) => tracing::info!(signal = %sig, "shutting down"),
            Shutdown::Failure { service, code } => {
                tracing::error!(service = %service, exit_code = code, "shutting down after a failure")
            }
        }
        self.shutdown = Some(reason);
        self.metrics.shutting_down();
        let idle: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Pending | Phase::Backoff))
            .map(|(n, _)| n.clone())
            .collect();
        for name in idle {
            self.set_phase(&name, Phase::Down);
        }
        self.advance_shutdown();
    }

    /// Stops every running service whose dependents have all stopped: reverse dependency
    /// order, independent services in parallel.
    fn advance_shutdown(&mut self) {
        if self.shutdown.is_none() {
            return;
        }
        // A service with nothing to stop (a oneshot without `down`) is down at once, which
        // may free its dependencies in turn: repeat until nothing more can stop now.
        loop {
            let stoppable: Vec<String> = self
                .services
                .iter()
                .filter(|(_, s)| matches!(s.phase, Phase::Starting | Phase::Up | Phase::Finished))
                .filter(|(name, _)| {
                    self.graph
                        .dependents(name)
                        .all(|d| self.services.get(d).is_none_or(|s| s.phase.is_stopped()))
                })
                .map(|(n, _)| n.clone())
                .collect();
            for name in &stoppable {
                self.stop(name);
            }
            let stopped_at_once = stoppable
                .iter()
                .any(|n| self.services.get(n).is_some_and(|s| s.phase.is_stopped()));
            if !stopped_at_once {
                break;
            }
        }
    }

    fn stop(&mut self, name: &str) {
        let Some(service) = self.services.get(name) else {
            return;
        };
        let generation = service.generation;
        let grace = service.def.timeout_down;
        let down_signal = service.def.down_signal;
        let kind = service.def.kind.clone();
        match (&kind, service.phase, service.pid) {
            (
                DefKind::Oneshot {
                    down: Some(down), ..
                },
                Phase::Finished,
                _,
            ) => {
                let spec = self.shell_spec(name, down);
                self.set_phase(name, Phase::Stopping);
                self.run_down(name, spec, grace);
            }
            (_, Phase::Finished, _) | (_, _, None) => self.set_phase(name, Phase::Down),
            (kind, _, Some(pid)) => {
                let signal = match kind {
                    DefKind::Longrun { .. } => down_signal,
                    _ => Signal::SIGTERM,
                };
                tracing::info!(service = %name, %signal, "stopping");
                self.set_phase(name, Phase::Stopping);
                if matches!(kind, DefKind::Oneshot { .. }) {
                    signal_group(pid, signal);
                } else {
                    signal_process(pid, signal);
                }
                // A stopped process would never see the signal.
                signal_process(pid, Signal::SIGCONT);
                if let Some(grace) = grace {
                    let events = self.events.clone();
                    let name = name.to_owned();
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        let _ = events.send(Event::GraceExpired { name, generation });
                    });
                }
            }
        }
    }

    fn run_down(&mut self, name: &str, spec: Spawn, grace: Option<Duration>) {
        let service = name.to_owned();
        self.run_helper(name, "down", &spec, grace, move |result| {
            if let Some((exit, timed_out)) = result.filter(|(exit, _)| !exit.success()) {
                tracing::warn!(service = %service, %exit, timed_out, "down script failed");
            }
            Event::DownDone { name: service }
        });
    }

    fn set_phase(&mut self, name: &str, phase: Phase) {
        let Some(service) = self.services.get_mut(name) else {
            return;
        };
        service.phase = phase;
        let changed = service.state.status != phase.status();
        service.state.status = phase.status();
        if changed {
            self.metrics.state(name, service.state.status);
        }
        if name == "postgres" && phase == Phase::Up && !self.postgres_reported {
            self.postgres_reported = true;
            self.metrics.boot_phase(
                BootPhase::PostgresReady,
                self.started_at.elapsed().as_secs_f64(),
            );
        }
        if phase != Phase::Starting && phase != Phase::Up && phase != Phase::Stopping {
            service.state.pid = None;
        }
        tracing::debug!(service = %name, status = %service.state.status, "state");
        self.state_files.write(&service.state);
    }

    fn spawn_spec(
        &self,
        name: &str,
        program: std::path::PathBuf,
        args: Vec<std::ffi::OsString>,
        notification_fd: Option<i32>,
    ) -> Spawn {
        let mut env = self.base_env.clone();
        if let Some(service) = self.services.get(name) {
            env.extend(service.def.env.clone());
            return Spawn {
                program,
                args,
                cwd: service.def.dir.clone(),
                env,
                notification_fd,
            };
        }
        Spawn {
            program,
            args,
            cwd: "/".into(),
            env,
            notification_fd,
        }
    }

    /// Oneshot scripts are command lines run by `/bin/sh -c` (there is no execline here).
    fn shell_spec(&self, name: &str, script: &str) -> Spawn {
        self.spawn_spec(
            name,
            "/bin/sh".into(),
            vec!["-c".into(), script.into()],
            None,
        )
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Waits for a process; after `timeout` kills its whole group and waits for the exit.
async fn wait_with_timeout(
    pid: Pid,
    mut exit: tokio::sync::oneshot::Receiver<Exit>,
    timeout: Option<Duration>,
) -> (Exit, bool) {
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = &mut exit => (result.unwrap_or(Exit::Code(1)), false),
        () = limit => {
            signal_group(pid, Signal::SIGKILL);
            (exit.await.unwrap_or(Exit::Signal(9)), true)
        }
    }
}

async fn watch_oneshot(
    name: String,
    generation: u64,
    pid: Pid,
    exit: tokio::sync::oneshot::Receiver<Exit>,
    timeout: Option<Duration>,
    events: mpsc::UnboundedSender<Event>,
) {
    let (exit, timed_out) = wait_with_timeout(pid, exit, timeout).await;
    let _ = events.send(Event::OneshotDone {
        name,
        generation,
        exit,
        timed_out,
    });
}

async fn watch_longrun(
    name: String,
    generation: u64,
    mut exit: tokio::sync::oneshot::Receiver<Exit>,
    notification: Option<OwnedFd>,
    timeout: Option<Duration>,
    events: mpsc::UnboundedSender<Event>,
) {
    match notification {
        None => {
            let _ = events.send(Event::Ready {
                name: name.clone(),
                generation,
            });
        }
        Some(fd) => {
            let limit = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait_for_readiness(fd) => {
                    let _ = events.send(Event::Ready { name: name.clone(), generation });
                }
                result = &mut exit => {
                    let exit = result.unwrap_or(Exit::Code(1));
                    let _ = events.send(Event::Exited { name, generation, exit });
                    return;
                }
                () = limit => {
                    let _ = events.send(Event::ReadyTimeout { name: name.clone(), generation });
                }
            }
        }
    }
    if let Ok(exit) = exit.await {
        let _ = events.send(Event::Exited {
            name,
            generation,
            exit,
        });
    }
}
