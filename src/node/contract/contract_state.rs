//! What the contract last accepted, as `shouldReport` needs it (ocr-and-sources.md A.1.4). Here it
//! is the DON's latest finalized report, remembered by each oracle; the chain issue adds an
//! implementation that reads the aggregator contract.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use alloy_primitives::aliases::I192;

use crate::node::ocr1::deviation::deviates;
use crate::node::ocr1::types::ConfigDigest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestAnswer {
    pub digest: ConfigDigest,
    pub epoch: u32,
    pub round: u8,
    pub answer: I192,
    pub timestamp: SystemTime,
    /// The latest `RoundRequested` (digest, epoch, round) seen, if any.
    pub requested: Option<(ConfigDigest, u32, u8)>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("contract state unavailable: {0}")]
pub struct ContractStateError(pub String);

#[async_trait::async_trait]
pub trait ContractState: Send + Sync {
    async fn latest(&self, feed: &str) -> Result<Option<LatestAnswer>, ContractStateError>;

    /// The DON finalized `answer` for `feed` (it may reach the contract later, or never).
    fn finalized(&self, _feed: &str, _answer: LatestAnswer) {}
}

/// The latest report finalized by the DON, per feed.
#[derive(Debug, Default)]
pub struct FinalizedContractState {
    latest: Mutex<HashMap<String, LatestAnswer>>,
}

impl FinalizedContractState {
    /// Keeps `answer` if it is newer (by epoch and round) than what is known for `feed`.
    pub fn record(&self, feed: &str, answer: LatestAnswer) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let newer = latest.get(feed).is_none_or(|known| {
            known.digest != answer.digest
                || (answer.epoch, answer.round) > (known.epoch, known.round)
        });
        if newer {
            latest.insert(feed.to_owned(), answer);
        }
    }
}

#[async_trait::async_trait]
impl ContractState for FinalizedContractState {
    async fn latest(&self, feed: &str) -> Result<Option<LatestAnswer>, ContractStateError> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        Ok(latest.get(feed).cloned())
    }

    fn finalized(&self, feed: &str, answer: LatestAnswer) {
        self.record(feed, answer);
    }
}

/// Why a round reports (or `None`: it does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportReason {
    /// Nothing accepted yet under this configuration.
    InitialRound,
    Deviation,
    Heartbeat,
    /// The contract could not be read: err on the side of reporting, as libocr does.
    StateUnavailable,
    /// Someone asked the contract for a new round (`requestNewRound`) and it is not answered yet.
    RoundRequested,
}

impl ReportReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportReason::InitialRound => "initial",
            ReportReason::Deviation => "deviation",
            ReportReason::Heartbeat => "heartbeat",
            ReportReason::StateUnavailable => "state_unavailable",
            ReportReason::RoundRequested => "round_requested",
        }
    }
}

/// libocr's `shouldReport` for a median `answer` under `digest`.
pub fn should_report(
    latest: &Result<Option<LatestAnswer>, ContractStateError>,
    digest: ConfigDigest,
    answer: I192,
    alpha_ppb: u64,
    delta_c: Duration,
    now: SystemTime,
) -> Option<ReportReason> {
    let latest = match latest {
        Err(_) => return Some(ReportReason::StateUnavailable),
        Ok(None) => return Some(ReportReason::InitialRound),
        Ok(Some(latest)) if latest.digest != digest => return Some(ReportReason::InitialRound),
        Ok(Some(latest)) => latest,
    };
    if deviates(latest.answer, answer, alpha_ppb) {
        return Some(ReportReason::Deviation);
    }
    if latest.timestamp + delta_c < now {
        return Some(ReportReason::Heartbeat);
    }
    match latest.requested {
        Some((d, epoch, round))
            if d == digest && (epoch, round) >= (latest.epoch, latest.round) =>
        {
            Some(ReportReason::RoundRequested)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> ConfigDigest {
        ConfigDigest([1; 16])
    }

    fn int(v: i64) -> I192 {
        I192::try_from(v).unwrap()
    }

    fn latest(
        answer: i64,
        age: Duration,
        now: SystemTime,
    ) -> Result<Option<LatestAnswer>, ContractStateError> {
        Ok(Some(LatestAnswer {
            digest: digest(),
            epoch: 3,
            round: 1,
            answer: int(answer),
            timestamp: now - age,
            requested: None,
        }))
    }

    #[test]
    fn the_first_round_reports() {
        let now = SystemTime::now();
        let r = should_report(
            &Ok(None),
            digest(),
            int(5),
            5_000_000,
            Duration::from_secs(60),
            now,
        );
        assert_eq!(r, Some(ReportReason::InitialRound));
        let other = Ok(Some(LatestAnswer {
            digest: ConfigDigest([9; 16]),
            epoch: 1,
            round: 1,
            answer: int(5),
            timestamp: now,
            requested: None,
        }));
        let r = should_report(
            &other,
            digest(),
            int(5),
            5_000_000,
            Duration::from_secs(60),
            now,
        );
        assert_eq!(
            r,
            Some(ReportReason::InitialRound),
            "a new configuration starts afresh"
        );
    }

    #[test]
    fn a_flat_price_waits_for_the_heartbeat_and_a_move_reports_at_once() {
        let now = SystemTime::now();
        let c = Duration::from_secs(60);
        // 0.5% threshold: 1000 → 1004 is 0.4%, 1005 is 0.5%.
        assert_eq!(
            should_report(
                &latest(1000, Duration::from_secs(1), now),
                digest(),
                int(1004),
                5_000_000,
                c,
                now
            ),
            None
        );
        assert_eq!(
            should_report(
                &latest(1000, Duration::from_secs(1), now),
                digest(),
                int(1005),
                5_000_000,
                c,
                now
            ),
            Some(ReportReason::Deviation)
        );
        assert_eq!(
            should_report(
                &latest(1000, Duration::from_secs(61), now),
                digest(),
                int(1000),
                5_000_000,
                c,
                now
            ),
            Some(ReportReason::Heartbeat)
        );
    }

    #[test]
    fn an_unfulfilled_round_request_reports_and_a_fulfilled_one_does_not() {
        let now = SystemTime::now();
        let c = Duration::from_secs(60);
        let with = |requested| {
            Ok(Some(LatestAnswer {
                digest: digest(),
                epoch: 3,
                round: 1,
                answer: int(1000),
                timestamp: now,
                requested,
            }))
        };
        assert_eq!(
            should_report(
                &with(Some((digest(), 3, 1))),
                digest(),
                int(1000),
                5_000_000,
                c,
                now
            ),
            Some(ReportReason::RoundRequested)
        );
        assert_eq!(
            should_report(
                &with(Some((digest(), 2, 9))),
                digest(),
                int(1000),
                5_000_000,
                c,
                now
            ),
            None
        );
        assert_eq!(
            should_report(
                &with(Some((ConfigDigest([7; 16]), 9, 9))),
                digest(),
                int(1000),
                5_000_000,
                c,
                now
            ),
            None
        );
    }

    #[test]
    fn an_unreadable_contract_means_report() {
        let r = should_report(
            &Err(ContractStateError("rpc down".into())),
            digest(),
            int(1),
            1,
            Duration::ZERO,
            SystemTime::now(),
        );
        assert_eq!(r, Some(ReportReason::StateUnavailable));
    }

    #[tokio::test]
    async fn only_newer_reports_replace_the_latest() {
        let state = FinalizedContractState::default();
        let now = SystemTime::now();
        let at = |epoch, round, answer| LatestAnswer {
            digest: digest(),
            epoch,
            round,
            answer: int(answer),
            timestamp: now,
            requested: None,
        };
        state.record("F", at(2, 1, 10));
        state.record("F", at(1, 5, 20));
        assert_eq!(state.latest("F").await.unwrap().unwrap().answer, int(10));
        state.record("F", at(2, 2, 30));
        assert_eq!(state.latest("F").await.unwrap().unwrap().answer, int(30));
        assert!(state.latest("G").await.unwrap().is_none());
    }
}
