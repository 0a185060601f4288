//! Fetching the collateral of a quote from a PCCS or Intel's PCS, with the project's own HTTP
//! client (reqwest 0.12, rustls with ring; dcap-qvl's own client would bring reqwest 0.13 and
//! aws-lc beside ring). The four GETs of the PCS v4 API (Intel SGX and TDX DCAP PCS API):
//!
//! | item | GET | body | issuer chain header |
//! |---|---|---|---|
//! | PCK CRL | `/sgx/certification/v4/pckcrl?ca={platform,processor}&encoding=der` | DER | `SGX-PCK-CRL-Issuer-Chain` |
//! | TCB Info | `/{tdx,sgx}/certification/v4/tcb?fmspc=HEX&update=standard` | `{"tcbInfo":…,"signature":"hex"}` | `TCB-Info-Issuer-Chain` (or `SGX-TCB-Info-Issuer-Chain`) |
//! | QE Identity | `/{tdx,sgx}/certification/v4/qe/identity?update=standard` | `{"enclaveIdentity":…,"signature":"hex"}` | `SGX-Enclave-Identity-Issuer-Chain` |
//! | root CA CRL | PCCS: `/sgx/certification/v4/rootcacrl` (hex text); else the root certificate's CRL distribution point (DER) | | |
//!
//! Headers carry URL-encoded PEM. TCB Info and QE Identity are kept as the exact bytes of their
//! member in the response, which is what Intel signed. The PCK certificate chain comes from the
//! quote (certification data type 5, what TDX quotes from configfs-tsm carry), so no PCK
//! certificate is requested, and the result has no `pck_certificate_chain`: one file serves
//! every machine with the same FMSPC and PCK CA.
//!
//! Everything here but [`fetch`] is a plain function over URLs and responses.

use std::time::Duration;

use dcap_qvl::quote::Quote;
use dcap_qvl::QuoteCollateralV3;
use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;
use x509_parser::prelude::FromDer as _;

use super::collateral;

/// Intel's Provisioning Certification Service.
pub const INTEL_PCS_URL: &str = "https://api.trustedservices.intel.com";
/// The largest response accepted (the biggest real one, a processor CA's CRL, is tens of KiB).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the quote is not a DCAP quote: {0}")]
    Quote(String),
    #[error(
        "the quote carries no PCK certificate chain (certification data type {0}); this tool \
         fetches collateral for quotes that carry it (type 5, as TDX quotes from configfs-tsm do)"
    )]
    NoPckChain(u16),
    #[error("the quote's PCK certificate is unreadable: {0}")]
    Pck(String),
    #[error("the PCCS URL must be an http or https URL with a host")]
    Url,
    #[error("GET {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: {what}")]
    Response { url: String, what: String },
}

/// What collateral a quote needs: its platform model and PCK CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Uppercase hex, as the PCS API takes it.
    pub fmspc: String,
    /// `platform` or `processor`.
    pub ca: &'static str,
    /// `tdx` or `sgx`: which TCB Info and QE Identity.
    pub tee: &'static str,
}

/// Reads the target from a quote's own PCK certificate.
pub fn target_of(raw_quote: &[u8]) -> Result<Target, FetchError> {
    let quote = Quote::parse(raw_quote).map_err(|e| FetchError::Quote(format!("{e:#}")))?;
    let chain = collateral::quote_pck_chain(&quote)
        .ok_or_else(|| FetchError::NoPckChain(quote.inner_cert_type()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| FetchError::Pck("empty chain".into()))?;
    let extension = dcap_qvl::intel::parse_pck_extension(leaf)
        .map_err(|e| FetchError::Pck(format!("{e:#}")))?;
    let ca = dcap_qvl::intel::pck_ca(leaf).map_err(|e| FetchError::Pck(format!("{e:#}")))?;
    Ok(Target {
        fmspc: hex::encode_upper(extension.fmspc),
        ca: ca.as_id_str(),
        tee: if quote.header.is_sgx() { "sgx" } else { "tdx" },
    })
}

/// The URLs of one PCCS or PCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Without a trailing `/` or `/{sgx,tdx}/certification/v4`.
    base: String,
}

impl Endpoints {
    pub fn new(url: &Url) -> Result<Self, FetchError> {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(FetchError::Url);
        }
        let mut base = url.as_str().trim_end_matches('/').to_owned();
        for suffix in ["/sgx/certification/v4", "/tdx/certification/v4"] {
            if let Some(stripped) = base.strip_suffix(suffix) {
                base = stripped.to_owned();
            }
        }
        Ok(Self { base })
    }

    /// Intel's PCS has no root CA CRL endpoint; a PCCS has.
    pub fn is_intel_pcs(&self) -> bool {
        self.base.starts_with(INTEL_PCS_URL)
    }

    fn url(&self, tee: &str, path: &str) -> String {
        format!("{}/{tee}/certification/v4/{path}", self.base)
    }

    pub fn pck_crl(&self, target: &Target) -> String {
        self.url("sgx", &format!("pckcrl?ca={}&encoding=der", target.ca))
    }

    pub fn tcb_info(&self, target: &Target) -> String {
        self.url(
            target.tee,
            &format!("tcb?fmspc={}&update=standard", target.fmspc),
        )
    }

    pub fn qe_identity(&self, target: &Target) -> String {
        self.url(target.tee, "qe/identity?update=standard")
    }

    pub fn root_ca_crl(&self) -> String {
        self.url("sgx", "rootcacrl")
    }
}

/// One HTTP response, as far as collateral needs it.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub url: String,
    pub status: u16,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn bad(&self, what: impl Into<String>) -> FetchError {
        FetchError::Response {
            url: self.url.clone(),
            what: what.into(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The PEM chain of the first of `names` present, URL-decoded.
    pub fn issuer_chain(&self, names: &[&str]) -> Result<String, FetchError> {
        let value = names
            .iter()
            .find_map(|n| self.header(n))
            .ok_or_else(|| self.bad(format!("no {} header", names.join(" or "))))?;
        let pem = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| self.bad(format!("the {} header is not URL-encoded UTF-8", names[0])))?
            .into_owned();
        collateral::pem_certificates("issuer chain", &pem)
            .map_err(|e| self.bad(format!("the {} header: {e}", names[0])))?;
        Ok(pem)
    }

    /// A signed JSON document: the exact text of `member` and the signature's bytes.
    pub fn signed_json(&self, member: &str) -> Result<(String, Vec<u8>), FetchError> {
        #[derive(Deserialize)]
        struct Signed<'a> {
            #[serde(rename = "tcbInfo", borrow, default)]
            tcb_info: Option<&'a RawValue>,
            #[serde(rename = "enclaveIdentity", borrow, default)]
            enclave_identity: Option<&'a RawValue>,
            signature: String,
        }
        let text = std::str::from_utf8(&self.body).map_err(|_| self.bad("body is not UTF-8"))?;
        let signed: Signed<'_> = serde_json::from_str(text).map_err(|e| {
            self.bad(format!(
                "body is not {{\"{member}\":…,\"signature\":…}}: {e}"
            ))
        })?;
        let raw = match member {
            "tcbInfo" => signed.tcb_info,
            _ => signed.enclave_identity,
        }
        .ok_or_else(|| self.bad(format!("body has no {member}")))?;
        let signature = hex::decode(&signed.signature)
            .ok()
            .filter(|s| s.len() == 64)
            .ok_or_else(|| self.bad("signature is not 64 bytes of hex (ECDSA P-256 r||s)"))?;
        Ok((raw.get().to_owned(), signature))
    }

    /// A CRL body: DER, or hex text of DER (what a PCCS's rootcacrl answers).
    pub fn crl(&self) -> Result<Vec<u8>, FetchError> {
        let trimmed = self.body.trim_ascii();
        let der = if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_hexdigit) {
            hex::decode(trimmed).map_err(|_| self.bad("odd-length hex CRL"))?
        } else {
            self.body.clone()
        };
        x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
            .map_err(|e| self.bad(format!("body is not a CRL: {e}")))?;
        Ok(der)
    }
}

/// The first CRL distribution point URL of a certificate (Intel's root points at its CRL).
pub fn crl_distribution_point(cert_der: &[u8]) -> Option<String> {
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).ok()?;
    cert.extensions().iter().find_map(|ext| {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            return None;
        };
        points
            .points
            .iter()
            .find_map(|p| match &p.distribution_point {
                Some(DistributionPointName::FullName(names)) => {
                    names.iter().find_map(|n| match n {
                        GeneralName::URI(uri) => Some((*uri).to_owned()),
                        _ => None,
                    })
                }
                _ => None,
            })
    })
}

/// Puts the parts together, after checking that the TCB Info is for the target.
pub fn assemble(
    target: &Target,
    pck_crl: &Response,
    tcb_info: &Response,
    qe_identity: &Response,
    root_ca_crl: Vec<u8>,
) -> Result<QuoteCollateralV3, FetchError> {
    let (tcb_text, tcb_signature) = tcb_info.signed_json("tcbInfo")?;
    #[derive(Deserialize)]
    struct Model {
        id: Option<String>,
        fmspc: String,
    }
    let model: Model = serde_json::from_str(&tcb_text)
        .map_err(|e| tcb_info.bad(format!("tcbInfo has no fmspc: {e}")))?;
    if !model.fmspc.eq_ignore_ascii_case(&target.fmspc) {
        return Err(tcb_info.bad(format!(
            "the TCB Info is for FMSPC {}, the quote's is {}",
            bounded(&model.fmspc),
            target.fmspc
        )));
    }
    let expected_id = if target.tee == "tdx" { "TDX" } else { "SGX" };
    if model.id.as_deref().is_some_and(|id| id != expected_id) {
        return Err(tcb_info.bad(format!("the TCB Info is not {expected_id}'s")));
    }
    let (qe_text, qe_signature) = qe_identity.signed_json("enclaveIdentity")?;
    Ok(QuoteCollateralV3 {
        pck_crl_issuer_chain: pck_crl.issuer_chain(&["SGX-PCK-CRL-Issuer-Chain"])?,
        root_ca_crl,
        pck_crl: pck_crl.crl()?,
        tcb_info_issuer_chain: tcb_info
            .issuer_chain(&["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"])?,
        tcb_info: tcb_text,
        tcb_info_signature: tcb_signature,
        qe_identity_issuer_chain: qe_identity
            .issuer_chain(&["SGX-Enclave-Identity-Issuer-Chain"])?,
        qe_identity: qe_text,
        qe_identity_signature: qe_signature,
        pck_certificate_chain: None,
    })
}

fn bounded(text: &str) -> String {
    text.chars().take(32).collect()
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Response, FetchError> {
    let http = |e: reqwest::Error| FetchError::Http {
        url: url.to_owned(),
        reason: e.without_url().to_string(),
    };
    let mut response = client.get(url).send().await.map_err(http)?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_owned(),
            status,
        });
    }
    let headers = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(FetchError::Response {
                url: url.to_owned(),
                what: format!("body larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        url: url.to_owned(),
        status,
        headers,
        body,
    })
}

/// The HTTP client for a PCCS: `timeout` per request, and `extra_root` (PEM) trusted besides
/// the web PKI roots, for a PCCS with its own certificate authority. What it fetches is signed
/// by Intel, so TLS protects only its availability, not its integrity.
pub fn client(timeout: Duration, extra_root: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("enclave/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = extra_root {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("the CA file is not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err("the CA file has no PEM certificate".into());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// Fetches the collateral `raw_quote` needs from the PCCS or PCS at `base`.
pub async fn fetch(
    client: &reqwest::Client,
    base: &Url,
    raw_quote: &[u8],
) -> Result<(Target, QuoteCollateralV3), FetchError> {
    let target = target_of(raw_quote)?;
    let endpoints = Endpoints::new(base)?;
    let pck_crl = get(client, &endpoints.pck_crl(&target)).await?;
    let tcb_info = get(client, &endpoints.tcb_info(&target)).await?;
    let qe_identity = get(client, &endpoints.qe_identity(&target)).await?;
    let root_ca_crl = root_ca_crl(client, &endpoints, &qe_identity).await?;
    let collateral = assemble(&target, &pck_crl, &tcb_info, &qe_identity, root_ca_crl)?;
    Ok((target, collateral))
}

/// A PCCS serves the root CA CRL itself; Intel's PCS (or a PCCS without the endpoint) leaves it
/// to the root certificate's distribution point.
async fn root_ca_crl(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    qe_identity: &Response,
) -> Result<Vec<u8>, FetchError> {
    let from_pccs = if endpoints.is_intel_pcs() {
        None
    } else {
        match get(client, &endpoints.root_ca_crl()).await {
            Ok(response) => Some(response.crl()?),
            Err(FetchError::Status { status: 404, .. }) => None,
            Err(e) => return Err(e),
        }
    };
    if let Some(crl) = from_pccs {
        return Ok(crl);
    }
    let chain = qe_identity.issuer_chain(&["SGX-Enclave-Identity-Issuer-Chain"])?;
    let certs = collateral::pem_certificates("QE Identity issuer chain", &chain)
        .map_err(|e| qe_identity.bad(e.to_string()))?;
    let url = certs
        .last()
        .and_then(|root| crl_distribution_point(root))
        .ok_or_else(|| qe_identity.bad("the root certificate names no CRL distribution point"))?;
    get(client, &url).await?.crl()
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTE: &[u8] = include_bytes!("../../../tests/fixtures/dcap/tdx_quote");
    const SGX_QUOTE: &[u8] = include_bytes!("../../../tests/fixtures/dcap/sgx_quote");
    const COLLATERAL: &[u8] =
        include_bytes!("../../../tests/fixtures/dcap/tdx_quote_collateral.json");

    fn target() -> Target {
        target_of(QUOTE).expect("target")
    }

    #[test]
    fn the_target_is_read_from_the_quotes_pck_certificate() {
        assert_eq!(
            target(),
            Target {
                fmspc: "B0C06F000000".into(),
                ca: "platform",
                tee: "tdx"
            }
        );
        assert_eq!(target_of(SGX_QUOTE).expect("target").tee, "sgx");
        assert!(matches!(target_of(b"nope"), Err(FetchError::Quote(_))));
    }

    #[test]
    fn urls_follow_the_pcs_v4_api_whatever_the_base_looks_like() {
        for base in [
            "https://pccs.example:8081",
            "https://pccs.example:8081/",
            "https://pccs.example:8081/sgx/certification/v4",
            "https://pccs.example:8081/tdx/certification/v4/",
        ] {
            let e = Endpoints::new(&Url::parse(base).expect("url")).expect("endpoints");
            assert_eq!(
                e.pck_crl(&target()),
                "https://pccs.example:8081/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
            );
            assert_eq!(
                e.tcb_info(&target()),
                "https://pccs.example:8081/tdx/certification/v4/tcb?fmspc=B0C06F000000&update=standard"
            );
            assert_eq!(
                e.qe_identity(&target()),
                "https://pccs.example:8081/tdx/certification/v4/qe/identity?update=standard"
            );
            assert_eq!(
                e.root_ca_crl(),
                "https://pccs.example:8081/sgx/certification/v4/rootcacrl"
            );
            assert!(!e.is_intel_pcs());
        }
        let pcs = Endpoints::new(&Url::parse(INTEL_PCS_URL).expect("url")).expect("endpoints");
        assert!(pcs.is_intel_pcs());
        assert!(Endpoints::new(&Url::parse("ftp://x/").expect("url")).is_err());
    }

    #[test]
    fn the_root_ca_crl_distribution_point_is_read_from_intels_root() {
        let c = collateral::parse(COLLATERAL).expect("collateral");
        let chain =
            collateral::pem_certificates("chain", &c.qe_identity_issuer_chain).expect("pem");
        assert_eq!(
            crl_distribution_point(chain.last().expect("root")).as_deref(),
            Some("https://certificates.trustedservices.intel.com/IntelSGXRootCA.der")
        );
    }

    #[test]
    fn responses_are_checked_part_by_part() {
        let c = collateral::parse(COLLATERAL).expect("collateral");
        let response = |headers: Vec<(&str, String)>, body: Vec<u8>| Response {
            url: "u".into(),
            status: 200,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect(),
            body,
        };
        let encode = |pem: &str| {
            percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        let pck_crl = response(
            vec![("sgx-pck-crl-issuer-chain", encode(&c.pck_crl_issuer_chain))],
            c.pck_crl.clone(),
        );
        let tcb = response(
            vec![("TCB-Info-Issuer-Chain", encode(&c.tcb_info_issuer_chain))],
            format!(
                "{{\"tcbInfo\":{},\"signature\":\"{}\"}}",
                c.tcb_info,
                hex::encode(&c.tcb_info_signature)
            )
            .into_bytes(),
        );
        let qe = response(
            vec![(
                "SGX-Enclave-Identity-Issuer-Chain",
                encode(&c.qe_identity_issuer_chain),
            )],
            format!(
                "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
                c.qe_identity,
                hex::encode(&c.qe_identity_signature)
            )
            .into_bytes(),
        );
        let root = response(vec![], hex::encode(&c.root_ca_crl).into_bytes())
            .crl()
            .expect("hex CRL");
        assert_eq!(root, c.root_ca_crl);
        let assembled = assemble(&target(), &pck_crl, &tcb, &qe, root.clone()).expect("assembled");
        assert_eq!(assembled, collateral::shareable(&c));

        // Another platform model's TCB Info is refused.
        let other = Target {
            fmspc: "90C06F000000".into(),
            ..target()
        };
        let e = assemble(&other, &pck_crl, &tcb, &qe, root.clone()).expect_err("refused");
        assert!(e.to_string().contains("is for FMSPC B0C06F000000"), "{e}");
        // A missing header, a bad signature, a body that is no CRL.
        let mut no_header = pck_crl.clone();
        no_header.headers.clear();
        assert!(assemble(&target(), &no_header, &tcb, &qe, root.clone())
            .expect_err("no header")
            .to_string()
            .contains("no SGX-PCK-CRL-Issuer-Chain header"));
        let mut short = tcb.clone();
        short.body = format!("{{\"tcbInfo\":{},\"signature\":\"abcd\"}}", c.tcb_info).into_bytes();
        assert!(assemble(&target(), &pck_crl, &short, &qe, root.clone())
            .expect_err("short signature")
            .to_string()
            .contains("not 64 bytes"));
        let mut not_crl = pck_crl.clone();
        not_crl.body = b"<html>".to_vec();
        assert!(assemble(&target(), &not_crl, &tcb, &qe, root)
            .expect_err("no CRL")
            .to_string()
            .contains("not a CRL"));
    }
}
