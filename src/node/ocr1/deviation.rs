//! The deviation test that decides whether a new median is worth reporting and transmitting.
//!
//! Verified against libocr `offchainreporting/internal/protocol/observation/observation.go`
//! `(o Observation) Deviates(old Observation, thresholdPPB uint64) bool`: exact `big.Rat`
//! comparison `|o − old| / |old| ≥ thresholdPPB / 1e9`, with `old == 0` deviating for any
//! non-zero `o` and never for `o == 0`. (An older libocr compared a float64 with `>`; current
//! libocr and the OCR2 median plugin use this exact form.)
//!
//! Argument order matters because the change is relative to `old`. libocr calls it as:
//! - report generation `shouldReport`: `deviates(old = contract's latestAnswer, new = median)`;
//! - transmission `shouldTransmit`: `latestMedian.Deviates(reportMedian)`, i.e.
//!   `deviates(old = reportMedian, new = last accepted median)` — relative to the *new*
//!   report's median. Callers that must agree with Go oracles should keep that quirk.

use alloy_primitives::{I256, U256};

use super::int192::{to_i256, I192};

const PPB: u64 = 1_000_000_000;

/// `|new − old| / |old| ≥ alpha_ppb / 10^9`, in exact integer arithmetic:
/// `|new − old| · 10^9 ≥ alpha_ppb · |old|`. Both sides fit in 256 bits (|new − old| ≤ 2^192,
/// so the left side is < 2^222; the right side is < 2^64 · 2^191).
pub fn deviates(old: I192, new: I192, alpha_ppb: u64) -> bool {
    if old.is_zero() {
        return !new.is_zero();
    }
    let change: I256 = to_i256(new) - to_i256(old);
    let lhs: U256 = change.unsigned_abs() * U256::from(PPB);
    let rhs: U256 = U256::from(alpha_ppb) * to_i256(old).unsigned_abs();
    lhs >= rhs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ocr1::int192::parse_int192;

    const MAX: &str = "3138550867693340381917894711603833208051177722232017256447";
    const MIN: &str = "-3138550867693340381917894711603833208051177722232017256448";

    #[test]
    fn matches_exact_rational_comparison() {
        // (old, new, alphaPPB, expected) from vectors.py (Python Fraction).
        let cases: [(&str, &str, u64, bool); 16] = [
            ("0", "0", 5_000_000, false),
            ("0", "1", 5_000_000, true),
            ("0", "-1", 0, true),
            ("1000", "1005", 5_000_000, true),
            ("1000", "995", 5_000_000, true),
            ("1000", "1004", 5_000_000, false),
            ("1000000000", "1004999999", 5_000_000, false),
            ("1000000000", "1005000000", 5_000_000, true),
            ("-1000", "-1005", 5_000_000, true),
            ("-1000", "1000", 5_000_000, true),
            ("5", "5", 0, true),
            (MIN, MAX, u64::MAX, false),
            (MAX, MIN, u64::MAX, false),
            ("1", MAX, u64::MAX, true),
            ("3", "4", 333_333_334, false),
            ("3", "4", 333_333_333, true),
        ];
        for (old, new, alpha, want) in cases {
            let old_v = parse_int192(old).expect("int");
            let new_v = parse_int192(new).expect("int");
            assert_eq!(
                deviates(old_v, new_v, alpha),
                want,
                "old={old} new={new} alpha={alpha}"
            );
        }
    }

    #[test]
    fn the_change_is_relative_to_old() {
        // 100 → 110 is +10% of 100; 110 → 100 is −9.09% of 110.
        let a = parse_int192("100").expect("int");
        let b = parse_int192("110").expect("int");
        assert!(deviates(a, b, 100_000_000));
        assert!(!deviates(b, a, 100_000_000));
    }
}
