//! Whether to transmit a finalized report (libocr OCR1 `transmission.go`, ocr-and-sources.md
//! A.1.5) with libocr PR #131's fix: a pending transmission older than ΔC no longer counts as
//! pending, so a transmission that failed silently cannot freeze a feed whose price is flat.

use std::time::{Duration, SystemTime};

use alloy_primitives::aliases::I192;

use crate::node::ocr1::deviation::deviates;
use crate::node::ocr1::types::{ConfigDigest, EpochRound};

/// What the contract says it accepted last (`latestTransmissionDetails`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractView {
    pub digest: ConfigDigest,
    pub latest: EpochRound,
}

/// The last report this oracle accepted for transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub er: EpochRound,
    pub median: I192,
    pub at: SystemTime,
}

/// The skip reason of a median outside the contract's bounds.
pub const OUT_OF_BOUNDS: &str = "out_of_bounds";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// Expected outcomes, not errors: logged at debug and counted by reason.
    Skip(&'static str),
}

/// The contract's `minAnswer`/`maxAnswer`, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: I192,
    pub max: I192,
}

impl Bounds {
    pub fn contain(&self, median: I192) -> bool {
        self.min <= median && median <= self.max
    }
}

/// On a finalized report (`EventTransmit`): accept it for (scheduled) transmission or not.
/// A median outside the contract's bounds is never sent: `transmit` would revert ("median is
/// out of min-max range") and the gas would be lost. `bounds` is `None` when unknown.
#[allow(clippy::too_many_arguments)]
pub fn accept(
    ours: ConfigDigest,
    report: EpochRound,
    report_median: I192,
    contract: &ContractView,
    bounds: Option<&Bounds>,
    last: Option<&Accepted>,
    alpha_ppb: u64,
    delta_c: Duration,
    now: SystemTime,
) -> Decision {
    if contract.digest != ours {
        return Decision::Skip("config_digest_mismatch");
    }
    if report <= contract.latest {
        return Decision::Skip("contract_has_newer");
    }
    if bounds.is_some_and(|b| !b.contain(report_median)) {
        return Decision::Skip(OUT_OF_BOUNDS);
    }
    let Some(last) = last else {
        return Decision::Accept;
    };
    if report <= last.er {
        return Decision::Skip("not_newer_than_accepted");
    }
    let nothing_pending = last.er <= contract.latest;
    let pending_too_old = now.duration_since(last.at).is_ok_and(|age| age > delta_c);
    // libocr compares with the arguments this way round (relative to the report's median).
    if deviates(report_median, last.median, alpha_ppb) || nothing_pending || pending_too_old {
        Decision::Accept
    } else {
        Decision::Skip("pending_without_deviation")
    }
}

/// At the scheduled time: send only if the contract still has nothing as new.
pub fn still_needed(ours: ConfigDigest, report: EpochRound, contract: &ContractView) -> Decision {
    if contract.digest != ours {
        Decision::Skip("config_digest_mismatch")
    } else if report <= contract.latest {
        Decision::Skip("already_on_chain")
    } else {
        Decision::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: ConfigDigest = ConfigDigest([1; 16]);

    fn er(epoch: u32, round: u8) -> EpochRound {
        EpochRound { epoch, round }
    }

    fn int(v: i64) -> I192 {
        I192::try_from(v).unwrap()
    }

    fn view(epoch: u32, round: u8) -> ContractView {
        ContractView {
            digest: D,
            latest: er(epoch, round),
        }
    }

    const C: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_report_newer_than_the_contract_is_accepted() {
        let now = SystemTime::now();
        assert_eq!(
            accept(D, er(1, 1), int(5), &view(0, 0), None, None, 0, C, now),
            Decision::Accept
        );
        assert_eq!(
            accept(D, er(1, 1), int(5), &view(1, 1), None, None, 0, C, now),
            Decision::Skip("contract_has_newer")
        );
        let other = ContractView {
            digest: ConfigDigest([2; 16]),
            latest: er(0, 0),
        };
        assert_eq!(
            accept(D, er(1, 1), int(5), &other, None, None, 0, C, now),
            Decision::Skip("config_digest_mismatch")
        );
    }

    #[test]
    fn while_a_flat_report_is_pending_the_next_flat_one_waits_and_a_deviating_one_goes() {
        let now = SystemTime::now();
        let last = Accepted {
            er: er(2, 1),
            median: int(1000),
            at: now - Duration::from_secs(5),
        };
        // (report, median, contract's latest, expected)
        let table = [
            // Contract still at (1,1): (2,1) pending.
            (
                er(2, 2),
                1001,
                er(1, 1),
                Decision::Skip("pending_without_deviation"),
            ),
            (er(2, 2), 1010, er(1, 1), Decision::Accept),
            // Once (2,1) landed, nothing is pending: accepted.
            (er(2, 2), 1001, er(2, 1), Decision::Accept),
            (
                er(2, 1),
                1001,
                er(1, 1),
                Decision::Skip("not_newer_than_accepted"),
            ),
        ];
        for (report, median, latest, expected) in table {
            let contract = view(latest.epoch, latest.round);
            let got = accept(
                D,
                report,
                int(median),
                &contract,
                None,
                Some(&last),
                5_000_000,
                C,
                now,
            );
            assert_eq!(
                got, expected,
                "{report:?} median {median} contract at {latest:?}"
            );
        }
    }

    #[test]
    fn a_silently_failed_transmission_stops_blocking_after_delta_c() {
        // libocr PR #131: the pending (2,1) never landed; without the fix the feed would freeze.
        let now = SystemTime::now();
        let stuck = Accepted {
            er: er(2, 1),
            median: int(1000),
            at: now - C - Duration::from_secs(1),
        };
        assert_eq!(
            accept(
                D,
                er(9, 1),
                int(1000),
                &view(1, 1),
                None,
                Some(&stuck),
                5_000_000,
                C,
                now
            ),
            Decision::Accept
        );
    }

    #[test]
    fn a_median_outside_the_contracts_bounds_is_never_accepted() {
        let now = SystemTime::now();
        let bounds = Bounds {
            min: int(10),
            max: int(1000),
        };
        let table = [
            (9, Decision::Skip(OUT_OF_BOUNDS)),
            (10, Decision::Accept),
            (500, Decision::Accept),
            (1000, Decision::Accept),
            (1001, Decision::Skip(OUT_OF_BOUNDS)),
            (-5, Decision::Skip(OUT_OF_BOUNDS)),
        ];
        for (median, expected) in table {
            let got = accept(
                D,
                er(2, 1),
                int(median),
                &view(1, 1),
                Some(&bounds),
                None,
                0,
                C,
                now,
            );
            assert_eq!(got, expected, "median {median}");
        }
        // Unknown bounds: the contract decides.
        assert_eq!(
            accept(D, er(2, 1), int(5000), &view(1, 1), None, None, 0, C, now),
            Decision::Accept
        );
        // What the contract already has is reported as such, whatever the median.
        assert_eq!(
            accept(
                D,
                er(1, 1),
                int(5000),
                &view(1, 1),
                Some(&bounds),
                None,
                0,
                C,
                now
            ),
            Decision::Skip("contract_has_newer")
        );
    }

    #[test]
    fn at_the_scheduled_time_a_report_already_on_chain_is_not_sent_again() {
        assert_eq!(still_needed(D, er(3, 2), &view(3, 1)), Decision::Accept);
        assert_eq!(
            still_needed(D, er(3, 2), &view(3, 2)),
            Decision::Skip("already_on_chain")
        );
        assert_eq!(
            still_needed(D, er(3, 2), &view(4, 1)),
            Decision::Skip("already_on_chain")
        );
    }
}
