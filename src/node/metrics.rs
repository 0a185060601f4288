//! The node's metrics: rounds by feed and outcome, latencies, peers, leader changes, and a health
//! score per oracle from how often it observes and how far its observations are from the median.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy_primitives::aliases::I192;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::node::protocol::messages::ReportObservation;
use crate::telemetry::register;

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Weight of the newest round in an oracle's health score (an exponential moving average).
const SCORE_WEIGHT: f64 = 0.1;
/// An observation this far from the median (in parts per billion) or farther counts as wrong.
const SCORE_TOLERANCE_PPB: f64 = 10_000_000.0;

pub struct NodeMetrics {
    pub rounds_started: IntCounterVec,
    pub rounds_finalized: IntCounterVec,
    pub rounds_skipped: IntCounterVec,
    pub reports_finalized: IntCounter,
    pub reports_by_reason: IntCounterVec,
    pub observation_latency: Histogram,
    pub observations_failed: IntCounterVec,
    pub round_duration: Histogram,
    pub peers_connected: IntGauge,
    pub peers_expected: IntGauge,
    pub leader_changes: IntCounterVec,
    pub epoch: IntGaugeVec,
    pub rejected: IntCounterVec,
    pub signing_refused: IntCounterVec,
    pub store_errors: IntCounterVec,
    pub latest_answer: GaugeVec,
    pub latest_report_time: GaugeVec,
    pub oracle_included: IntCounterVec,
    pub oracle_deviation: GaugeVec,
    pub oracle_score: GaugeVec,
    pub report_requests: IntCounter,
    pub rounds_fenced: IntCounterVec,
    pub database_behind_chain: IntGaugeVec,
    pub feed_reconfigurations: IntCounterVec,
    scores: Mutex<HashMap<u8, f64>>,
}

impl NodeMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let gauge =
            |name: &str, help: &str, labels: &[&str]| GaugeVec::new(Opts::new(name, help), labels);
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
        };
        let m = Self {
            rounds_started: register(registry, counter("enclave_node_rounds_started_total", "Rounds this oracle was asked to observe, by feed.", &["feed"])?)?,
            rounds_finalized: register(registry, counter("enclave_node_rounds_finalized_total", "Rounds that ended in a finalized report (more than f FINAL-ECHOs), by feed.", &["feed"])?)?,
            rounds_skipped: register(registry, counter("enclave_node_rounds_skipped_total", "Rounds this oracle decided need no report (no deviation, heartbeat not due), by feed.", &["feed"])?)?,
            reports_finalized: register(registry, IntCounter::new("enclave_node_reports_finalized_total", "Finalized reports stored and queued for transmission.")?)?,
            reports_by_reason: register(registry, counter("enclave_node_report_decisions_total", "Rounds this oracle signed a report for, by reason (initial, deviation, heartbeat, state_unavailable).", &["reason"])?)?,
            observation_latency: register(registry, histogram("enclave_node_observation_latency_seconds", "Duration of the batch requests to the price aggregator.")?)?,
            observations_failed: register(registry, counter("enclave_node_observations_failed_total", "Rounds this oracle could not observe, by reason.", &["reason"])?)?,
            round_duration: register(registry, histogram("enclave_node_round_duration_seconds", "From OBSERVE-REQ to the finalized report, on this oracle.")?)?,
            peers_connected: register(registry, IntGauge::new("enclave_node_peers_connected", "Other oracles this node has a connection to.")?)?,
            peers_expected: register(registry, IntGauge::new("enclave_node_peers_expected", "Other oracles in the configuration.")?)?,
            leader_changes: register(registry, counter("enclave_node_leader_changes_total", "Epoch changes (each brings a new leader), by feed.", &["feed"])?)?,
            epoch: register(registry, IntGaugeVec::new(Opts::new("enclave_node_epoch", "Current epoch, by feed."), &["feed"])?)?,
            rejected: register(registry, counter("enclave_node_messages_rejected_total", "Protocol messages that failed a check, by sending oracle and message kind.", &["oracle", "kind"])?)?,
            signing_refused: register(registry, counter("enclave_node_signing_refused_total", "Reports not signed, by reason: conflict (another report was already signed for the same epoch and round), store_error (the guard could not be written), signing_failed, below_fence (at or below the rollback fence).", &["reason"])?)?,
            store_errors: register(registry, counter("enclave_node_store_errors_total", "Database operations that failed, by operation.", &["operation"])?)?,
            latest_answer: register(registry, gauge("enclave_node_latest_answer", "The latest finalized answer, as a decimal number, by feed.", &["feed"])?)?,
            latest_report_time: register(registry, gauge("enclave_node_latest_report_timestamp_seconds", "Unix time of the latest finalized report, by feed.", &["feed"])?)?,
            oracle_included: register(registry, counter("enclave_node_oracle_observations_included_total", "Observations of each oracle included in report requests.", &["oracle"])?)?,
            oracle_deviation: register(registry, gauge("enclave_node_oracle_deviation_ppb", "How far each oracle's latest included observation was from the median, in parts per billion.", &["oracle"])?)?,
            oracle_score: register(registry, gauge("enclave_node_oracle_health_score", "Per oracle, 0..1: moving average of 'observed and within 1% of the median' over report requests.", &["oracle"])?)?,
            report_requests: register(registry, IntCounter::new("enclave_node_report_requests_total", "Valid report requests seen (the denominator of participation).")?)?,
            rounds_fenced: register(registry, counter("enclave_node_rounds_fenced_total", "Rounds at or below the rollback fence (the contract's latest report when the feed started), in which this oracle neither observed nor signed, by feed.", &["feed"])?)?,
            database_behind_chain: register(registry, IntGaugeVec::new(Opts::new("enclave_node_database_behind_chain", "1 when, at this run's start of the feed, the oracle's database knew less than the contract's latest report (a restored backup, a rolled-back volume, or reports made while the oracle was down); 0 when in step. Set once the contract is read."), &["feed"])?)?,
            feed_reconfigurations: register(registry, counter("enclave_node_feed_reconfigurations_total", "Times a feed's protocol instance was restarted inside the node because its contract's configuration changed (new config digest, keys or oracle set), by feed.", &["feed"])?)?,
            scores: Mutex::new(HashMap::new()),
        };
        Ok(m)
    }

    /// Scores every oracle on one report request: the ones missing score 0, the ones included
    /// score by their distance from the median. `oracle_label` maps an index to its node number.
    pub fn record_participation(
        &self,
        n: usize,
        observations: &[ReportObservation],
        oracle_label: impl Fn(u8) -> String,
    ) {
        self.report_requests.inc();
        let Some(median) = observations.get(observations.len() / 2).map(|o| o.value) else {
            return;
        };
        let mut scores = self.scores.lock().unwrap_or_else(|p| p.into_inner());
        for index in 0..n {
            let Ok(index) = u8::try_from(index) else {
                break;
            };
            let label = oracle_label(index);
            let hit = match observations.iter().find(|o| o.observer == index) {
                None => 0.0,
                Some(o) => {
                    let ppb = distance_ppb(o.value, median);
                    self.oracle_included.with_label_values(&[&label]).inc();
                    self.oracle_deviation.with_label_values(&[&label]).set(ppb);
                    if ppb < SCORE_TOLERANCE_PPB {
                        1.0
                    } else {
                        0.0
                    }
                }
            };
            let score = scores.entry(index).or_insert(1.0);
            *score = (1.0 - SCORE_WEIGHT) * *score + SCORE_WEIGHT * hit;
            self.oracle_score.with_label_values(&[&label]).set(*score);
        }
    }
}

/// |value − median| / |median| in parts per billion (as f64: this is a health signal, not money).
pub fn distance_ppb(value: I192, median: I192) -> f64 {
    let as_f64 = |v: I192| v.to_string().parse::<f64>().unwrap_or(0.0);
    let (v, m) = (as_f64(value), as_f64(median));
    if m == 0.0 {
        return if v == 0.0 {
            0.0
        } else {
            f64::INFINITY.min(1e18)
        };
    }
    ((v - m).abs() / m.abs()) * 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(value: i64, observer: u8) -> ReportObservation {
        ReportObservation {
            value: I192::try_from(value).unwrap(),
            observer,
        }
    }

    #[test]
    fn a_lying_or_absent_oracle_loses_score_and_honest_ones_keep_it() {
        let registry = Registry::new();
        let m = NodeMetrics::register(&registry).unwrap();
        for _ in 0..20 {
            // Oracle 3 lies ×10, oracle 2 is absent.
            m.record_participation(4, &[obs(100, 0), obs(101, 1), obs(1000, 3)], |i| {
                (i + 2).to_string()
            });
        }
        let score = |node: &str| m.oracle_score.with_label_values(&[node]).get();
        assert!(
            score("2") > 0.99 && score("3") > 0.99,
            "honest oracles 0 and 1"
        );
        assert!(score("4") < 0.2, "absent oracle 2: {}", score("4"));
        assert!(score("5") < 0.2, "lying oracle 3: {}", score("5"));
        assert!(m.oracle_deviation.with_label_values(&["5"]).get() > 8e8);
    }
}
