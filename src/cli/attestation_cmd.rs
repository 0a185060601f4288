//! `enclave attestation collateral fetch --pccs URL --quote FILE --out FILE`: Intel's collateral
//! for a quote, fetched from a PCCS or Intel's PCS, checked against the quote, and written as
//! the file `enclave quote verify --collateral` and `verify-identity --collateral` read.
//! `enclave attestation simulated-measurements --binary FILE`: the allowed measurements of the
//! simulated provider's TD running that binary.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use url::Url;

use super::quote_cmd::{read_input, QuoteCheckArgs};
use super::InputError;
use crate::attestation::dcap::collateral::{self, rfc3339};
use crate::attestation::dcap::{pccs, verify_quote, QuotePolicy};
use crate::attestation::write_atomic;
use crate::exit;

pub struct FetchArgs<'a> {
    pub pccs: &'a str,
    pub quote: &'a Path,
    pub out: &'a Path,
    pub ca_file: Option<&'a Path>,
    pub timeout: Duration,
    pub at: Option<u64>,
}

pub fn fetch(args: &FetchArgs<'_>) -> anyhow::Result<u8> {
    let base = Url::parse(args.pccs.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| InputError("--pccs must be an http or https URL with a host".into()))?;
    let raw_quote = read_input(args.quote, "quote", 1024 * 1024)?;
    let ca = args
        .ca_file
        .map(|p| read_input(p, "CA file", 1024 * 1024))
        .transpose()?;
    let client = pccs::client(args.timeout, ca.as_deref()).map_err(InputError)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (target, collateral) = runtime.block_on(pccs::fetch(&client, &base, &raw_quote))?;
    // Nothing is written that does not verify the quote: a PCCS with a stale cache serves
    // expired collateral, a wrong one another platform's.
    let at = QuoteCheckArgs {
        at: args.at,
        ..QuoteCheckArgs::default()
    }
    .at();
    let verified =
        verify_quote(&raw_quote, &collateral, at, &QuotePolicy::default()).map_err(|e| {
            anyhow::anyhow!(
                "the fetched collateral does not verify the quote, nothing written: {e}"
            )
        })?;
    write_atomic(args.out, &collateral::to_json(&collateral), 0o644)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {}: collateral for FMSPC {} (PCK CA {}, {}), valid {} .. {} ({} expires first)",
        args.out.display(),
        target.fmspc,
        target.ca,
        target.tee.to_uppercase(),
        rfc3339(verified.collateral.valid_from),
        rfc3339(verified.collateral.valid_until),
        verified.collateral.valid_until_part
    );
    println!(
        "it verifies the quote as of {}: TCB status {}; it has no PCK certificate chain, so every \
         machine with this FMSPC and PCK CA can use it",
        rfc3339(at),
        verified.facts.tcb_status
    );
    Ok(exit::OK)
}

/// The binary is the enclave itself (tens of MiB); anything much larger is not one.
const MAX_BINARY_BYTES: u64 = 1024 * 1024 * 1024;

pub fn simulated_measurements(binary: &Path) -> anyhow::Result<u8> {
    use sha2::Digest as _;
    let bytes = read_input(binary, "binary", MAX_BINARY_BYTES)?;
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    let quote = crate::attestation::quote_builder::synthetic_quote(
        &crate::attestation::quote_builder::QuoteSpec::default(),
    );
    let parsed = crate::attestation::quote::TdQuote::parse(&quote)
        .context("the simulated quote does not parse")?;
    let r = crate::attestation::evidence::check::registers(&parsed);
    let any = |m: &[u8]| serde_json::json!({"expected_any": [hex::encode(m)]});
    let records = serde_json::json!([{
        "measurement_id": "simulated TD (no TEE: local tries and tests only)",
        "attestation_type": "dcap-tdx",
        "measurements": {"mrtd": any(&r.mr_td), "rtmr0": any(&r.rtmr[0]),
                         "rtmr1": any(&r.rtmr[1]), "rtmr2": any(&r.rtmr[2])},
        "identity": {"binary_sha256": {"expected_any": [sha256]}},
    }]);
    println!("{}", serde_json::to_string_pretty(&records)?);
    Ok(exit::OK)
}
