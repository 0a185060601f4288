//! The one quote verifier every command uses: a pure function of the quote's bytes, the
//! collateral, the verification time and the policy. No clock, no files, no network.
//!
//! dcap-qvl checks the signatures (quote by the attestation key, QE report by the PCK key, PCK
//! chain to Intel's SGX root with both CRLs, TCB Info and QE Identity by Intel's TCB signing
//! key), the collateral's dates at the given time, the QE identity, the TCB level (status and
//! advisories; `Revoked` fails) and the TD attributes (debug, migratable, SEPT_VE_DISABLE, …).
//! What it leaves to its caller, [`super::policy::evaluate`] decides.

use std::time::Duration;

use dcap_qvl::quote::Quote;
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::{QuoteCollateralV3, QuotePolicy as ClaimsOnly};
use serde::Serialize;

use super::collateral::{self, Window};
pub use super::facts::{FlagState, PlatformFlags, QuoteFacts, TdFacts};
use super::policy::{evaluate, QuotePolicy, Refusal};

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
