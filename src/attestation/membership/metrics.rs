//! The members' standing, in the supervisor's registry (pushed with its other metrics). The
//! `member` label is a name from the signed configuration (validated: short, `a-z0-9-`), the
//! `reason` label one of the admission's fixed words.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::standing::{Event, Standing};
use crate::telemetry::register;

#[derive(Clone)]
pub struct MemberMetrics {
    admitted: IntGaugeVec,
    unreachable: IntGaugeVec,
    verified: IntGaugeVec,
    refusals: IntCounterVec,
    key_changes: IntCounterVec,
}

impl MemberMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["member"]);
        Ok(Self {
            admitted: register(registry, gauge(
                "enclave_don_member_admitted",
                "1 while the member's identity is admitted (its evidence, measurements, key births, configuration and operator signature verified), else 0.",
            )?)?,
            unreachable: register(registry, gauge(
                "enclave_don_member_unreachable",
                "1 while the member's identity document cannot be fetched from its identityUrl.",
            )?)?,
            verified: register(registry, gauge(
                "enclave_don_member_last_verified_timestamp_seconds",
                "Unix time of the last check that admitted the member (0: never).",
            )?)?,
            refusals: register(registry, IntCounterVec::new(
                Opts::new(
                    "enclave_don_member_refusals_total",
                    "Checks that refused the member's identity, by reason.",
                ),
                &["member", "reason"],
            )?)?,
            key_changes: register(registry, IntCounterVec::new(
                Opts::new(
                    "enclave_don_member_key_changes_total",
                    "Admissions of the member with other node keys than before.",
                ),
                &["member"],
            )?)?,
        })
    }

    /// Every member's series exists from the start, at 0.
    pub fn declare(&self, member: &str) {
        self.admitted.with_label_values(&[member]).set(0);
        self.unreachable.with_label_values(&[member]).set(0);
        self.verified.with_label_values(&[member]).set(0);
        self.key_changes.with_label_values(&[member]);
    }

    pub fn record(&self, member: &str, standing: &Standing, events: &[Event]) {
        let admitted = standing.is_admitted();
        self.admitted
            .with_label_values(&[member])
            .set(i64::from(admitted));
        let unreachable = matches!(
            standing,
            Standing::Unreachable { .. }
                | Standing::Admitted {
                    unreachable_since: Some(_),
                    ..
                }
        );
        self.unreachable
            .with_label_values(&[member])
            .set(i64::from(unreachable));
        if let Standing::Admitted { verified_at, .. } = standing {
            self.verified
                .with_label_values(&[member])
                .set(i64::try_from(*verified_at).unwrap_or(i64::MAX));
        }
        for event in events {
            match event {
                Event::Refused { reason, .. } => {
                    self.refusals.with_label_values(&[member, reason]).inc();
                }
                Event::KeysChanged { .. } => self.key_changes.with_label_values(&[member]).inc(),
                _ => {}
            }
        }
    }
}
