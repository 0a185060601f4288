//! The supervisor's hands: performs the engine's commands (spawning processes, signals, timers,
//! state files, metrics, log lines), turns what happens to the processes into events for the
//! engine, and reaps every child. One task decides (this loop, through the engine); every other
//! task it starts (process watchers, timers, the signal listener) belongs to its tracker and is
//! cancelled and joined before [`Supervisor::run`] returns.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::definition::Kind as DefKind;
use super::engine::{Command, Engine, Event, Metric, Now, ScriptEnd};
use super::graph::Graph;
use super::logs::LogHub;
use super::metrics::SupervisorMetrics;
use super::process::{output_pipe, signal_group, signal_process, Reaper, Spawn};
use super::restart::RestartLimits;
use super::state_files::StateFiles;
use super::{early_signals, journal, watch};
use crate::service::state::{Exit, StateDir};

/// SIGCHLDs coalesce and one may come before the handler: the loop reaps (and retries lagging
/// state files) this often too.
const SWEEP: Duration = Duration::from_millis(500);

pub struct Supervisor {
    engine: Engine,
    base_env: BTreeMap<String, String>,
    /// Write end of each service's log pipe, handed to each of its processes.
    outputs: BTreeMap<String, OwnedFd>,
    state_files: StateFiles,
    metrics: SupervisorMetrics,
    reaper: &'static Reaper,
    events: mpsc::UnboundedSender<Event>,
    inbox: mpsc::UnboundedReceiver<Event>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

/// Asks a running supervisor for a clean stop, as a termination signal does.
#[derive(Clone)]
pub struct Stopper(mpsc::UnboundedSender<Event>);

impl Stopper {
    pub fn stop(&self, signal: Signal) {
        let _ = self.0.send(Event::StopRequested(signal));
    }
}

impl Supervisor {
    /// Opens each service's log pipe and writes its first state. `started_at` is when
    /// `enclave init` started, so boot phases count from there.
    pub fn new(
        graph: Graph,
        limits: RestartLimits,
        base_env: BTreeMap<String, String>,
        state_dir: StateDir,
        logs: &LogHub,
        metrics: SupervisorMetrics,
        started_at: Instant,
    ) -> std::io::Result<Self> {
        let engine = Engine::new(graph, limits, started_at);
        let (events, inbox) = mpsc::unbounded_channel();
        let mut state_files = StateFiles::new(state_dir, metrics.clone());
        let mut outputs = BTreeMap::new();
        for state in engine.states() {
            let (read, write) = output_pipe()?;
            logs.attach(&state.name, read);
            outputs.insert(state.name.clone(), write);
            state_files.write(state);
            metrics.state(&state.name, state.status);
        }
        Ok(Self {
            engine,
            base_env,
            outputs,
            state_files,
            metrics,
            reaper: Reaper::global(),
            events,
            inbox,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        })
    }

    pub fn stopper(&self) -> Stopper {
        Stopper(self.events.clone())
    }

    /// The tracker of every task the supervisor starts: closed and empty once `run` returns.
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// From now on SIGTERM, SIGINT and SIGHUP stop the tree cleanly. The handlers are in place
    /// when this returns; a signal that came earlier was recorded by `early_signals`.
    pub fn stop_on_termination_signals(&self) -> std::io::Result<()> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let stopper = self.stopper();
        self.spawn(async move {
            loop {
                let signal = tokio::select! {
                    _ = term.recv() => Signal::SIGTERM,
                    _ = int.recv() => Signal::SIGINT,
                    _ = hup.recv() => Signal::SIGHUP,
                };
                stopper.stop(signal);
            }
        });
        Ok(())
    }

    /// Runs until the tree is down; returns the exit code once every task it started has
    /// ended.
    pub async fn run(mut self) -> std::io::Result<u8> {
        let result = self.supervise().await;
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        result
    }

    async fn supervise(&mut self) -> std::io::Result<u8> {
        let mut chld = signal(SignalKind::child())?;
        let mut sweep = tokio::time::interval(SWEEP);
        let first = match early_signals::requested() {
            Some(signal) => {
                tracing::info!(%signal, "stop requested during the boot: starting nothing");
                Event::StopRequested(signal)
            }
            None => Event::Boot,
        };
        let mut code = self.apply(first);
        while code.is_none() {
            tokio::select! {
                Some(event) = self.inbox.recv() => code = self.apply(event),
                _ = chld.recv() => self.reaper.reap(),
                _ = sweep.tick() => {
                    self.reaper.reap();
                    self.state_files.retry();
                }
            }
        }
        Ok(code.unwrap_or(crate::exit::FAILURE))
    }

    fn apply(&mut self, event: Event) -> Option<u8> {
        let commands = self.engine.handle(event, now());
        self.perform(commands)
    }

    /// Performs `commands` in order; returns the exit code once the engine gives it.
    fn perform(&mut self, commands: Vec<Command>) -> Option<u8> {
        let mut code = None;
        for command in commands {
            match command {
                Command::Start {
                    service,
                    generation,
                } => {
                    if let Some(spawned) = self.start(&service, generation) {
                        // The engine records the pid before anything else happens.
                        code = code.or(self.apply(spawned));
                    }
                }
                Command::RunFinish {
                    service,
                    generation,
                    script,
                    exit,
                    pid,
                    timeout,
                } => self.run_finish(&service, generation, script, exit, pid, timeout),
                Command::RunDown {
                    service,
                    script,
                    timeout,
                } => {
                    let spec = self.shell(&service, &script);
                    let name = service.clone();
                    self.run_script(&service, "down", spec, timeout, move |end| {
                        Event::DownDone { service: name, end }
                    });
                }
                Command::Signal { pid, signal, group } => {
                    if group {
                        signal_group(pid, signal);
                    } else {
                        signal_process(pid, signal);
                    }
                }
                Command::Arm {
                    service,
                    generation,
                    timer,
                    after,
                } => {
                    let event = Event::TimerFired {
                        service,
                        generation,
                        timer,
                    };
                    self.spawn(watch::timer(after, event, self.events.clone()));
                }
                Command::WriteState(state) => self.state_files.write(&state),
                Command::Metric(metric) => self.record(metric),
                Command::Log(note) => journal::log(&note),
                Command::Exit(exit) => code = Some(exit),
            }
        }
        code
    }

    /// Every task of the supervisor: tracked, and ended by the cancellation at the end of `run`.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = task => {}
            }
        });
    }

    fn record(&self, metric: Metric) {
        match metric {
            Metric::Status { service, status } => self.metrics.state(&service, status),
            Metric::Restart { service } => self.metrics.restart(&service),
            Metric::BootPhase { phase, after } => {
                self.metrics.boot_phase(phase, after.as_secs_f64())
            }
            Metric::ShuttingDown => self.metrics.shutting_down(),
        }
    }

    /// Starts the service's process and its watcher; returns the event that says it runs, or
    /// sends the one that says it could not start.
    fn start(&mut self, service: &str, generation: u64) -> Option<Event> {
        let (spec, oneshot) = match &self.engine.definition(service)?.kind {
            DefKind::Longrun {
                run,
                notification_fd,
                ..
            } => (
                self.spec(service, run.clone(), Vec::new(), *notification_fd)?,
                false,
            ),
            DefKind::Oneshot { up, .. } => (self.shell(service, up)?, true),
            DefKind::Bundle { .. } => return None,
        };
        let output = self.outputs.get(service)?;
        let child = match self.reaper.spawn(&spec, output) {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(
                    service = %service,
                    program = %spec.program.display(),
                    error = %e,
                    "cannot start"
                );
                let _ = self.events.send(Event::SpawnFailed {
                    service: service.to_owned(),
                    generation,
                });
                return None;
            }
        };
        let name = service.to_owned();
        let events = self.events.clone();
        if oneshot {
            self.spawn(watch::oneshot(name, generation, child.exit, events));
        } else {
            self.spawn(watch::longrun(
                name,
                generation,
                child.exit,
                child.notification,
                events,
            ));
        }
        Some(Event::Spawned {
            service: service.to_owned(),
            generation,
            pid: child.pid,
        })
    }

    /// `finish <code> <signal> <service> [<pid>]`, as s6 runs it.
    fn run_finish(
        &self,
        service: &str,
        generation: u64,
        script: PathBuf,
        exit: Exit,
        pid: Option<Pid>,
        timeout: Duration,
    ) {
        let (code, sig) = exit.finish_args();
        let mut args: Vec<OsString> = vec![
            code.to_string().into(),
            sig.to_string().into(),
            service.into(),
        ];
        if let Some(pid) = pid {
            args.push(pid.as_raw().to_string().into());
        }
        let name = service.to_owned();
        let spec = self.spec(service, script, args, None);
        self.run_script(service, "finish", spec, Some(timeout), move |finish| {
            Event::FinishDone {
                service: name,
                generation,
                exit,
                group: pid,
                finish,
            }
        });
    }

    /// Runs a script of the service (`finish`, `down`) within `timeout` and turns its end
    /// (`None` when it could not even start) into the event that continues the service's story.
    fn run_script(
        &self,
        service: &str,
        what: &'static str,
        spec: Option<Spawn>,
        timeout: Option<Duration>,
        then: impl FnOnce(ScriptEnd) -> Event + Send + 'static,
    ) {
        let (Some(spec), Some(output)) = (spec, self.outputs.get(service)) else {
            return;
        };
        match self.reaper.spawn(&spec, output) {
            Ok(child) => {
                let events = self.events.clone();
                self.spawn(async move {
                    let end = watch::script(child.pid, child.exit, timeout).await;
                    let _ = events.send(then(Some(end)));
                });
            }
            Err(e) => {
                tracing::error!(service = %service, script = what, error = %e, "cannot run");
                let _ = self.events.send(then(None));
            }
        }
    }

    /// How to run `program` for the service: in its folder, with its environment over the base.
    fn spec(
        &self,
        service: &str,
        program: PathBuf,
        args: Vec<OsString>,
        notification_fd: Option<i32>,
    ) -> Option<Spawn> {
        let def = self.engine.definition(service)?;
        let mut env = self.base_env.clone();
        env.extend(def.env.clone());
        Some(Spawn {
            program,
            args,
            cwd: def.dir.clone(),
            env,
            notification_fd,
        })
    }

    /// Oneshot scripts are command lines run by `/bin/sh -c` (there is no execline here).
    fn shell(&self, service: &str, script: &str) -> Option<Spawn> {
        self.spec(
            service,
            "/bin/sh".into(),
            vec!["-c".into(), script.into()],
            None,
        )
    }
}

fn now() -> Now {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Now {
        at: Instant::now(),
        unix,
    }
}
