//! The one quote verifier every command uses: a pure function of the quote's bytes, the
//! collateral, the verification time and the policy. No clock, no files, no network.
//!
//! dcap-qvl checks the signatures (quote by the attestation key, QE report by the PCK key, PCK
//! chain to Intel's SGX root with both CRLs, TCB Info and QE Identity by Intel's TCB signing
//! key), the collateral's dates at the given time, the QE identity, the TCB level (status and
//! advisories; `Revoked` fails) and the TD attributes (debug, migratable, SEPT_VE_DISABLE, …).
//! What it leaves to its caller, [`super::policy::evaluate`] decides.

use std::time::Duration;

use dcap_qvl::quote::{Quote, Report};
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::{PckCertFlag, QuoteClaims, QuoteCollateralV3, QuotePolicy as ClaimsOnly, TcbStatus};
use serde::Serialize;

use super::collateral::{self, Window};
use super::policy::{evaluate, PlatformFlag, QuotePolicy, Refusal};
use crate::attestation::measurements::TdRegisters;
use crate::attestation::quote::{Measurement, TD_ATTRIBUTES_DEBUG};

/// A PCK certificate's platform flag: set, not set, or absent (Processor CA certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagState {
    True,
    False,
    Undefined,
}

impl FlagState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "true",
            Self::False => "false",
            Self::Undefined => "undefined",
        }
    }
}

impl From<PckCertFlag> for FlagState {
    fn from(flag: PckCertFlag) -> Self {
        match flag {
            PckCertFlag::True => Self::True,
            PckCertFlag::False => Self::False,
            PckCertFlag::Undefined => Self::Undefined,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformFlags {
    pub dynamic_platform: FlagState,
    pub cached_keys: FlagState,
    pub smt_enabled: FlagState,
}

impl PlatformFlags {
    pub fn get(&self, flag: PlatformFlag) -> FlagState {
        match flag {
            PlatformFlag::DynamicPlatform => self.dynamic_platform,
            PlatformFlag::CachedKeys => self.cached_keys,
            PlatformFlag::Smt => self.smt_enabled,
        }
    }
}

/// What a TD's report says (hex in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TdFacts {
    #[serde(with = "hex::serde")]
    pub td_attributes: [u8; 8],
    pub debug: bool,
    #[serde(with = "hex::serde")]
    pub xfam: [u8; 8],
    #[serde(with = "hex::serde")]
    pub mr_seam: Measurement,
    #[serde(with = "hex::serde")]
    pub tee_tcb_svn: [u8; 16],
    #[serde(with = "hex::serde")]
    pub mr_td: Measurement,
    #[serde(with = "hex::serde")]
    pub mr_config_id: Measurement,
    #[serde(with = "hex::serde")]
    pub mr_owner: Measurement,
    #[serde(with = "hex::serde")]
    pub mr_owner_config: Measurement,
    #[serde(with = "hex::serde")]
    pub rtmr0: Measurement,
    #[serde(with = "hex::serde")]
    pub rtmr1: Measurement,
    #[serde(with = "hex::serde")]
    pub rtmr2: Measurement,
    #[serde(with = "hex::serde")]
    pub rtmr3: Measurement,
    #[serde(with = "hex::serde")]
    pub report_data: [u8; 64],
}

impl TdFacts {
    fn of(report: &dcap_qvl::quote::TDReport10) -> Self {
        Self {
            td_attributes: report.td_attributes,
            debug: report.td_attributes[0] & TD_ATTRIBUTES_DEBUG != 0,
            xfam: report.xfam,
            mr_seam: report.mr_seam,
            tee_tcb_svn: report.tee_tcb_svn,
            mr_td: report.mr_td,
            mr_config_id: report.mr_config_id,
            mr_owner: report.mr_owner,
            mr_owner_config: report.mr_owner_config,
            rtmr0: report.rt_mr0,
            rtmr1: report.rt_mr1,
            rtmr2: report.rt_mr2,
            rtmr3: report.rt_mr3,
            report_data: report.report_data,
        }
    }

    /// All registers zero, attributes SEPT_VE_DISABLE only (tests of the policy functions).
    pub fn zeroed() -> Self {
        Self {
            td_attributes: [0, 0, 0, 0x10, 0, 0, 0, 0],
            debug: false,
            xfam: [0; 8],
            mr_seam: [0; 48],
            tee_tcb_svn: [0; 16],
            mr_td: [0; 48],
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
            rtmr0: [0; 48],
            rtmr1: [0; 48],
            rtmr2: [0; 48],
            rtmr3: [0; 48],
            report_data: [0; 64],
        }
    }

    pub fn registers(&self) -> TdRegisters {
        TdRegisters {
            mr_td: self.mr_td,
            rtmr: [self.rtmr0, self.rtmr1, self.rtmr2, self.rtmr3],
            mr_config_id: self.mr_config_id,
            mr_owner: self.mr_owner,
            mr_owner_config: self.mr_owner_config,
        }
    }
}

/// What a verified quote says: the claims dcap-qvl establishes, in the form this project prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteFacts {
    pub quote_version: u16,
    /// `tdx` or `sgx`.
    pub tee: &'static str,
    /// `TD10`, `TD15`, `TD15Ex` or `SGX`.
    pub report_type: &'static str,
    /// The converged status (platform, TDX module and QE).
    pub tcb_status: TcbStatus,
    /// Intel advisories of the platform, TDX module and QE TCB levels.
    pub advisory_ids: Vec<String>,
    pub platform_tcb_status: TcbStatus,
    pub platform_tcb_date: String,
    pub qe_tcb_status: TcbStatus,
    pub tcb_evaluation_data_number: u32,
    /// The platform model (uppercase hex), which the TCB Info is for.
    pub fmspc: String,
    /// `platform` or `processor`: which PCK CA issued the PCK certificate.
    pub pck_ca: &'static str,
    pub platform_flags: PlatformFlags,
    /// `None` for an SGX quote.
    pub td: Option<TdFacts>,
}

impl QuoteFacts {
    fn of(claims: &QuoteClaims, pck_ca: &'static str) -> Self {
        let (report_type, td) = match &claims.report {
            Report::SgxEnclave(_) => ("SGX", None),
            Report::TD10(r) => ("TD10", Some(TdFacts::of(r))),
            Report::TD15(r) => ("TD15", Some(TdFacts::of(&r.base))),
            Report::TD15Ex(r) => ("TD15Ex", Some(TdFacts::of(&r.base.base))),
        };
        let pck = &claims.platform.pck;
        Self {
            quote_version: claims.header.version,
            tee: if claims.header.is_sgx() { "sgx" } else { "tdx" },
            report_type,
            tcb_status: claims.tcb.status,
            advisory_ids: claims.tcb.advisory_ids.clone(),
            platform_tcb_status: claims.platform.tcb_level.tcb_status,
            platform_tcb_date: claims.platform.tcb_level.tcb_date.clone(),
            qe_tcb_status: claims.qe.tcb_level.tcb_status,
            tcb_evaluation_data_number: claims.tcb.eval_data_number,
            fmspc: hex::encode_upper(pck.fmspc),
            pck_ca,
            platform_flags: PlatformFlags {
                dynamic_platform: pck.dynamic_platform.into(),
                cached_keys: pck.cached_keys.into(),
                smt_enabled: pck.smt_enabled.into(),
            },
            td,
        }
    }
}

/// A quote whose signatures and collateral verified, with what the policy made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub facts: QuoteFacts,
    /// The collateral's validity, as dcap-qvl computed it over the parts it verified.
    pub collateral: Window,
    /// The time asked for.
    pub at: u64,
    /// The time the collateral was checked at: `at`, or the moment the collateral expired when
    /// a grace applied.
    pub verified_at: u64,
    /// How long the collateral had expired before `at`, when a grace let it pass.
    pub grace_used: Option<u64>,
    /// True when the collateral's own PCK chain was set aside because the quote carries one.
    pub collateral_pck_chain_ignored: bool,
    /// Empty when the policy accepts the quote.
    pub refusals: Vec<Refusal>,
}

impl Verified {
    pub fn accepted(&self) -> bool {
        self.refusals.is_empty()
    }
}

/// Why a quote could not be verified at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not a DCAP quote.
    Unreadable(String),
    /// The collateral expired before the verification time (beyond the grace, if any).
    CollateralExpired {
        window: Window,
        at: u64,
        grace: Duration,
    },
    /// A signature, certificate, CRL, identity or TCB check failed.
    Invalid(String),
}

impl std::error::Error for Rejected {}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "the quote is not a DCAP quote: {e}"),
            Self::Invalid(e) => write!(f, "the quote does not verify: {e}"),
            Self::CollateralExpired { window, at, grace } => {
                write!(
                    f,
                    "the collateral expired at {} ({} first), {} before the verification time {}: \
                     fetch fresh collateral (enclave attestation collateral fetch)",
                    collateral::rfc3339(window.valid_until),
                    window.valid_until_part,
                    humantime::format_duration(Duration::from_secs(
                        at.saturating_sub(window.valid_until)
                    )),
                    collateral::rfc3339(*at),
                )?;
                if grace.is_zero() {
                    f.write_str(" or allow a grace (--collateral-grace)")
                } else {
                    write!(
                        f,
                        "; the grace of {} is shorter",
                        humantime::format_duration(*grace)
                    )
                }
            }
        }
    }
}

/// Verifies `raw_quote` with `collateral` as of `at` (Unix seconds) and applies `policy`.
pub fn verify_quote(
    raw_quote: &[u8],
    collateral: &QuoteCollateralV3,
    at: u64,
    policy: &QuotePolicy,
) -> Result<Verified, Rejected> {
    let quote = Quote::parse(raw_quote).map_err(|e| Rejected::Unreadable(format!("{e:#}")))?;
    let quote_chain = collateral::quote_pck_chain(&quote);
    // The quote's own chain is verified to Intel's root like the collateral's would be; using
    // it lets one collateral file serve every machine of the same platform model.
    let ignore_collateral_chain =
        quote_chain.is_some() && collateral.pck_certificate_chain.is_some();
    let collateral = if ignore_collateral_chain {
        collateral::shareable(collateral)
    } else {
        collateral.clone()
    };
    let mut verified_at = at;
    let mut grace_used = None;
    // A collateral too broken for its dates is left to dcap-qvl, whose error names the part.
    let window = collateral::window(&quote, &collateral).ok();
    if let Some(window) = window {
        if at > window.valid_until {
            let late = at - window.valid_until;
            if late > policy.collateral_grace.as_secs() {
                return Err(Rejected::CollateralExpired {
                    window,
                    at,
                    grace: policy.collateral_grace,
                });
            }
            verified_at = window.valid_until;
            grace_used = Some(late);
        }
    }
    let claims = QuoteVerifier::new_prod()
        .verify_with_policy(
            raw_quote,
            &collateral,
            verified_at,
            &ClaimsOnly::claims_only(verified_at),
        )
        .map_err(|e| Rejected::Invalid(format!("{e:#}")))?;
    let collateral_chain = collateral
        .pck_certificate_chain
        .as_deref()
        .and_then(|pem| collateral::pem_certificates("PCK certificate chain", pem).ok());
    let pck_ca = quote_chain
        .or(collateral_chain)
        .as_ref()
        .and_then(|chain| chain.first())
        .and_then(|leaf| dcap_qvl::intel::pck_ca(leaf).ok())
        .map(|ca| ca.as_id_str())
        .unwrap_or("unknown");
    let facts = QuoteFacts::of(&claims, pck_ca);
    let refusals = evaluate(&facts, policy);
    Ok(Verified {
        // Ours names the parts; dcap-qvl's is the fallback when ours could not be computed.
        collateral: window.unwrap_or(Window {
            valid_from: claims.latest_issue_date,
            valid_from_part: "collateral",
            valid_until: claims.earliest_expiration_date,
            valid_until_part: "collateral",
        }),
        facts,
        at,
        verified_at,
        grace_used,
        collateral_pck_chain_ignored: ignore_collateral_chain,
        refusals,
    })
}
