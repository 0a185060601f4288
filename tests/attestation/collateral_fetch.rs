//! `enclave attestation collateral fetch` against a local PCCS that serves the pieces of
//! dcap-qvl's sample collateral in a PCCS's response format (PCS v4 API: URL-encoded PEM issuer
//! chains in headers, DER PCK CRL, `{"tcbInfo":…,"signature":hex}` bodies, hex root CA CRL):
//! the file it writes is the sample's collateral and verifies the sample quote, and what a
//! PCCS gets wrong is refused with nothing written.

use crate::common;
use crate::support::fixture;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::{assert_contains, code, stderr, stdout};
use enclave::attestation::dcap::collateral;

const TDX_AT: &str = "2025-07-01T00:00:00Z";
const TD15EX_AT: &str = "2026-10-20T00:00:00Z";

fn sample(name: &str) -> dcap_qvl::QuoteCollateralV3 {
    collateral::parse(&std::fs::read(fixture(name)).expect("fixture")).expect("collateral")
}

/// What the PCCS gets wrong.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    TcbInfoFails,
    TcbInfoOfAnotherPlatform,
    NoIssuerChainHeader,
}

#[derive(Clone)]
struct Pccs {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

struct Served {
    collateral: dcap_qvl::QuoteCollateralV3,
    other: dcap_qvl::QuoteCollateralV3,
    fmspc: String,
    fault: Fault,
    requests: Arc<Mutex<Vec<String>>>,
}

fn encoded(pem: &str) -> HeaderValue {
    HeaderValue::from_str(
        &percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string(),
    )
    .expect("header")
}

fn respond(served: &Served, uri: &Uri) -> Response {
    let path = uri.path();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let q = |k: &str| query.get(k).map(String::as_str);
    let c = &served.collateral;
    let mut headers = HeaderMap::new();
    match path {
        "/sgx/certification/v4/pckcrl"
            if q("ca") == Some("platform") && q("encoding") == Some("der") =>
        {
            headers.insert("SGX-PCK-CRL-Issuer-Chain", encoded(&c.pck_crl_issuer_chain));
            (headers, c.pck_crl.clone()).into_response()
        }
        "/tdx/certification/v4/tcb"
            if q("fmspc") == Some(served.fmspc.as_str()) && q("update") == Some("standard") =>
        {
            let source = match served.fault {
                Fault::TcbInfoFails => {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "PCS unreachable").into_response()
                }
                Fault::TcbInfoOfAnotherPlatform => &served.other,
                _ => c,
            };
            if served.fault != Fault::NoIssuerChainHeader {
                headers.insert(
                    "TCB-Info-Issuer-Chain",
                    encoded(&source.tcb_info_issuer_chain),
                );
            }
            signed_json(
                headers,
                "tcbInfo",
                &source.tcb_info,
                &source.tcb_info_signature,
            )
        }
        "/tdx/certification/v4/qe/identity" if q("update") == Some("standard") => {
            headers.insert(
                "SGX-Enclave-Identity-Issuer-Chain",
                encoded(&c.qe_identity_issuer_chain),
            );
            signed_json(
                headers,
                "enclaveIdentity",
                &c.qe_identity,
                &c.qe_identity_signature,
            )
        }
        // A PCCS answers the root CA CRL as hex text.
        "/sgx/certification/v4/rootcacrl" => hex::encode(&c.root_ca_crl).into_response(),
        _ => (StatusCode::NOT_FOUND, "no such collateral").into_response(),
    }
}

/// A signed structure as the PCS answers it: `{"<member>": <body>, "signature": "<hex>"}`.
fn signed_json(mut headers: HeaderMap, member: &str, body: &str, signature: &[u8]) -> Response {
    headers.insert("Content-Type", HeaderValue::from_static("application/json"));
    let body = format!(
        "{{\"{member}\":{body},\"signature\":\"{}\"}}",
        hex::encode(signature)
    );
    (headers, body).into_response()
}

impl Pccs {
    fn start(collateral: &str, fmspc: &str, fault: Fault) -> Self {
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let served = Arc::new(Served {
            collateral: sample(collateral),
            other: sample("tdx_quote_outdated_collateral.json"),
            fmspc: fmspc.to_owned(),
            fault,
            requests: requests.clone(),
        });
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let served = served.clone();
            async move {
                served.requests.lock().expect("lock").push(uri.to_string());
                respond(&served, &uri)
            }
        });
        let base = crate::common::receivers::serve_on("127.0.0.1", app);
        Self { base, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

fn fetch(pccs: &str, quote: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "attestation",
        "collateral",
        "fetch",
        "--pccs",
        pccs,
        "--quote",
        quote,
        "--out",
        out.to_str().expect("utf-8"),
        "--timeout",
        "20s",
    ];
    args.extend_from_slice(extra);
    common::enclave(&args)
}

fn quote_verify(quote: &str, collateral: &Path, at: &str) -> std::process::Output {
    common::enclave(&[
        "quote",
        "verify",
        quote,
        "--collateral",
        collateral.to_str().expect("utf-8"),
        "--at",
        at,
    ])
}

#[test]
fn collateral_fetched_from_a_pccs_verifies_the_quote_and_is_shareable() {
    let pccs = Pccs::start("tdx_quote_collateral.json", "B0C06F000000", Fault::None);
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("collateral.json");
    let run = fetch(&pccs.base, &fixture("tdx_quote"), &out, &["--at", TDX_AT]);
    let text = stdout(&run);
    assert_eq!(code(&run), 0, "{text}{}", stderr(&run));
    assert_contains(&text, "collateral for FMSPC B0C06F000000 (PCK CA platform, TDX), valid 2025-06-19T10:32:27Z .. 2025-07-19T10:00:34Z (PCK CRL expires first)");
    assert_contains(&text, "TCB status UpToDate");
    assert_eq!(
        pccs.requests(),
        [
            "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
            "/tdx/certification/v4/tcb?fmspc=B0C06F000000&update=standard",
            "/tdx/certification/v4/qe/identity?update=standard",
            "/sgx/certification/v4/rootcacrl",
        ]
    );
    let written = collateral::parse(&std::fs::read(&out).expect("written")).expect("parses");
    assert_eq!(written, sample("tdx_quote_collateral.json"));
    let verified = quote_verify(&fixture("tdx_quote"), &out, TDX_AT);
    assert_eq!(code(&verified), 0, "{}", stdout(&verified));

    // The TD 1.5ex sample's collateral carries its machine's PCK chain; the fetched one does
    // not (the quote carries it), and verifies all the same.
    let pccs = Pccs::start(
        "tdx_quote_td15ex_collateral.json",
        "B0C06F000000",
        Fault::None,
    );
    let run = fetch(
        &format!("{}/tdx/certification/v4/", pccs.base),
        &fixture("tdx_quote_td15ex"),
        &out,
        &["--at", TD15EX_AT],
    );
    assert_eq!(code(&run), 0, "{}{}", stdout(&run), stderr(&run));
    let written = collateral::parse(&std::fs::read(&out).expect("written")).expect("parses");
    assert_eq!(written.pck_certificate_chain, None);
    assert_eq!(
        written,
        collateral::shareable(&sample("tdx_quote_td15ex_collateral.json"))
    );
    let verified = quote_verify(&fixture("tdx_quote_td15ex"), &out, TD15EX_AT);
    assert_eq!(code(&verified), 0, "{}", stdout(&verified));
}

#[test]
fn what_a_pccs_serves_wrong_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("collateral.json");
    let cases = [
        (Fault::TcbInfoFails, TDX_AT, "tcb?fmspc=B0C06F000000&update=standard: HTTP 500"),
        (
            Fault::TcbInfoOfAnotherPlatform,
            TDX_AT,
            "the TCB Info is for FMSPC 90C06F000000, the quote's is B0C06F000000",
        ),
        (
            Fault::NoIssuerChainHeader,
            TDX_AT,
            "no TCB-Info-Issuer-Chain or SGX-TCB-Info-Issuer-Chain header",
        ),
        // What a PCCS with a stale cache serves: collateral that expired long ago.
        (
            Fault::None,
            "2026-12-01T00:00:00Z",
            "the fetched collateral does not verify the quote, nothing written: the collateral expired at 2025-07-19T10:00:34Z",
        ),
    ];
    for (fault, at, expected) in cases {
        let pccs = Pccs::start("tdx_quote_collateral.json", "B0C06F000000", fault);
        let run = fetch(&pccs.base, &fixture("tdx_quote"), &out, &["--at", at]);
        assert_eq!(code(&run), 1, "{}{}", stdout(&run), stderr(&run));
        assert!(
            stderr(&run).contains(expected),
            "{expected}: {}",
            stderr(&run)
        );
        assert!(!out.exists(), "{expected}: a file was written");
    }
    // A PCCS for another platform model has nothing for this quote.
    let pccs = Pccs::start("tdx_quote_collateral.json", "90C06F000000", Fault::None);
    let run = fetch(&pccs.base, &fixture("tdx_quote"), &out, &["--at", TDX_AT]);
    assert_eq!(code(&run), 1, "{}", stderr(&run));
    assert_contains(&stderr(&run), "HTTP 404");
    assert!(!out.exists());
}

#[test]
fn bad_arguments_are_input_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("collateral.json");
    let run = fetch("ftp://pccs.example", &fixture("tdx_quote"), &out, &[]);
    assert_eq!(code(&run), 65, "{}", stderr(&run));
    assert!(stderr(&run).contains("--pccs must be an http or https URL"));
    let missing = dir.path().join("missing");
    let run = fetch(
        "http://127.0.0.1:9",
        missing.to_str().expect("utf-8"),
        &out,
        &[],
    );
    assert_eq!(code(&run), 65, "{}", stderr(&run));
    assert!(stderr(&run).contains("cannot read the quote"));
}
