//! The executor's per-process tasks: each waits for one child (its readiness, its exit) and
//! reports what happened as an [`Event`] to the engine. They decide nothing: timeouts that are
//! decisions (`timeout-up`, `timeout-down`) are the engine's timers; the only limit here is the
//! running time of a helper script, which the engine passes with the command.

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use super::engine::Event;
use super::process::signal_group;
use crate::service::readiness::wait_for_readiness;
use crate::service::state::Exit;

/// What an exit whose status never arrived (the reaper is gone) counts as.
const LOST: Exit = Exit::Code(1);

pub type Events = mpsc::UnboundedSender<Event>;

/// A longrun: `Ready` when it writes a line to its notification pipe (at once without one),
/// then `Exited`.
pub async fn longrun(
    service: String,
    generation: u64,
    mut exit: oneshot::Receiver<Exit>,
    notification: Option<OwnedFd>,
    events: Events,
) {
    if let Some(fd) = notification {
        tokio::select! {
            () = wait_for_readiness(fd) => {}
            result = &mut exit => {
                let exit = result.unwrap_or(LOST);
                let _ = events.send(Event::Exited { service, generation, exit });
                return;
            }
        }
    }
    let _ = events.send(Event::Ready {
        service: service.clone(),
        generation,
    });
    if let Ok(exit) = exit.await {
        let _ = events.send(Event::Exited {
            service,
            generation,
            exit,
        });
    }
}

/// A oneshot's `up`: `OneshotDone` when it ends.
pub async fn oneshot(
    service: String,
    generation: u64,
    exit: oneshot::Receiver<Exit>,
    events: Events,
) {
    let exit = exit.await.unwrap_or(LOST);
    let _ = events.send(Event::OneshotDone {
        service,
        generation,
        exit,
    });
}

/// Waits for a helper script; after `timeout` kills its whole group and waits for the exit.
/// Returns the exit and whether the timeout killed it.
pub async fn script(
    pid: Pid,
    mut exit: oneshot::Receiver<Exit>,
    timeout: Option<Duration>,
) -> (Exit, bool) {
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = &mut exit => (result.unwrap_or(LOST), false),
        () = limit => {
            signal_group(pid, Signal::SIGKILL);
            (exit.await.unwrap_or(Exit::Signal(9)), true)
        }
    }
}

/// After `after`, the timer's event.
pub async fn timer(after: Duration, event: Event, events: Events) {
    tokio::time::sleep(after).await;
    let _ = events.send(event);
}
