//! The oracle's database writes that must never fail silently.
//!
//! A finalized report the database refuses (a full disk: PostgreSQL's "could not extend file")
//! is not lost: it is handed to the transmitter at once from memory (the chain need not wait
//! for the disk), kept in a bounded queue, and written again every [`RETRY_INTERVAL`] until the
//! database takes it; then it is queued for transmission once more, which the transmitter skips
//! as already handled. Failing writes of the signing guard (the oracle then refuses to sign)
//! and of the pacemaker state are tracked too. While any of them fails, the oracle's `/health`
//! is not ready and names why, and the metrics say so.
//!
//! This module tracks those writes ([`Writes`]); storing a finalized report and retrying it is
//! [`super::finalize`]'s.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use crate::logging::Untrusted;
use crate::node::ocr1::types::EpochRound;
use crate::node::store::FinalizedReport;
use crate::node::transmission::transmitter::ToTransmit;
use crate::telemetry::register;

/// Finalized reports kept in memory while the database refuses them (each about 1-2 KiB).
pub const MAX_UNSTORED: usize = 1000;
/// How often the kept reports are offered to the database again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// A kind of write that is tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Write {
    FinalizedReport,
    SigningGuard,
    PacemakerState,
}

impl Write {
    const ALL: [Write; 3] = [
        Write::FinalizedReport,
        Write::SigningGuard,
        Write::PacemakerState,
    ];

    /// The `operation` label, as in `enclave_node_store_errors_total`.
    pub fn label(self) -> &'static str {
        match self {
            Write::FinalizedReport => "save_finalized",
            Write::SigningGuard => "guard_signature",
            Write::PacemakerState => "save_pacemaker",
        }
    }
}

/// A finalized report and what its transmission needs.
#[derive(Debug, Clone)]
pub struct Pending {
    pub report: FinalizedReport,
    pub alpha_ppb: u64,
    pub delta_c: Duration,
}

impl Pending {
    pub(super) fn to_transmit(&self) -> ToTransmit {
        ToTransmit {
            feed: self.report.feed.clone(),
            digest: self.report.digest,
            er: EpochRound {
                epoch: self.report.epoch,
                round: self.report.round,
            },
            report: self.report.report.clone(),
            signatures: self.report.signatures.clone(),
            median: self.report.answer,
            alpha_ppb: self.alpha_ppb,
            delta_c: self.delta_c,
            finalized_at: self.report.finalized_at,
        }
    }
}

#[derive(Debug, Clone)]
struct Failing {
    since: SystemTime,
    error: String,
}

#[derive(Default)]
struct State {
    unstored: VecDeque<Pending>,
    failing: BTreeMap<Write, Failing>,
}

pub struct Writes {
    state: Mutex<State>,
    unstored: IntGauge,
    failing: IntGaugeVec,
    stored_late: IntCounter,
    dropped: IntCounter,
}

impl Writes {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let writes = Self {
            state: Mutex::new(State::default()),
            unstored: register(registry, IntGauge::new(
                "enclave_node_reports_unstored",
                "Finalized reports the database refused, kept in memory and retried every 2 s (they were handed to the transmitter at once).",
            )?)?,
            failing: register(registry, IntGaugeVec::new(
                Opts::new(
                    "enclave_node_store_failing",
                    "1 while writes of this kind to the node's database fail (save_finalized, guard_signature, save_pacemaker); the oracle is then not ready.",
                ),
                &["operation"],
            )?)?,
            stored_late: register(registry, IntCounter::new(
                "enclave_node_reports_stored_late_total",
                "Finalized reports the database refused at first and took on a retry.",
            )?)?,
            dropped: register(registry, IntCounter::new(
                "enclave_node_reports_unstored_dropped_total",
                "Finalized reports given up on because more than 1000 waited for the database (the oldest goes); they were handed to the transmitter when finalized.",
            )?)?,
        };
        for write in Write::ALL {
            writes.failing.with_label_values(&[write.label()]).set(0);
        }
        Ok(writes)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write of this kind went through. Reports still waiting keep `FinalizedReport` failing
    /// until they are stored.
    pub fn succeeded(&self, write: Write) {
        let mut state = self.lock();
        if write == Write::FinalizedReport && !state.unstored.is_empty() {
            return;
        }
        if state.failing.remove(&write).is_some() {
            self.failing.with_label_values(&[write.label()]).set(0);
            tracing::info!(
                operation = write.label(),
                "database writes go through again"
            );
        }
    }

    /// A write of this kind failed.
    pub fn failed(&self, write: Write, error: &dyn fmt::Display) {
        let mut state = self.lock();
        let error = error.to_string();
        match state.failing.get_mut(&write) {
            Some(failing) => failing.error = error,
            None => {
                state.failing.insert(
                    write,
                    Failing {
                        since: SystemTime::now(),
                        error,
                    },
                );
                self.failing.with_label_values(&[write.label()]).set(1);
            }
        }
    }

    /// Keeps a report the database refused, for [`retry_unstored`](super::finalize::retry_unstored).
    pub fn keep(&self, pending: Pending) {
        let mut state = self.lock();
        if state.unstored.len() >= MAX_UNSTORED {
            if let Some(oldest) = state.unstored.pop_front() {
                self.dropped.inc();
                tracing::error!(
                    feed = %oldest.report.feed,
                    epoch = oldest.report.epoch,
                    round = oldest.report.round,
                    kept = MAX_UNSTORED,
                    "too many finalized reports wait for the database: the oldest is no longer retried (it was handed to the transmitter when finalized)"
                );
            }
        }
        state.unstored.push_back(pending);
        self.unstored.set(state.unstored.len() as i64);
    }

    pub(super) fn oldest(&self) -> Option<Pending> {
        self.lock().unstored.front().cloned()
    }

    /// The oldest kept report is stored now; `true` when none is left.
    pub(super) fn stored_oldest(&self) -> bool {
        let mut state = self.lock();
        state.unstored.pop_front();
        self.stored_late.inc();
        self.unstored.set(state.unstored.len() as i64);
        state.unstored.is_empty()
    }

    /// Reports waiting for the database.
    pub fn unstored(&self) -> usize {
        self.lock().unstored.len()
    }

    /// Why the oracle is not ready as far as its writes go: one line per failing kind.
    pub fn problems(&self) -> Vec<String> {
        let state = self.lock();
        let mut problems = Vec::new();
        for (write, failing) in &state.failing {
            let seconds = failing.since.elapsed().unwrap_or_default().as_secs();
            let error = Untrusted::bounded(&failing.error, 300);
            problems.push(match write {
                Write::FinalizedReport => format!(
                    "database: {} finalized report(s) not stored, writes failing for {seconds} s ({error}); retried every {} s",
                    state.unstored.len(),
                    RETRY_INTERVAL.as_secs()
                ),
                Write::SigningGuard => format!(
                    "database: cannot record signatures for {seconds} s ({error}); this oracle does not sign"
                ),
                Write::PacemakerState => format!(
                    "database: cannot save the pacemaker state for {seconds} s ({error})"
                ),
            });
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ocr1::types::ConfigDigest;
    use alloy_primitives::aliases::I192;

    fn pending(epoch: u32) -> Pending {
        Pending {
            report: FinalizedReport {
                feed: "BTC-USD".into(),
                digest: ConfigDigest([1; 16]),
                epoch,
                round: 1,
                report: vec![1],
                signatures: vec![],
                observations: vec![],
                answer: I192::ONE,
                finalized_at: SystemTime::now(),
            },
            alpha_ppb: 0,
            delta_c: Duration::from_secs(60),
        }
    }

    fn writes() -> (Registry, Writes) {
        let registry = Registry::new();
        let writes = Writes::register(&registry).expect("metrics");
        (registry, writes)
    }

    #[test]
    fn a_failing_write_is_a_problem_until_it_goes_through() {
        let (_, writes) = writes();
        assert!(writes.problems().is_empty());
        writes.failed(Write::SigningGuard, &"No space left on device");
        writes.failed(Write::PacemakerState, &"could not extend file\nFORGED");
        let problems = writes.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("cannot record signatures"),
            "{problems:?}"
        );
        assert!(
            problems[0].contains("No space left on device"),
            "{problems:?}"
        );
        assert!(problems[1].contains("extend file\\nFORGED"), "{problems:?}");
        writes.succeeded(Write::SigningGuard);
        writes.succeeded(Write::PacemakerState);
        assert!(writes.problems().is_empty());
    }

    #[test]
    fn kept_reports_hold_the_problem_until_stored_and_the_oldest_goes_when_full() {
        let (registry, writes) = writes();
        writes.failed(Write::FinalizedReport, &"disk full");
        for epoch in 0..3 {
            writes.keep(pending(epoch));
        }
        // A later report stored at once does not clear the ones still waiting.
        writes.succeeded(Write::FinalizedReport);
        assert!(writes.problems()[0].contains("3 finalized report(s) not stored"));
        assert_eq!(writes.oldest().map(|p| p.report.epoch), Some(0));
        assert!(!writes.stored_oldest());
        assert!(!writes.stored_oldest());
        assert!(writes.stored_oldest());
        writes.succeeded(Write::FinalizedReport);
        assert!(writes.problems().is_empty());
        let gathered = registry.gather();
        let value = |name: &str| {
            gathered
                .iter()
                .find(|f| f.name() == name)
                .and_then(|f| f.get_metric().first())
                .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        };
        assert_eq!(value("enclave_node_reports_stored_late_total"), Some(3.0));
        assert_eq!(value("enclave_node_reports_unstored"), Some(0.0));

        for epoch in 0..MAX_UNSTORED as u32 + 5 {
            writes.keep(pending(epoch));
        }
        assert_eq!(writes.unstored(), MAX_UNSTORED);
        assert_eq!(writes.oldest().map(|p| p.report.epoch), Some(5));
        let gathered = registry.gather();
        let dropped = gathered
            .iter()
            .find(|f| f.name() == "enclave_node_reports_unstored_dropped_total")
            .and_then(|f| f.get_metric().first())
            .map(|m| m.get_counter().get_value());
        assert_eq!(dropped, Some(5.0));
    }
}
