//! Rollback fencing. An oracle's database can come back older than the chain: a restored
//! backup, a volume the host rolled back. Such a database has forgotten epochs it went through
//! and rounds it signed, so before a feed's instance starts, the contract's latest transmitted
//! (config digest, epoch, round) decides where its pacemaker starts and the lowest (epoch, round)
//! it may sign for. libocr does the first part for a lost database (`restoreNeFromTransmitter`:
//! when the contract's digest is ours, announce at least the contract's epoch + 1;
//! attestation-and-distribution.md §F); the signing floor is ours: a report at or below the
//! contract's latest can never land, so nothing is lost by refusing it, and a faulty leader
//! cannot use a forgetful oracle to put a second signature on a round it signed before.
//!
//! The decision is [`fence`], a plain function of what the database holds and what the contract
//! says; reading both and reporting the outcome is
//! [`Starter`](crate::node::runtime::oracle::Starter)'s job.

use std::time::Duration;

use crate::node::ocr1::types::{ConfigDigest, EpochRound};
use crate::node::protocol::pacemaker::PacemakerState;

/// The contract's `latestTransmissionDetails()`: the configuration it holds and the (epoch,
/// round) of the latest report it accepted under it ((0, 0) before the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPosition {
    pub digest: ConfigDigest,
    pub latest: EpochRound,
}

/// Where a feed's instance starts, and what it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The pacemaker state to start from: the stored one (or the initial one), with the epoch
    /// it announces raised past the contract's.
    pub start: PacemakerState,
    /// Never sign a report (nor an observation) for an (epoch, round) at or below this one.
    /// `None`: the contract has nothing under this configuration to fence against.
    pub floor: Option<EpochRound>,
    /// The database knew less than the chain: `local` is the furthest position it remembered
    /// (`None`: nothing at all), `chain` the contract's latest.
    pub behind: Option<Behind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behind {
    pub local: Option<EpochRound>,
    pub chain: EpochRound,
}

/// The fence for an instance under `digest` with `n` oracles.
///
/// - `stored`: the pacemaker state in the database, if any;
/// - `remembered`: the highest (epoch, round) the database holds a signed round or a finalized
///   report for, if any;
/// - `chain`: the contract's position (`None`: no contract to ask, as with `chain.enabled`
///   false).
///
/// The database's position is the higher of `remembered` and the stored epoch (round 0: the
/// oracle was in that epoch, whatever rounds it saw there). It is behind when the contract holds
/// a report under our digest beyond that position. Another digest on the contract (its
/// configuration changed since we read it; the node restarts into the new one) fences nothing,
/// as libocr's "Cannot restore ne".
pub fn fence(
    digest: ConfigDigest,
    n: usize,
    stored: Option<PacemakerState>,
    remembered: Option<EpochRound>,
    chain: Option<ChainPosition>,
) -> Fence {
    let local = match (&stored, remembered) {
        (None, None) => None,
        (Some(s), r) => Some(EpochRound::new(s.epoch, 0).max(r.unwrap_or_default())),
        (None, Some(r)) => Some(r),
    };
    let mut start = match stored {
        Some(state) => PacemakerState::restored(state, n),
        None => PacemakerState::initial(n),
    };
    let Some(chain) = chain.filter(|c| c.digest == digest) else {
        return Fence {
            start,
            floor: None,
            behind: None,
        };
    };
    start.highest_sent = start.highest_sent.max(chain.latest.epoch.saturating_add(1));
    let transmitted = chain.latest > EpochRound::default();
    let behind = (transmitted && local.is_none_or(|l| l < chain.latest)).then_some(Behind {
        local,
        chain: chain.latest,
    });
    Fence {
        start,
        floor: Some(chain.latest),
        behind,
    }
}

/// Whether a report (or observation) for `at` may be signed under `floor`.
pub fn may_sign(floor: Option<EpochRound>, at: EpochRound) -> bool {
    floor.is_none_or(|floor| at > floor)
}

/// Delay before the `attempt`-th retry (1-based) of reading the contract at start: 1 s, doubling,
/// at most `max`.
pub fn retry_delay(attempt: u32, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: ConfigDigest = ConfigDigest([7; 16]);
    const OTHER: ConfigDigest = ConfigDigest([8; 16]);

    fn er(epoch: u32, round: u8) -> EpochRound {
        EpochRound::new(epoch, round)
    }

    fn state(epoch: u32, sent: u32) -> PacemakerState {
        PacemakerState {
            epoch,
            highest_sent: sent,
            highest_received: vec![epoch; 4],
        }
    }

    fn chain(digest: ConfigDigest, epoch: u32, round: u8) -> Option<ChainPosition> {
        Some(ChainPosition {
            digest,
            latest: er(epoch, round),
        })
    }

    #[test]
    fn the_fence_follows_the_contract_for_every_kind_of_database() {
        struct Case {
            what: &'static str,
            stored: Option<PacemakerState>,
            remembered: Option<EpochRound>,
            chain: Option<ChainPosition>,
            // (epoch, announced epoch) to start with, the floor, and the behind verdict.
            start: (u32, u32),
            floor: Option<EpochRound>,
            behind: Option<Behind>,
        }
        let behind = |local: Option<EpochRound>, chain: EpochRound| Some(Behind { local, chain });
        let cases = [
            Case {
                what: "no chain: the database decides alone",
                stored: Some(state(5, 6)),
                remembered: Some(er(5, 2)),
                chain: None,
                start: (5, 6),
                floor: None,
                behind: None,
            },
            Case {
                what: "no chain, empty database",
                stored: None,
                remembered: None,
                chain: None,
                start: (1, 1),
                floor: None,
                behind: None,
            },
            Case {
                what: "the contract holds another configuration: nothing to fence against",
                stored: Some(state(5, 5)),
                remembered: None,
                chain: chain(OTHER, 40, 3),
                start: (5, 5),
                floor: None,
                behind: None,
            },
            Case {
                what: "configured, nothing transmitted yet, empty database",
                stored: None,
                remembered: None,
                chain: chain(D, 0, 0),
                start: (1, 1),
                floor: Some(er(0, 0)),
                behind: None,
            },
            Case {
                what: "in step: the database has the contract's report",
                stored: Some(state(9, 9)),
                remembered: Some(er(9, 2)),
                chain: chain(D, 9, 2),
                start: (9, 10),
                floor: Some(er(9, 2)),
                behind: None,
            },
            Case {
                what: "ahead: a later epoch than the contract's report",
                stored: Some(state(11, 12)),
                remembered: Some(er(9, 3)),
                chain: chain(D, 9, 2),
                start: (11, 12),
                floor: Some(er(9, 2)),
                behind: None,
            },
            Case {
                what: "the stored epoch alone is past the contract",
                stored: Some(state(10, 10)),
                remembered: None,
                chain: chain(D, 9, 3),
                start: (10, 10),
                floor: Some(er(9, 3)),
                behind: None,
            },
            Case {
                what: "restored backup: an older epoch",
                stored: Some(state(4, 4)),
                remembered: Some(er(4, 1)),
                chain: chain(D, 9, 2),
                start: (4, 10),
                floor: Some(er(9, 2)),
                behind: behind(Some(er(4, 1)), er(9, 2)),
            },
            Case {
                what: "restored backup: the same epoch, an older round",
                stored: Some(state(9, 9)),
                remembered: Some(er(9, 1)),
                chain: chain(D, 9, 3),
                start: (9, 10),
                floor: Some(er(9, 3)),
                behind: behind(Some(er(9, 1)), er(9, 3)),
            },
            Case {
                what: "in the contract's epoch but no round of it remembered",
                stored: Some(state(9, 9)),
                remembered: Some(er(8, 3)),
                chain: chain(D, 9, 1),
                start: (9, 10),
                floor: Some(er(9, 1)),
                behind: behind(Some(er(9, 0)), er(9, 1)),
            },
            Case {
                what: "empty database, reports on chain",
                stored: None,
                remembered: None,
                chain: chain(D, 9, 2),
                start: (1, 10),
                floor: Some(er(9, 2)),
                behind: behind(None, er(9, 2)),
            },
            Case {
                what: "signed rounds survived, the pacemaker state did not",
                stored: None,
                remembered: Some(er(9, 2)),
                chain: chain(D, 9, 2),
                start: (1, 10),
                floor: Some(er(9, 2)),
                behind: None,
            },
            Case {
                what: "the last possible epoch does not overflow",
                stored: Some(state(u32::MAX, u32::MAX)),
                remembered: None,
                chain: chain(D, u32::MAX, 255),
                start: (u32::MAX, u32::MAX),
                floor: Some(er(u32::MAX, 255)),
                behind: behind(Some(er(u32::MAX, 0)), er(u32::MAX, 255)),
            },
        ];
        for case in cases {
            let got = fence(D, 4, case.stored, case.remembered, case.chain);
            assert_eq!(
                (got.start.epoch, got.start.highest_sent),
                case.start,
                "{}: start",
                case.what
            );
            assert_eq!(got.floor, case.floor, "{}: floor", case.what);
            assert_eq!(got.behind, case.behind, "{}: behind", case.what);
            assert_eq!(got.start.highest_received.len(), 4, "{}", case.what);
        }
    }

    #[test]
    fn nothing_at_or_below_the_floor_may_be_signed() {
        let floor = Some(er(9, 2));
        for (at, allowed) in [
            (er(8, 200), false),
            (er(9, 1), false),
            (er(9, 2), false),
            (er(9, 3), true),
            (er(10, 1), true),
        ] {
            assert_eq!(may_sign(floor, at), allowed, "{at}");
        }
        assert!(may_sign(None, er(1, 1)));
        assert!(may_sign(Some(er(0, 0)), er(1, 1)));
    }

    #[test]
    fn retries_back_off_from_one_second_to_the_cap() {
        let max = Duration::from_secs(30);
        let delays: Vec<u64> = (1..=7).map(|a| retry_delay(a, max).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(retry_delay(u32::MAX, max), max);
        assert_eq!(retry_delay(0, max), Duration::from_secs(1));
    }
}
