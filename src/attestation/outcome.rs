//! The verdict words every check speaks (`PASS`, `FAIL`, `note`) and how a quote is to be
//! checked: shared by the identity verifier (`verify`) and the evidence checks
//! (`evidence::check`), which `verify` calls — here so that neither has to import the other.

use std::fmt;

use super::dcap::QuotePolicy;

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// Information, or something not checked.
    Note,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Note => "note",
        })
    }
}

/// How to verify the quote itself.
#[derive(Debug, Clone, Copy)]
pub struct QuoteCheck<'a> {
    pub collateral: &'a dcap_qvl::QuoteCollateralV3,
    /// Unix seconds.
    pub at: u64,
    pub policy: &'a QuotePolicy,
}
