//! Intel's collateral for one quote, as a file: the JSON form of dcap-qvl's
//! `QuoteCollateralV3` (byte fields as hex strings, certificate chains as PEM, TCB Info and QE
//! Identity as the exact JSON text Intel signed), the form of the crate's `sample/*_collateral.json`.
//!
//! Its parts expire: TCB Info, QE Identity and the PCK CRL 30 days after Intel issues them, the
//! root CA CRL after about a year, certificates after years. [`window`] finds the earliest
//! expiry (and the latest issue) across all of them, so that a verifier can say "expired on …"
//! instead of a bare "CRL expired", and apply a grace when asked.

use std::time::{Duration, UNIX_EPOCH};

use dcap_qvl::quote::Quote;
use dcap_qvl::QuoteCollateralV3;
use serde::Serialize;
use x509_parser::prelude::FromDer as _;

/// The samples are 16-25 KiB; a processor-CA CRL can grow, but not to this.
pub const MAX_COLLATERAL_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CollateralError {
    #[error("the collateral file is {0} bytes, more than {MAX_COLLATERAL_BYTES}")]
    TooLarge(usize),
    #[error("the collateral is not dcap-qvl's QuoteCollateralV3 JSON: {0}")]
    Json(String),
    #[error("the collateral's {what} is unreadable: {reason}")]
    Part { what: &'static str, reason: String },
}

/// Reads a collateral file's bytes.
pub fn parse(bytes: &[u8]) -> Result<QuoteCollateralV3, CollateralError> {
    if bytes.len() > MAX_COLLATERAL_BYTES {
        return Err(CollateralError::TooLarge(bytes.len()));
    }
    // serde rejects duplicate members of a struct, so two readers cannot see two collaterals.
    serde_json::from_slice(bytes).map_err(|e| CollateralError::Json(e.to_string()))
}

/// The file's bytes (pretty JSON, the samples' layout).
pub fn to_json(collateral: &QuoteCollateralV3) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(collateral).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The collateral without a PCK certificate chain: what every machine with the same FMSPC and
/// PCK CA can share. A chain in the collateral is preferred over the quote's own by dcap-qvl,
/// so machine A's chain would make machine B's quotes fail.
pub fn shareable(collateral: &QuoteCollateralV3) -> QuoteCollateralV3 {
    QuoteCollateralV3 {
        pck_certificate_chain: None,
        ..collateral.clone()
    }
}

/// When the collateral, with the quote's PCK chain, verifies: from the last issue date of its
/// parts (TCB Info, QE Identity, certificates) to the last second at which every part is still
/// valid, Unix seconds, both inclusive. (A CRL's thisUpdate does not count: dcap-qvl does not
/// hold it against the verification time.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub valid_from: u64,
    /// The part issued last.
    pub valid_from_part: &'static str,
    pub valid_until: u64,
    /// The part that expires first.
    pub valid_until_part: &'static str,
}

impl Window {
    fn empty() -> Self {
        Self {
            valid_from: 0,
            valid_from_part: "nothing",
            valid_until: u64::MAX,
            valid_until_part: "nothing",
        }
    }

    fn add(&mut self, what: &'static str, issued: Option<u64>, last_valid: Option<u64>) {
        if let Some(issued) = issued.filter(|i| *i > self.valid_from) {
            self.valid_from = issued;
            self.valid_from_part = what;
        }
        if let Some(last) = last_valid.filter(|l| *l < self.valid_until) {
            self.valid_until = last;
            self.valid_until_part = what;
        }
    }
}

fn part(what: &'static str, reason: impl ToString) -> CollateralError {
    CollateralError::Part {
        what,
        reason: reason.to_string(),
    }
}

fn rfc3339_secs(what: &'static str, text: &str) -> Result<u64, CollateralError> {
    humantime::parse_rfc3339(text)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| part(what, format!("date {text:?} is not RFC 3339")))
}

/// `issueDate`/`nextUpdate` of a signed TCB Info or QE Identity text.
fn json_dates(what: &'static str, text: &str) -> Result<(u64, u64), CollateralError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Dates {
        issue_date: String,
        next_update: String,
    }
    let dates: Dates = serde_json::from_str(text).map_err(|e| part(what, e))?;
    Ok((
        rfc3339_secs(what, &dates.issue_date)?,
        rfc3339_secs(what, &dates.next_update)?,
    ))
}

/// The last second a CRL is valid.
fn crl_last_valid(what: &'static str, der: &[u8]) -> Result<Option<u64>, CollateralError> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| part(what, e))?;
    let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
    // webpki treats a CRL as expired from its nextUpdate on (TCB Info and QE Identity stay
    // valid through their nextUpdate, certificates through notAfter): its last second is one
    // earlier.
    Ok(crl.next_update().map(|t| secs(t).saturating_sub(1)))
}

/// Every certificate of a PEM chain, DER.
pub fn pem_certificates(what: &'static str, pem: &str) -> Result<Vec<Vec<u8>>, CollateralError> {
    let mut out = Vec::new();
    for item in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let item = item.map_err(|e| part(what, e))?;
        if item.label == "CERTIFICATE" {
            out.push(item.contents);
        }
    }
    if out.is_empty() {
        return Err(part(what, "no PEM certificate in it"));
    }
    Ok(out)
}

fn add_certificates(
    window: &mut Window,
    what: &'static str,
    certificates: &[Vec<u8>],
) -> Result<(), CollateralError> {
    for der in certificates {
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| part(what, e))?;
        let validity = cert.validity();
        let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
        window.add(
            what,
            Some(secs(validity.not_before)),
            Some(secs(validity.not_after)),
        );
    }
    Ok(())
}

/// The PCK certificate chain the quote carries (certification data type 5, directly or inside
/// type 6), DER, leaf first; `None` when it carries none.
pub fn quote_pck_chain(quote: &Quote) -> Option<Vec<Vec<u8>>> {
    let pem = quote.raw_cert_chain().ok()?;
    pem_certificates("PCK certificate chain", &String::from_utf8_lossy(pem)).ok()
}

/// The validity window of `collateral` used with `quote`: the eight sources dcap-qvl counts
/// (TCB Info, QE Identity, both CRLs, the PCK chain, the three issuer chains).
pub fn window(quote: &Quote, collateral: &QuoteCollateralV3) -> Result<Window, CollateralError> {
    let mut w = Window::empty();
    let (issued, expires) = json_dates("TCB Info", &collateral.tcb_info)?;
    w.add("TCB Info", Some(issued), Some(expires));
    let (issued, expires) = json_dates("QE Identity", &collateral.qe_identity)?;
    w.add("QE Identity", Some(issued), Some(expires));
    w.add(
        "root CA CRL",
        None,
        crl_last_valid("root CA CRL", &collateral.root_ca_crl)?,
    );
    w.add(
        "PCK CRL",
        None,
        crl_last_valid("PCK CRL", &collateral.pck_crl)?,
    );
    for (what, pem) in [
        (
            "TCB Info issuer chain",
            collateral.tcb_info_issuer_chain.as_str(),
        ),
        (
            "QE Identity issuer chain",
            collateral.qe_identity_issuer_chain.as_str(),
        ),
        (
            "PCK CRL issuer chain",
            collateral.pck_crl_issuer_chain.as_str(),
        ),
    ] {
        add_certificates(&mut w, what, &pem_certificates(what, pem)?)?;
    }
    let pck = match &collateral.pck_certificate_chain {
        Some(pem) => pem_certificates("PCK certificate chain", pem)?,
        None => quote_pck_chain(quote).unwrap_or_default(),
    };
    add_certificates(&mut w, "PCK certificate chain", &pck)?;
    Ok(w)
}

/// Unix seconds as RFC 3339 (UTC, seconds).
pub fn rfc3339(secs: u64) -> String {
    let secs = secs.min(crate::attestation::order_certificate::MAX_RFC3339_SECS);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLLATERAL: &[u8] =
        include_bytes!("../../../tests/fixtures/dcap/tdx_quote_collateral.json");
    const QUOTE: &[u8] = include_bytes!("../../../tests/fixtures/dcap/tdx_quote");

    #[test]
    fn the_sample_collateral_round_trips_through_its_file_form() {
        let collateral = parse(COLLATERAL).expect("parses");
        assert_eq!(parse(&to_json(&collateral)).expect("parses"), collateral);
        assert_eq!(collateral.tcb_info_signature.len(), 64);
    }

    #[test]
    fn the_window_runs_from_the_latest_issue_to_the_earliest_expiry() {
        let collateral = parse(COLLATERAL).expect("parses");
        let quote = Quote::parse(QUOTE).expect("quote");
        let w = window(&quote, &collateral).expect("window");
        // QE Identity issued 2025-06-19T10:32:27Z; the PCK CRL's nextUpdate comes first
        // (2025-07-19T10:00:35Z, so its last valid second is one earlier).
        assert_eq!(w.valid_from, 1_750_329_147);
        assert_eq!(w.valid_from_part, "QE Identity");
        assert_eq!(w.valid_until, 1_752_919_234);
        assert_eq!(w.valid_until_part, "PCK CRL");
        assert_eq!(rfc3339(w.valid_until), "2025-07-19T10:00:34Z");
    }

    #[test]
    fn a_shareable_bundle_has_no_pck_chain() {
        let mut collateral = parse(COLLATERAL).expect("parses");
        collateral.pck_certificate_chain = Some("-----BEGIN CERTIFICATE-----".into());
        assert_eq!(shareable(&collateral).pck_certificate_chain, None);
        assert!(!String::from_utf8_lossy(&to_json(&shareable(&collateral)))
            .contains("pck_certificate_chain"));
    }

    #[test]
    fn broken_files_are_named() {
        assert!(matches!(parse(b"{}"), Err(CollateralError::Json(_))));
        assert!(matches!(
            parse(&vec![b' '; MAX_COLLATERAL_BYTES + 1]),
            Err(CollateralError::TooLarge(_))
        ));
        let mut collateral = parse(COLLATERAL).expect("parses");
        collateral.pck_crl.truncate(10);
        let quote = Quote::parse(QUOTE).expect("quote");
        assert!(matches!(
            window(&quote, &collateral),
            Err(CollateralError::Part {
                what: "PCK CRL",
                ..
            })
        ));
    }
}
