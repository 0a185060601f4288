//! `enclave verify-identity IDENTITY.json [--quote FILE] [--event-log FILE] [--collateral FILE]
//! [--measurements FILE] [--trusted-ca FILE]… [--allow-simulated] [--require-birth]
//! [--config FILE --public-key-file FILE]`: what a third party runs on what an enclave
//! published (the document, as `GET /v1/identity` serves it, carries its evidence and the
//! nodes' key birth evidence).

use std::path::Path;

use super::config_cmd::public_key;
use super::quote_cmd::{read_collateral, read_input, read_measurements, QuoteCheckArgs};
use super::{InputError, KeyArgs};
use crate::attestation::evidence::signing::certificates;
use crate::attestation::verify::{verify, Evidence, QuoteCheck};
use crate::config::{read_document, validate_document};
use crate::exit;

/// A quote is a few KiB and an event log a few lines per boot; anything this large is not one.
const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// The files to verify.
pub struct Inputs<'a> {
    pub identity: &'a Path,
    pub quote: Option<&'a Path>,
    pub event_log: Option<&'a Path>,
    pub collateral: Option<&'a Path>,
    pub measurements: Option<&'a Path>,
    pub trusted_cas: &'a [std::path::PathBuf],
    pub allow_simulated: bool,
    pub require_birth: bool,
}

fn text(path: &Path, what: &str) -> anyhow::Result<String> {
    String::from_utf8(read_input(path, what, MAX_INPUT_BYTES)?)
        .map_err(|_| InputError(format!("{} is not UTF-8 text", path.display())).into())
}

pub fn run(
    config: Option<&Path>,
    inputs: &Inputs<'_>,
    check: &QuoteCheckArgs,
    key: &KeyArgs,
) -> anyhow::Result<u8> {
    let document = text(inputs.identity, "identity document")?;
    let quote = inputs
        .quote
        .map(|p| read_input(p, "quote", MAX_INPUT_BYTES))
        .transpose()?;
    let event_log = inputs.event_log.map(|p| text(p, "event log")).transpose()?;
    let collateral = inputs.collateral.map(read_collateral).transpose()?;
    let policy = check.policy()?;
    let mut trusted_cas = Vec::new();
    for path in inputs.trusted_cas {
        let pem = read_input(path, "trusted CA certificate", MAX_INPUT_BYTES)?;
        let mut certs =
            certificates(&pem).map_err(|e| InputError(format!("{}: {e}", path.display())))?;
        trusted_cas.append(&mut certs);
    }
    let configuration = config.map(read_document).transpose()?;
    let public_key = public_key(key, None)?;
    // The allowed measurements: the file, else the configuration's (when it is valid; an
    // invalid configuration is reported by the checks themselves).
    let (records, source) = match inputs.measurements {
        Some(path) => (
            Some(read_measurements(path)?),
            format!("from {}", path.display()),
        ),
        None => (
            configuration
                .as_ref()
                .and_then(|c| validate_document(c).ok())
                .map(|v| v.config.attestation.allowed_measurements)
                .filter(|records| !records.is_empty()),
            "from the configuration's attestation.allowedMeasurements".to_owned(),
        ),
    };
    let report = verify(
        &document,
        &Evidence {
            quote: quote.as_deref(),
            configuration: configuration.as_ref(),
            public_key: public_key.as_ref(),
            event_log: event_log.as_deref(),
            quote_check: collateral.as_ref().map(|collateral| QuoteCheck {
                collateral,
                at: check.at(),
                policy: &policy,
            }),
            measurements: records.as_deref().map(|r| (r, source.as_str())),
            trusted_cas: &trusted_cas,
            at: Some(check.at()),
            allow_simulated: inputs.allow_simulated,
            require_birth: inputs.require_birth,
        },
    );
    for check in &report.checks {
        println!("{check}");
    }
    if report.verified() {
        println!(
            "identity verified: {} checks passed, none failed",
            report.passes()
        );
        Ok(exit::OK)
    } else {
        println!(
            "identity NOT verified: {} of {} checks failed",
            report.failures(),
            report.failures() + report.passes()
        );
        Ok(exit::FAILURE)
    }
}
