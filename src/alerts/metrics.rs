//! The alerter's own metrics. Labels are bounded: the channel kind (4), the alert name (9), the
//! result (3), the part of the snapshot (6) — never a URL, a token or a subject.

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::config::schema::alerts::{AlertName, ChannelKind};
use crate::telemetry::register;

pub const RESULTS: [&str; 3] = ["sent", "failed", "dropped"];
pub const PARTS: [&str; 6] = [
    "services",
    "resources",
    "attestation",
    "aggregator",
    "nodes",
    "balances",
];

pub struct AlertMetrics {
    /// `channel` (kind), `alert`, `result`: `sent`, `failed` (after every retry), `dropped`
    /// (the channel's queue was full).
    pub notifications: IntCounterVec,
    /// `channel`: attempts retried.
    pub retries: IntCounterVec,
    /// `alert`: alerts firing now.
    pub firing: IntGaugeVec,
    pub evaluations: IntCounter,
    /// `part`: parts of a snapshot that could not be read.
    pub snapshot_errors: IntCounterVec,
}

impl AlertMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            notifications: register(registry, IntCounterVec::new(
                Opts::new(
                    "enclave_alerts_notifications_total",
                    "Alert notifications by channel kind, alert and result (sent, failed after retries, dropped for a full queue).",
                ),
                &["channel", "alert", "result"],
            )?)?,
            retries: register(registry, IntCounterVec::new(
                Opts::new(
                    "enclave_alerts_delivery_retries_total",
                    "Notification attempts retried, by channel kind.",
                ),
                &["channel"],
            )?)?,
            firing: register(registry, IntGaugeVec::new(
                Opts::new("enclave_alerts_firing", "Alerts firing now, by alert."),
                &["alert"],
            )?)?,
            evaluations: register(registry, IntCounter::new(
                "enclave_alerts_evaluations_total",
                "Snapshots of the enclave evaluated by the alert rules.",
            )?)?,
            snapshot_errors: register(registry, IntCounterVec::new(
                Opts::new(
                    "enclave_alerts_snapshot_errors_total",
                    "Parts of a snapshot that could not be read, by part.",
                ),
                &["part"],
            )?)?,
        };
        Ok(m)
    }

    /// Every series at 0 for the configured channel kinds, so rates work from the first push.
    pub fn initialise(&self, kinds: &[ChannelKind]) {
        for alert in AlertName::ALL {
            self.firing.with_label_values(&[alert.as_str()]).set(0);
            for kind in kinds {
                for result in RESULTS {
                    self.notifications
                        .with_label_values(&[kind.as_str(), alert.as_str(), result]);
                }
            }
        }
        for kind in kinds {
            self.retries.with_label_values(&[kind.as_str()]);
        }
        for part in PARTS {
            self.snapshot_errors.with_label_values(&[part]);
        }
    }
}
