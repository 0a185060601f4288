//! The engine's notes as log lines: the words and fields operators (and the tests) read.

use super::engine::{Note, Shutdown};

pub fn log(note: &Note) {
    match note {
        Note::AllUp { services, elapsed } => tracing::info!(
            services,
            elapsed_ms = elapsed.as_millis() as u64,
            "all services up"
        ),
        Note::NotReady { service } => {
            tracing::error!(service = %service, "not ready within timeout-up; stopping the enclave")
        }
        Note::Killing { service } => tracing::warn!(
            service = %service,
            "did not stop within timeout-down; sending SIGKILL to its process group"
        ),
        Note::Restarting { service, restarts } => {
            tracing::info!(service = %service, restarts, "restarting")
        }
        Note::Stopped { service, exit } => tracing::info!(service = %service, %exit, "stopped"),
        Note::Exited { service, exit } => tracing::warn!(service = %service, %exit, "exited"),
        Note::PermanentFailure { service } => tracing::error!(
            service = %service,
            "finish exited 125: permanent failure, not restarting"
        ),
        Note::RestartLimit {
            service,
            exit,
            max_restarts,
            window,
        } => tracing::error!(
            service = %service,
            %exit,
            max_restarts,
            window_ms = window.as_millis() as u64,
            "restart limit exceeded; stopping the enclave"
        ),
        Note::RestartScheduled { service, delay } => tracing::info!(
            service = %service,
            delay_ms = delay.as_millis() as u64,
            "restart scheduled"
        ),
        Note::Finished { service } => tracing::info!(service = %service, "finished"),
        Note::OneshotFailed {
            service,
            exit,
            timed_out,
        } => {
            let why = if *timed_out {
                "timed out (timeout-up)"
            } else {
                "failed"
            };
            tracing::error!(service = %service, %exit, "oneshot {why}; stopping the enclave")
        }
        Note::ShuttingDown(Shutdown::Requested(signal)) => {
            tracing::info!(signal = %signal, "shutting down")
        }
        Note::ShuttingDown(Shutdown::Failure { service, code }) => tracing::error!(
            service = %service,
            exit_code = code,
            "shutting down after a failure"
        ),
        Note::Stopping { service, signal } => {
            tracing::info!(service = %service, %signal, "stopping")
        }
        Note::DownScriptFailed {
            service,
            exit,
            timed_out,
        } => tracing::warn!(service = %service, %exit, timed_out, "down script failed"),
        Note::State { service, status } => {
            tracing::debug!(service = %service, status = %status, "state")
        }
    }
}
