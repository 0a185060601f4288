//! `enclave quote verify QUOTE --collateral FILE [--at RFC3339] [--json] [policy flags]
//! [--measurements FILE]`: a DCAP quote checked offline, with what it says printed.
//!
//! Exit codes: 0 the quote verifies and the policy (and the measurements, when given) accept
//! it; 1 it does not (invalid, expired collateral, refused); 2 usage; 65 an input file cannot
//! be read or is malformed (nothing was judged).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use dcap_qvl::{QuoteCollateralV3, TcbStatus};
use serde_json::{json, Value};

use super::InputError;
use crate::attestation::dcap::collateral::{self, rfc3339};
use crate::attestation::dcap::policy::{self, PlatformFlag, MAX_COLLATERAL_GRACE};
use crate::attestation::dcap::{verify_quote, QuotePolicy, Rejected, Verified};
use crate::attestation::measurements::{self, MeasurementMatch, MeasurementRecord};
use crate::exit;

/// Quote files are a few KiB.
const MAX_QUOTE_BYTES: u64 = 1024 * 1024;

/// When and under which policy a quote is verified (shared by `quote verify` and
/// `verify-identity`).
#[derive(Debug, Args, Default, Clone)]
pub struct QuoteCheckArgs {
    /// Verify as of this time (RFC 3339, e.g. 2025-07-01T00:00:00Z) [default: now].
    #[arg(long, value_name = "RFC3339", value_parser = parse_at)]
    pub at: Option<u64>,
    /// A policy file (JSON: allowedTcbStatuses, rejectAdvisories, refusePlatformFlags,
    /// collateralGraceSeconds); the flags below add to it.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Accept this TCB status besides UpToDate (repeatable): SWHardeningNeeded,
    /// ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate,
    /// OutOfDateConfigurationNeeded, TDRelaunchAdvised, TDRelaunchAdvisedConfigurationNeeded.
    #[arg(long = "allow-tcb-status", value_name = "NAME", value_parser = parse_status)]
    pub allow_tcb_status: Vec<TcbStatus>,
    /// Refuse quotes with this Intel advisory (repeatable), e.g. INTEL-SA-00615.
    #[arg(long = "reject-advisory", value_name = "ID", value_parser = parse_advisory)]
    pub reject_advisory: Vec<String>,
    /// Refuse quotes whose PCK certificate sets this flag (repeatable): dynamic-platform,
    /// cached-keys, smt. By default the flags are reported and accepted.
    #[arg(long = "refuse-platform-flag", value_name = "NAME", value_parser = parse_flag)]
    pub refuse_platform_flag: Vec<PlatformFlag>,
    /// Accept collateral that expired at most this long before the verification time (e.g. 3d);
    /// the quote is then checked as of the collateral's expiry [default: none].
    #[arg(long, value_name = "DURATION", value_parser = parse_grace)]
    pub collateral_grace: Option<Duration>,
}

pub fn parse_at(text: &str) -> Result<u64, String> {
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("not an RFC 3339 time such as 2025-07-01T00:00:00Z: {e}"))?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "before 1970".to_owned())
}

fn parse_status(text: &str) -> Result<TcbStatus, String> {
    policy::tcb_status(text).map_err(|e| e.to_string())
}

fn parse_advisory(text: &str) -> Result<String, String> {
    policy::advisory(text).map_err(|e| e.to_string())
}

fn parse_flag(text: &str) -> Result<PlatformFlag, String> {
    policy::platform_flag(text).map_err(|e| e.to_string())
}

fn parse_grace(text: &str) -> Result<Duration, String> {
    let grace = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if grace > MAX_COLLATERAL_GRACE {
        return Err(format!(
            "at most {}",
            humantime::format_duration(MAX_COLLATERAL_GRACE)
        ));
    }
    Ok(grace)
}

impl QuoteCheckArgs {
    /// The verification time: `--at`, else the clock.
    pub fn at(&self) -> u64 {
        self.at.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
    }

    /// The policy file (if any) with the flags added.
    pub fn policy(&self) -> anyhow::Result<QuotePolicy> {
        let mut policy = match &self.policy {
            Some(path) => QuotePolicy::parse_file(&read_input(
                path,
                "policy file",
                policy::MAX_POLICY_BYTES as u64,
            )?)
            .map_err(|e| InputError(format!("{}: {e}", path.display())))?,
            None => QuotePolicy::default(),
        };
        for status in &self.allow_tcb_status {
            policy.allow_status(*status);
        }
        policy
            .rejected_advisories
            .extend(self.reject_advisory.iter().cloned());
        policy
            .refused_platform_flags
            .extend(self.refuse_platform_flag.iter().copied());
        if let Some(grace) = self.collateral_grace {
            policy.collateral_grace = grace;
        }
        Ok(policy)
    }
}

/// Reads a whole input file, at most `limit` bytes; failures are input errors (exit 65).
pub fn read_input(path: &Path, what: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let read = || -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(limit + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let bytes = read()
        .map_err(|e| InputError(format!("cannot read the {what} {}: {e}", path.display())))?;
    if bytes.len() as u64 > limit {
        return Err(InputError(format!(
            "the {what} {} is larger than {limit} bytes",
            path.display()
        ))
        .into());
    }
    Ok(bytes)
}

pub fn read_collateral(path: &Path) -> anyhow::Result<QuoteCollateralV3> {
    let bytes = read_input(path, "collateral", collateral::MAX_COLLATERAL_BYTES as u64)?;
    collateral::parse(&bytes).map_err(|e| InputError(format!("{}: {e}", path.display())).into())
}

pub fn read_measurements(path: &Path) -> anyhow::Result<Vec<MeasurementRecord>> {
    let bytes = read_input(
        path,
        "measurements file",
        measurements::MAX_FILE_BYTES as u64,
    )?;
    measurements::parse_file(&bytes)
        .map_err(|e| InputError(format!("{}: {e}", path.display())).into())
}

pub fn run(
    quote: &Path,
    collateral: &Path,
    measurements_file: Option<&Path>,
    check: &QuoteCheckArgs,
    as_json: bool,
) -> anyhow::Result<u8> {
    let raw_quote = read_input(quote, "quote", MAX_QUOTE_BYTES)?;
    let collateral = read_collateral(collateral)?;
    let records = measurements_file.map(read_measurements).transpose()?;
    let policy = check.policy()?;
    let at = check.at();
    let result = verify_quote(&raw_quote, &collateral, at, &policy);
    // An SGX quote has no TD registers: nothing to compare (the policy refuses it anyway).
    let matched = match (&result, &records) {
        (Ok(verified), Some(records)) => verified
            .facts
            .td
            .as_ref()
            .map(|td| measurements::check(records, Some(&td.registers()), None)),
        _ => None,
    };
    let accepted = result.as_ref().is_ok_and(Verified::accepted)
        && matched.as_ref().is_none_or(MeasurementMatch::allowed);
    let checked = Checked {
        result: &result,
        matched: matched.as_ref(),
        policy: &policy,
        at,
        bytes: raw_quote.len(),
    };
    if as_json {
        let value = to_json(checked, accepted);
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print_text(checked);
    }
    Ok(if accepted { exit::OK } else { exit::FAILURE })
}

fn policy_line(policy: &QuotePolicy) -> String {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut statuses = vec!["UpToDate".to_owned()];
    statuses.extend(policy.allowed_tcb_statuses.iter().cloned());
    format!(
        "TCB statuses accepted: {}; advisories rejected: {}; platform flags refused: {}; collateral grace: {}",
        statuses.join(", "),
        list(policy.rejected_advisories.iter().cloned().collect()),
        list(
            policy
                .refused_platform_flags
                .iter()
                .map(ToString::to_string)
                .collect()
        ),
        if policy.collateral_grace.is_zero() {
            "none".to_owned()
        } else {
            humantime::format_duration(policy.collateral_grace).to_string()
        }
    )
}

/// What one check found, for either output.
#[derive(Clone, Copy)]
struct Checked<'a> {
    result: &'a Result<Verified, Rejected>,
    matched: Option<&'a MeasurementMatch>,
    policy: &'a QuotePolicy,
    at: u64,
    /// The quote's size.
    bytes: usize,
}

fn print_text(checked: Checked<'_>) {
    println!("verification time: {}", rfc3339(checked.at));
    println!("policy: {}", policy_line(checked.policy));
    let verified = match checked.result {
        Ok(v) => v,
        Err(e) => {
            println!("INVALID: {e}");
            return;
        }
    };
    let f = &verified.facts;
    println!(
        "quote: {} v{}, {} report, {} bytes",
        f.tee.to_uppercase(),
        f.quote_version,
        f.report_type,
        checked.bytes
    );
    println!(
        "collateral: valid {} .. {} ({} expires first)",
        rfc3339(verified.collateral.valid_from),
        rfc3339(verified.collateral.valid_until),
        verified.collateral.valid_until_part
    );
    if let Some(late) = verified.grace_used {
        println!(
            "collateral grace: the collateral expired {} before the verification time; checked as of {}",
            humantime::format_duration(Duration::from_secs(late)),
            rfc3339(verified.verified_at)
        );
    }
    if verified.collateral_pck_chain_ignored {
        println!(
            "note: the collateral's own PCK certificate chain was set aside: the quote carries one"
        );
    }
    println!(
        "TCB status: {} (platform {}, TCB date {}; QE {}; TCB evaluation data number {})",
        f.tcb_status,
        f.platform_tcb_status,
        f.platform_tcb_date,
        f.qe_tcb_status,
        f.tcb_evaluation_data_number
    );
    println!(
        "advisories: {}",
        if f.advisory_ids.is_empty() {
            "none".to_owned()
        } else {
            f.advisory_ids.join(", ")
        }
    );
    println!(
        "platform: FMSPC {}, PCK CA {}; dynamic-platform {}, cached-keys {}, smt {}",
        f.fmspc,
        f.pck_ca,
        f.platform_flags.dynamic_platform.as_str(),
        f.platform_flags.cached_keys.as_str(),
        f.platform_flags.smt_enabled.as_str()
    );
    if let Some(td) = &f.td {
        println!(
            "TD attributes: {} (debug {})",
            hex::encode(td.td_attributes),
            if td.debug { "ON" } else { "off" }
        );
        for (name, value) in [
            ("MRTD", &td.mr_td),
            ("RTMR0", &td.rtmr0),
            ("RTMR1", &td.rtmr1),
            ("RTMR2", &td.rtmr2),
            ("RTMR3", &td.rtmr3),
            ("MRCONFIGID", &td.mr_config_id),
            ("MROWNER", &td.mr_owner),
            ("MROWNERCONFIG", &td.mr_owner_config),
            ("MRSEAM", &td.mr_seam),
        ] {
            println!("{name}: {}", hex::encode(value));
        }
        println!("REPORTDATA: {}", hex::encode(td.report_data));
    }
    if let Some(m) = checked.matched {
        match &m.matched {
            Some(id) => println!(
                "measurements: allowed by record {id:?} (registers; identity facts are compared by verify-identity)"
            ),
            None => println!("measurements: NOT allowed: {}", m.explain()),
        }
    }
    for refusal in &verified.refusals {
        println!("REFUSED: {refusal}");
    }
    let allowed = checked.matched.is_none_or(MeasurementMatch::allowed);
    if verified.accepted() && allowed {
        println!("VALID: the quote verifies to Intel's root and the policy accepts it");
    } else if verified.accepted() {
        println!("REFUSED: the quote verifies, but its measurements are not allowed");
    }
}

fn to_json(checked: Checked<'_>, accepted: bool) -> Value {
    let mut value = json!({
        "valid": accepted,
        "at": rfc3339(checked.at),
        "quoteBytes": checked.bytes,
        "policy": checked.policy,
    });
    match checked.result {
        Err(e) => {
            value["result"] = json!("invalid");
            value["error"] = json!(e.to_string());
        }
        Ok(verified) => {
            value["result"] = json!(if accepted { "valid" } else { "refused" });
            value["verifiedAt"] = json!(rfc3339(verified.verified_at));
            value["graceUsedSeconds"] = json!(verified.grace_used);
            value["collateral"] = json!({
                "validFrom": rfc3339(verified.collateral.valid_from),
                "validUntil": rfc3339(verified.collateral.valid_until),
                "expiresFirst": verified.collateral.valid_until_part,
                "ownPckChainIgnored": verified.collateral_pck_chain_ignored,
            });
            value["quote"] = serde_json::to_value(&verified.facts).unwrap_or(Value::Null);
            value["refusals"] = verified
                .refusals
                .iter()
                .map(|r| json!({"refusal": r, "message": r.to_string()}))
                .collect();
            if let Some(m) = checked.matched {
                value["measurements"] = json!({
                    "matched": m.matched,
                    "mismatches": m.explain(),
                    "skipped": m.skipped,
                });
            }
        }
    }
    value
}
