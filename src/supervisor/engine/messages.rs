//! What goes into the engine ([`Event`], at a [`Now`]) and what comes out ([`Command`], with
//! its [`Metric`] updates and log [`Note`]s).

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::service::state::{Exit, ServiceState, Status};
use crate::supervisor::metrics::BootPhase;

/// Why the tree is coming down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shutdown {
    /// A signal asked for it: a clean stop, exit 0.
    Requested(Signal),
    /// A service failed: exit with this code.
    Failure { service: String, code: u8 },
}

/// The timers a service can have armed, each for one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// `timeout-up`: a longrun not ready, or a oneshot not finished, by then has failed.
    Up,
    /// The restart delay of a dead longrun.
    Restart,
    /// `timeout-down`: a service still running this long after its down signal is killed.
    Grace,
}

/// How a helper script (`finish`, `down`) ended: its exit and whether its timeout killed it.
/// `None` where the script could not even be started.
pub type ScriptEnd = Option<(Exit, bool)>;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The boot is done: start every service whose dependencies allow it.
    Boot,
    /// A termination signal asks for a clean stop.
    StopRequested(Signal),
    /// The process asked for by [`Command::Start`] runs.
    Spawned {
        service: String,
        generation: u64,
        pid: Pid,
    },
    /// The process asked for by [`Command::Start`] could not be started.
    SpawnFailed { service: String, generation: u64 },
    /// A longrun notified readiness (at once when it has no `notification-fd`).
    Ready { service: String, generation: u64 },
    /// A longrun's process ended.
    Exited {
        service: String,
        generation: u64,
        exit: Exit,
    },
    /// The `finish` script for a longrun's process that ended with `exit` is done.
    FinishDone {
        service: String,
        generation: u64,
        exit: Exit,
        /// The dead process's group, for its stragglers.
        group: Option<Pid>,
        finish: ScriptEnd,
    },
    /// A oneshot's `up` ended.
    OneshotDone {
        service: String,
        generation: u64,
        exit: Exit,
    },
    /// A oneshot's `down` ended.
    DownDone { service: String, end: ScriptEnd },
    /// A timer armed by [`Command::Arm`] fired.
    TimerFired {
        service: String,
        generation: u64,
        timer: Timer,
    },
}

/// What to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start the service's process (`run` for a longrun, `up` for a oneshot) and watch it;
    /// answer at once with [`Event::Spawned`] or, later, [`Event::SpawnFailed`].
    Start {
        service: String,
        generation: u64,
    },
    /// Run the longrun's `finish` script for its process that ended with `exit`, within
    /// `timeout`; answer with [`Event::FinishDone`].
    RunFinish {
        service: String,
        generation: u64,
        script: PathBuf,
        exit: Exit,
        pid: Option<Pid>,
        timeout: Duration,
    },
    /// Run the oneshot's `down` command line, within `timeout`; answer with
    /// [`Event::DownDone`].
    RunDown {
        service: String,
        script: String,
        timeout: Option<Duration>,
    },
    /// Send `signal` to the process, or to its whole process group.
    Signal {
        pid: Pid,
        signal: Signal,
        group: bool,
    },
    /// Answer with [`Event::TimerFired`] after `after`.
    Arm {
        service: String,
        generation: u64,
        timer: Timer,
        after: Duration,
    },
    /// Record the service's state in its state files.
    WriteState(ServiceState),
    Metric(Metric),
    Log(Note),
    /// Everything is down: the supervisor ends with this exit code.
    Exit(u8),
}

/// Updates of the supervisor's metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Status { service: String, status: Status },
    Restart { service: String },
    BootPhase { phase: BootPhase, after: Duration },
    ShuttingDown,
}

/// What the log says: one variant per line the operator reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    AllUp {
        services: usize,
        elapsed: Duration,
    },
    NotReady {
        service: String,
    },
    Killing {
        service: String,
    },
    Restarting {
        service: String,
        restarts: u64,
    },
    Stopped {
        service: String,
        exit: Exit,
    },
    Exited {
        service: String,
        exit: Exit,
    },
    PermanentFailure {
        service: String,
    },
    RestartLimit {
        service: String,
        exit: Exit,
        max_restarts: u32,
        window: Duration,
    },
    RestartScheduled {
        service: String,
        delay: Duration,
    },
    Finished {
        service: String,
    },
    OneshotFailed {
        service: String,
        exit: Exit,
        timed_out: bool,
    },
    ShuttingDown(Shutdown),
    Stopping {
        service: String,
        signal: Signal,
    },
    DownScriptFailed {
        service: String,
        exit: Exit,
        timed_out: bool,
    },
    State {
        service: String,
        status: Status,
    },
}

/// The time of an event: monotonic for delays and windows, the wall clock (Unix seconds) for
/// what the state files show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub unix: u64,
}
