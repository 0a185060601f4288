//! `consensus`: the OCR protocol parameters (ocr-and-sources.md A.1.2), validated as libocr
//! validates them (`checkPublicConfigParameters` and the per-chain minimums).

use std::time::Duration;

use crate::config::reader::{Fields, Report};

/// libocr's `types.MaxOracles`, also the on-chain limit.
pub const MAX_ORACLES: usize = 31;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsensusConfig {
    pub delta_progress: Duration,
    pub delta_resend: Duration,
    pub delta_round: Duration,
    pub delta_grace: Duration,
    pub delta_stage: Duration,
    pub r_max: u8,
    /// Oracles per transmission stage (OCR `S`).
    pub transmission_schedule: Vec<u8>,
    /// Maximum faulty oracles; `n > 3f`.
    pub f: usize,
    /// libocr's escape hatch for the per-chain minimums (dev chains).
    pub skip_chain_specific_checks: bool,
}

/// The reference's schedule: one oracle in the first stage, two in each later one, one stage per oracle.
pub fn default_schedule(oracles: usize) -> Vec<u8> {
    (0..oracles.max(1))
        .map(|i| if i == 0 { 1 } else { 2 })
        .collect()
}

/// Reads the section; `oracles` (n) fills the defaults that depend on it.
pub fn read_consensus(r: &mut Report, f: Option<Fields<'_>>, oracles: usize) -> ConsensusConfig {
    use crate::config::defaults::consensus::*;
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.consensus"));
    let schedule = f.array(r, "transmissionSchedule").map(|items| {
        items
            .iter()
            .filter_map(|(p, v)| crate::config::reader::integer_in(r, p, v, 0, MAX_ORACLES as u64))
            .map(|v| v as u8)
            .collect::<Vec<u8>>()
    });
    let config = ConsensusConfig {
        delta_progress: f.millis(r, "deltaProgressMs", 0, u64::MAX, DELTA_PROGRESS_MS),
        delta_resend: f.millis(r, "deltaResendMs", 0, u64::MAX, DELTA_RESEND_MS),
        delta_round: f.millis(r, "deltaRoundMs", 0, u64::MAX, DELTA_ROUND_MS),
        delta_grace: f.millis(r, "deltaGraceMs", 0, u64::MAX, DELTA_GRACE_MS),
        delta_stage: f.millis(r, "deltaStageMs", 0, u64::MAX, DELTA_STAGE_MS),
        r_max: f.integer_or(r, "rMax", 1, 254, R_MAX) as u8,
        transmission_schedule: schedule.unwrap_or_else(|| default_schedule(oracles)),
        f: f.integer(r, "f", 1, 10)
            .map(|v| v as usize)
            .unwrap_or(oracles.saturating_sub(1) / 3),
        skip_chain_specific_checks: f.boolean_or(
            r,
            "skipChainSpecificChecks",
            SKIP_CHAIN_SPECIFIC_CHECKS,
        ),
    };
    f.finish(r, &[]);
    config
}

/// libocr's per-chain minimums (`checkPublicConfigParametersForChain`); unknown chains, such as
/// opBNB, get the strictest ("slow updates") row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainMinimums {
    pub name: &'static str,
    pub delta_c: Duration,
    pub delta_stage: Duration,
    pub delta_round: Duration,
    pub delta_progress: Duration,
    pub delta_resend: Duration,
}

pub fn chain_minimums(chain_id: u64) -> ChainMinimums {
    let s = Duration::from_secs;
    let row = |name, c, st, ro, pr, re| ChainMinimums {
        name,
        delta_c: s(c),
        delta_stage: s(st),
        delta_round: s(ro),
        delta_progress: s(pr),
        delta_resend: s(re),
    };
    match chain_id {
        1337 | 7418 => row("private testnet", 0, 0, 0, 0, 0),
        56 | 137 => row("fast-updates chain", 10, 5, 5, 8, 5),
        10 | 30 | 100 | 128 | 250 | 42161 | 43114 | 1_666_600_000..=1_666_600_003 => {
            row("moderate-updates chain", 60, 5, 20, 23, 10)
        }
        4
        | 5
        | 31
        | 42
        | 69
        | 97
        | 256
        | 420
        | 4002
        | 43113
        | 80001
        | 421611
        | 1_666_700_000..=1_666_700_003 => row("public testnet", 1, 5, 1, 2, 2),
        1 => row("slow-updates chain", 600, 10, 20, 23, 10),
        _ => row(
            "chain unknown to libocr (treated as slow-updates)",
            600,
            10,
            20,
            23,
            10,
        ),
    }
}
