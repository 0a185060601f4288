//! The checks a follower makes before it trusts what the leader sends, and everyone makes on a
//! finished report (ocr-and-sources.md A.1.4 `verifyReportReq`, `verifyAttestedReport`).

use std::collections::HashSet;

use alloy_primitives::aliases::I192;

use super::config::InstanceConfig;
use super::messages::{AttestedReportMany, AttributedSignedObservation, ReportObservation};
use crate::node::ocr1::observation::verify_observation;
use crate::node::ocr1::report::{encode_report, AttributedObservation};
use crate::node::ocr1::signature::recover_signer;
use crate::node::ocr1::types::{EpochRound, OracleId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("observations are not sorted by value")]
    Unsorted,
    #[error("observer {0} is not a configured oracle")]
    UnknownObserver(u8),
    #[error("observer {0} appears twice")]
    DuplicateObserver(u8),
    #[error("the observation of oracle {0} has an invalid signature")]
    BadObservationSignature(u8),
    #[error("{got} observations, more than {needed_above} needed")]
    TooFewObservations { got: usize, needed_above: usize },
    #[error("{got} report signatures, more than {needed_above} needed")]
    TooFewSignatures { got: usize, needed_above: usize },
    #[error("a report signature does not come from a configured signer")]
    UnknownSigner,
    #[error("two report signatures come from the same signer")]
    DuplicateSigner,
    #[error("the report signature of oracle {0} does not verify")]
    BadReportSignature(u8),
    #[error("the report cannot be encoded: {0}")]
    Encoding(String),
}

pub fn er(epoch: u32, round: u8) -> EpochRound {
    EpochRound { epoch, round }
}

/// The report-request checks, in libocr's order; returns the observations to report on.
pub fn report_request(
    cfg: &InstanceConfig,
    epoch: u32,
    round: u8,
    observations: &[AttributedSignedObservation],
) -> Result<Vec<ReportObservation>, Invalid> {
    if observations
        .windows(2)
        .any(|w| w[0].observation.value > w[1].observation.value)
    {
        return Err(Invalid::Unsorted);
    }
    let mut seen = HashSet::new();
    for o in observations {
        let key = cfg
            .offchain_keys
            .get(usize::from(o.observer))
            .ok_or(Invalid::UnknownObserver(o.observer))?;
        if !seen.insert(o.observer) {
            return Err(Invalid::DuplicateObserver(o.observer));
        }
        verify_observation(
            key,
            cfg.digest,
            er(epoch, round),
            o.observation.value,
            &o.observation.signature,
        )
        .map_err(|_| Invalid::BadObservationSignature(o.observer))?;
    }
    if observations.len() <= 2 * cfg.f {
        return Err(Invalid::TooFewObservations {
            got: observations.len(),
            needed_above: 2 * cfg.f,
        });
    }
    Ok(observations
        .iter()
        .map(|o| ReportObservation {
            value: o.observation.value,
            observer: o.observer,
        })
        .collect())
}

/// The exact on-chain report bytes for these observations in this round.
pub fn report_bytes(
    cfg: &InstanceConfig,
    epoch: u32,
    round: u8,
    observations: &[ReportObservation],
) -> Result<Vec<u8>, Invalid> {
    let attributed: Vec<AttributedObservation> = observations
        .iter()
        .map(|o| AttributedObservation {
            value: o.value,
            observer: OracleId(o.observer),
        })
        .collect();
    encode_report(cfg.digest, er(epoch, round), &attributed)
        .map_err(|e| Invalid::Encoding(e.to_string()))
}

/// Whether `signature` over `report` is oracle `from`'s.
pub fn report_signature(
    cfg: &InstanceConfig,
    report: &[u8],
    from: u8,
    signature: &[u8; 65],
) -> Result<(), Invalid> {
    let expected = cfg
        .signers
        .get(usize::from(from))
        .ok_or(Invalid::UnknownObserver(from))?;
    match recover_signer(report, signature) {
        Ok(address) if address == *expected => Ok(()),
        _ => Err(Invalid::BadReportSignature(from)),
    }
}

/// A finished report: enough observations, more than f signatures from distinct configured signers.
pub fn attested_report(
    cfg: &InstanceConfig,
    epoch: u32,
    round: u8,
    report: &AttestedReportMany,
) -> Result<Vec<u8>, Invalid> {
    if report.observations.len() <= 2 * cfg.f {
        return Err(Invalid::TooFewObservations {
            got: report.observations.len(),
            needed_above: 2 * cfg.f,
        });
    }
    if report
        .observations
        .iter()
        .any(|o| usize::from(o.observer) >= cfg.n)
    {
        let bad = report
            .observations
            .iter()
            .find(|o| usize::from(o.observer) >= cfg.n)
            .map(|o| o.observer)
            .unwrap_or_default();
        return Err(Invalid::UnknownObserver(bad));
    }
    let bytes = report_bytes(cfg, epoch, round, &report.observations)?;
    if report.signatures.len() <= cfg.f {
        return Err(Invalid::TooFewSignatures {
            got: report.signatures.len(),
            needed_above: cfg.f,
        });
    }
    let mut signers = HashSet::new();
    for signature in &report.signatures {
        let address = recover_signer(&bytes, signature).map_err(|_| Invalid::UnknownSigner)?;
        if !cfg.signers.contains(&address) {
            return Err(Invalid::UnknownSigner);
        }
        if !signers.insert(address) {
            return Err(Invalid::DuplicateSigner);
        }
    }
    Ok(bytes)
}

/// The on-chain answer: the middle observation (`observations[k/2]`).
pub fn median(observations: &[ReportObservation]) -> Option<I192> {
    observations.get(observations.len() / 2).map(|o| o.value)
}
