//! The sampling core of the process-metrics exporter (`enclave process-metrics`).
//!
//! Every interval it reads the supervisor's state files and measures each running service's
//! whole process tree — its main pid and every descendant, so PostgreSQL's backends count
//! toward `postgres` — then keeps the result for [`ProcessMetrics`], a Prometheus collector.
//! Unlike the reference's `ps pcpu` (a lifetime average), CPU is reported as a rate over the
//! last interval and as a counter that never goes down.

mod collector;
mod cpu;
mod sampler;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use tokio::time::MissedTickBehavior;

pub use collector::ProcessMetrics;

/// Default sampling interval; the caller reads `PROCESS_METRICS_INTERVAL_MS`.
pub const DEFAULT_INTERVAL_MS: u64 = 5000;
/// Below this the CPU rate gets coarse (the kernel counts CPU in 10 ms ticks) and the exporter's
/// own cost grows; the reference clamps to it too.
pub const MIN_INTERVAL_MS: u64 = 1000;
/// Consecutive failed samples after which [`run_sampling`] gives up.
pub const DEFAULT_MAX_FAILURES: u32 = 12;

/// What one successful sample saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Services in the state directory, running or not.
    pub services: usize,
    /// Processes measured, over all services' trees.
    pub processes: usize,
}

#[derive(Debug, Error)]
pub enum SampleError {
    #[error("reading the service states in {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no process of the {services} services in {path} could be measured (none is running, or their pids are gone)")]
    NoProcess { path: PathBuf, services: usize },
    #[error("the sampling thread failed: {source}")]
    Thread { source: tokio::task::JoinError },
    #[error("{failures} consecutive process samples failed; the last: {last}")]
    GaveUp {
        failures: u32,
        last: Box<SampleError>,
    },
}

/// The sampling loop of `enclave process-metrics`: samples every `interval` (the first at once)
/// and returns Err after `max_failures` consecutive failed samples (at least one), so that the
/// caller exits non-zero and the supervisor restarts the exporter. Never returns Ok.
pub async fn run_sampling(
    metrics: ProcessMetrics,
    interval: Duration,
    max_failures: u32,
) -> Result<(), SampleError> {
    let give_up_after = max_failures.max(1);
    // tokio's interval panics on zero.
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
    // A sample slower than the interval delays the next one instead of causing a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failures = 0u32;
    loop {
        ticks.tick().await;
        match sample_on_blocking_thread(&metrics).await {
            Ok(sample) => {
                if failures > 0 {
                    tracing::info!(failures, "process sampling recovered");
                }
                failures = 0;
                tracing::debug!(
                    services = sample.services,
                    processes = sample.processes,
                    "process sample"
                );
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, failures, give_up_after, "process sample failed");
                if failures >= give_up_after {
                    return Err(SampleError::GaveUp {
                        failures,
                        last: Box::new(error),
                    });
                }
            }
        }
    }
}

/// Reading /proc is blocking file I/O, kept off the async threads that serve `/metrics`.
async fn sample_on_blocking_thread(metrics: &ProcessMetrics) -> Result<Sample, SampleError> {
    let metrics = metrics.clone();
    tokio::task::spawn_blocking(move || metrics.sample())
        .await
        .map_err(|source| SampleError::Thread { source })?
}
