//! A DON across enclaves, as far as it is built (docs/design/don-across-tees.md#status): two
//! member enclaves booted with the same signed configuration and the simulated provider on a
//! dev chain each key, list and sign for their own nodes only; `verify-identity --config`
//! accepts each member's identity; the admission decision admits each member's nodes and
//! refuses a wrong connection key, a forged member signature, another configuration, another
//! binary and simulated evidence where it is not allowed, each with its reason; an enclave
//! without a member's operator key, or with a key that is no member's, starts nothing (78).

use crate::common;
use crate::support::{ca, simulated_attestation, wait_for_identity, write, Issued};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::harness::Enclave;
use common::{assert_contains, code, stdout};
use enclave::attestation::admission::{admit, Policy};
use enclave::attestation::evidence::check::registers;
use enclave::attestation::identity::IdentityDocument;
use enclave::attestation::member_key::{OperatorKey, OPERATOR_KEY_ENV};
use enclave::attestation::quote::TdQuote;
use enclave::attestation::quote_builder::{synthetic_quote, QuoteSpec};
use enclave::config::{read_key_file, validate_document};
use enclave::keys::peer_id::PeerId;
use enclave::service::state::Status;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const T: Duration = Duration::from_secs(30);
const ALPHA: [u8; 32] = [0xa1; 32];
const BETA: [u8; 32] = [0xb2; 32];

/// An allowed TD: the registers every simulated quote has, and `binary` as the enclave binary.
fn allowed(binary: &str) -> Value {
    let quote = TdQuote::parse(&synthetic_quote(&QuoteSpec::default())).expect("quote");
    let r = registers(&quote);
    let any = |m: &[u8]| json!({"expected_any": [hex::encode(m)]});
    json!([{
        "measurement_id": "the tests' simulated TD",
        "attestation_type": "dcap-tdx",
        "measurements": {"mrtd": any(&r.mr_td), "rtmr0": any(&r.rtmr[0]),
                         "rtmr1": any(&r.rtmr[1]), "rtmr2": any(&r.rtmr[2])},
        "identity": {"binary_sha256": {"expected_any": [binary]}},
    }])
}

fn this_binary() -> String {
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_enclave")).expect("the binary");
    hex::encode(Sha256::digest(bytes))
}

fn public(seed: [u8; 32]) -> String {
    hex::encode(OperatorKey::from_seed(seed).public().as_bytes())
}

/// The DON: member alpha runs nodes 1-3 (the bootstrap among them), beta nodes 4 and 5; beta's
/// identity is fetched from `beta_identity`.
fn don_section(beta_identity: &str) -> Value {
    json!({"recheckMs": 1000, "members": [
        {"name": "alpha", "nodes": [1, 2, 3], "operatorKey": public(ALPHA),
         "p2pAddresses": ["alpha.example:9901", "alpha.example:9902", "alpha.example:9903"],
         "identityUrl": "http://127.0.0.1:9/v1/identity"},
        {"name": "beta", "nodes": [4, 5], "operatorKey": public(BETA),
         "p2pAddresses": ["beta.example:9904", "beta.example:9905"],
         "identityUrl": beta_identity},
    ]})
}

/// A stand-in for beta's supervisor port: `GET /v1/identity` answers what the test sets
/// (503 while nothing is set).
#[derive(Clone, Default)]
struct IdentityServer {
    url: String,
    served: Arc<Mutex<Option<String>>>,
}

impl IdentityServer {
    fn start() -> Self {
        let served: Arc<Mutex<Option<String>>> = Arc::default();
        let shown = served.clone();
        let app = axum::Router::new().route(
            "/v1/identity",
            axum::routing::get(move || {
                let text = shown.lock().expect("lock").clone();
                async move {
                    match text {
                        Some(text) => (axum::http::StatusCode::OK, text),
                        None => (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    }
                }
            }),
        );
        let base = common::receivers::serve_on("127.0.0.1", app);
        Self {
            url: format!("{base}/v1/identity"),
            served,
        }
    }

    fn serve(&self, text: Option<String>) {
        *self.served.lock().expect("lock") = text;
    }
}

fn key_file(dir: &Path, name: &str, seed: [u8; 32]) -> PathBuf {
    let path = dir.join(name);
    write(&path, OperatorKey::from_seed(seed).to_hex().as_str());
    path
}

struct Don {
    _tmp: tempfile::TempDir,
    beta_identity: IdentityServer,
    dev_ca: Issued,
    ca_file: PathBuf,
    alpha: Enclave,
    beta: Enclave,
    alpha_key: PathBuf,
    beta_key: PathBuf,
}

/// Two enclaves with one configuration (beta's file is a copy of alpha's).
fn don(binary: &str) -> Don {
    don_rechecking(binary, 1000)
}

/// The same, with `don.recheckMs` of `recheck_ms`.
fn don_rechecking(binary: &str, recheck_ms: u64) -> Don {
    let tmp = tempfile::tempdir().expect("tmp");
    let beta_identity = IdentityServer::start();
    let dev_ca = ca("enclave development CA");
    let mut attestation = simulated_attestation(tmp.path(), &dev_ca);
    attestation["allowedMeasurements"] = allowed(binary);
    let alpha = Enclave::new();
    alpha.configure(|s| {
        s["chainlinkChainId"] = json!(1337);
        s["attestation"] = attestation;
        // Members learn their configuration and shared secret from the contracts.
        s["chain"]["enabled"] = json!(true);
        s["chain"]["configureContracts"] = json!(true);
        s["don"] = don_section(&beta_identity.url);
        s["don"]["recheckMs"] = json!(recheck_ms);
    });
    let beta = Enclave::new();
    std::fs::copy(alpha.config_path(), beta.config_path()).expect("the same configuration");
    Don {
        ca_file: tmp.path().join("dev-ca.pem"),
        alpha_key: key_file(tmp.path(), "alpha.key", ALPHA),
        beta_key: key_file(tmp.path(), "beta.key", BETA),
        _tmp: tmp,
        beta_identity,
        dev_ca,
        alpha,
        beta,
    }
}

fn start_member(e: &mut Enclave, key: Option<&Path>) {
    e.longrun("idle", "exec sleep 1000", &[]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_enclave"));
    if let Some(key) = key {
        command.env(OPERATOR_KEY_ENV, key);
    }
    e.start_with(command, &[]);
}

/// Boots the member with its key, returns its identity document's text, and stops it (the
/// two members share the configuration's ports, so they boot one after the other).
fn boot_member(e: &mut Enclave, key: &Path) -> String {
    start_member(e, Some(key));
    e.wait_status("idle", Status::Up, T);
    wait_for_identity(e, T);
    let text = std::fs::read_to_string(crate::support::identity_path(e)).expect("identity");
    e.stop_cleanly(T);
    text
}

fn peer_of(document: &IdentityDocument, node: u32) -> PeerId {
    let id = &document
        .identity
        .nodes
        .iter()
        .find(|n| n.node == node)
        .expect("node")
        .peer_id;
    id.parse().expect("peer id")
}

#[test]
fn each_member_keys_lists_and_signs_its_own_nodes_and_admits_the_others() {
    let mut don = don(&this_binary());
    let alpha_text = boot_member(&mut don.alpha, &don.alpha_key.clone());
    let beta_text = boot_member(&mut don.beta, &don.beta_key.clone());
    let alpha: IdentityDocument = serde_json::from_str(&alpha_text).expect("alpha");
    let beta: IdentityDocument = serde_json::from_str(&beta_text).expect("beta");

    // Own nodes only: in the identity, with birth evidence, on disk; and the member's signature.
    for (document, e, name, nodes, others) in [
        (&alpha, &don.alpha, "alpha", vec![1, 2, 3], vec![4, 5]),
        (&beta, &don.beta, "beta", vec![4, 5], vec![1, 2, 3]),
    ] {
        assert_eq!(document.identity.member.as_deref(), Some(name));
        let listed: Vec<u32> = document.identity.nodes.iter().map(|n| n.node).collect();
        assert_eq!(listed, nodes, "{name}");
        assert!(document.birth.iter().all(|b| b.present()), "{name}");
        assert!(document.member_signature.is_some(), "{name}");
        for node in others {
            assert!(
                !e.root.join(format!("sp/secrets/node-{node}")).exists(),
                "{name} made keys for node {node}"
            );
        }
        assert_contains(
            &e.logs(),
            "this enclave is a member of a DON across enclaves",
        );
    }

    // A third party with the configuration: each member's identity verifies.
    let ca_file = don.ca_file.to_str().expect("utf-8").to_owned();
    let config = don.alpha.config_path();
    let dev_key = common::dev_public_key_path();
    for (e, name) in [(&don.alpha, "alpha"), (&don.beta, "beta")] {
        let document = crate::support::identity_path(e);
        let out = common::enclave(&[
            "--config",
            config.to_str().expect("utf-8"),
            "verify-identity",
            document.to_str().expect("utf-8"),
            "--public-key-file",
            dev_key.to_str().expect("utf-8"),
            "--trusted-ca",
            &ca_file,
            "--allow-simulated",
            "--require-birth",
        ]);
        assert_eq!(code(&out), 0, "{name}: {}", stdout(&out));
        assert_contains(
            &stdout(&out),
            &format!("member \"{name}\"'s operator key signed the identity"),
        );
    }

    // Admission, against the member's own configuration.
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("json");
    let public_key = read_key_file(&dev_key).expect("dev key");
    let records = validate_document(&document)
        .expect("valid")
        .config
        .attestation
        .allowed_measurements;
    let trusted = vec![don.dev_ca.cert.der().to_vec()];
    let policy = Policy {
        configuration: &document,
        public_key: &public_key,
        measurements: &records,
        trusted_cas: &trusted,
        quote_check: None,
        allow_simulated: true,
        at: None,
    };
    let admitted = admit(&beta_text, &peer_of(&beta, 4), &policy).expect("beta's node 4");
    assert_eq!(admitted.member.member, "beta");
    assert_eq!(admitted.node.node, 4);
    assert_eq!(admitted.member.nodes.len(), 2);
    assert_eq!(admitted.member.boot_id, beta.identity.boot_id);
    let admitted = admit(&alpha_text, &peer_of(&alpha, 1), &policy).expect("alpha's node 1");
    assert_eq!(
        (admitted.member.member.as_str(), admitted.node.node),
        ("alpha", 1)
    );

    // Refusals, each with its reason.
    let refused = |text: &str, peer: &PeerId, policy: &Policy<'_>| {
        admit(text, peer, policy).expect_err("refused").reason()
    };
    assert_eq!(
        refused(&beta_text, &peer_of(&alpha, 1), &policy),
        "key_not_in_identity",
        "a connection key the identity does not list"
    );
    let mut forged: Value = serde_json::from_str(&beta_text).expect("json");
    forged["memberSignature"] = json!(alpha.member_signature);
    assert_eq!(
        refused(&forged.to_string(), &peer_of(&beta, 4), &policy),
        "member_signature",
        "another identity's member signature"
    );
    let strict = Policy {
        allow_simulated: false,
        ..policy
    };
    assert_eq!(
        refused(&beta_text, &peer_of(&beta, 4), &strict),
        "simulated_not_allowed"
    );
    let other_binary = allowed(&"00".repeat(32));
    let other_records =
        enclave::config::measurements::parse_file(other_binary.to_string().as_bytes())
            .expect("records");
    let pinned = Policy {
        measurements: &other_records,
        ..policy
    };
    assert_eq!(
        refused(&beta_text, &peer_of(&beta, 4), &pinned),
        "measurement_not_allowed"
    );
    // The same DON with one setting changed is another configuration.
    let other = Enclave::new();
    other.configure(|s| {
        s["chainlinkChainId"] = json!(1337);
        s["attestation"] = document["solution"]["attestation"].clone();
        let mut section = don_section(&don.beta_identity.url);
        section["recheckMs"] = json!(60_000);
        s["don"] = section;
    });
    let other_document: Value =
        serde_json::from_str(&std::fs::read_to_string(other.config_path()).expect("config"))
            .expect("json");
    let elsewhere = Policy {
        configuration: &other_document,
        ..policy
    };
    assert_eq!(
        refused(&beta_text, &peer_of(&beta, 4), &elsewhere),
        "other_configuration"
    );
}

#[test]
fn without_a_members_operator_key_nothing_starts() {
    let mut don = don(&this_binary());
    start_member(&mut don.alpha, None);
    assert_eq!(don.alpha.wait_exit(T), 78);
    assert_contains(&don.alpha.logs(), "ENCLAVE_OPERATOR_KEY_FILE is not set");

    let stranger = key_file(don._tmp.path(), "stranger.key", [0x5e; 32]);
    start_member(&mut don.beta, Some(&stranger));
    assert_eq!(don.beta.wait_exit(T), 78);
    assert_contains(&don.beta.logs(), "is no member's operatorKey");
    assert!(
        !don.beta
            .logs()
            .contains(OperatorKey::from_seed([0x5e; 32]).to_hex().as_str()),
        "the key is shown"
    );
    assert!(!don.beta.root.join("sp/secrets/node-4").exists());
}

#[test]
fn operator_key_makes_a_private_key_file_prints_its_public_key_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("operator.key");
    let path = file.to_str().expect("utf-8");
    let out = common::enclave(&["operator-key", "--out", path]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let key = OperatorKey::read(&file).expect("a key file");
    assert_eq!(
        stdout(&out).trim(),
        hex::encode(key.public().as_bytes()),
        "the printed public key is the file's"
    );
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !stdout(&out).contains(key.to_hex().as_str()),
        "the private key is printed"
    );

    let before = std::fs::read(&file).expect("read");
    let again = common::enclave(&["operator-key", "--out", path]);
    assert_ne!(code(&again), 0);
    assert_eq!(
        std::fs::read(&file).expect("read"),
        before,
        "the key was replaced"
    );
}

/// `name{labels} value` in the supervisor's metrics of `e`.
fn metric(e: &Enclave, series: &str) -> Option<f64> {
    let (_, text) = Enclave::http_get(e.port("supervisor"), "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn wait_metric(e: &Enclave, series: &str, what: &str, accept: impl Fn(f64) -> bool) {
    common::harness::wait_until(T, what, || metric(e, series).is_some_and(&accept));
}

#[test]
fn a_member_keeps_checking_the_others_admits_refuses_and_readmits_them() {
    let mut don = don(&this_binary());
    let beta_text = boot_member(&mut don.beta, &don.beta_key.clone());
    let alpha_key = don.alpha_key.clone();
    // First, a document larger than 1 MiB: not read; unreachable, not admitted, said once.
    don.beta_identity.serve(Some("x".repeat(2 << 20)));
    start_member(&mut don.alpha, Some(&alpha_key));
    don.alpha.wait_status("idle", Status::Up, T);
    let admitted = "enclave_don_member_admitted{member=\"beta\"}";
    let unreachable = "enclave_don_member_unreachable{member=\"beta\"}";
    let written = don.alpha.root.join("run/enclave/members/beta.json");

    wait_metric(&don.alpha, unreachable, "beta unreachable", |v| v == 1.0);
    assert_eq!(metric(&don.alpha, admitted), Some(0.0));
    assert!(!written.exists());
    common::harness::wait_until(T, "the oversized document in the log", || {
        don.alpha.logs().contains("larger than 1048576 bytes")
    });

    // Beta's real identity: admitted, and written for the nodes.
    don.beta_identity.serve(Some(beta_text.clone()));
    wait_metric(&don.alpha, admitted, "beta admitted", |v| v == 1.0);
    assert_eq!(metric(&don.alpha, unreachable), Some(0.0));
    assert_eq!(
        std::fs::read_to_string(&written).expect("written"),
        beta_text
    );
    let verified = "enclave_don_member_last_verified_timestamp_seconds{member=\"beta\"}";
    assert!(metric(&don.alpha, verified).is_some_and(|v| v > 1.7e9));
    assert_contains(&don.alpha.logs(), "DON member admitted");

    // Out of reach for a while: the admission stands (nothing new was learnt against it).
    don.beta_identity.serve(None);
    wait_metric(
        &don.alpha,
        unreachable,
        "beta unreachable once admitted",
        |v| v == 1.0,
    );
    assert_eq!(metric(&don.alpha, admitted), Some(1.0));
    assert!(written.exists());

    // The same identity with another's member signature: refused at the next check, removed.
    let mut forged: Value = serde_json::from_str(&beta_text).expect("json");
    forged["memberSignature"] = json!("00".repeat(64));
    don.beta_identity.serve(Some(forged.to_string()));
    wait_metric(&don.alpha, admitted, "beta refused", |v| v == 0.0);
    let refusals = "enclave_don_member_refusals_total{member=\"beta\",reason=\"member_signature\"}";
    assert!(metric(&don.alpha, refusals).is_some_and(|v| v >= 1.0));
    assert!(
        !written.exists(),
        "a refused member's identity is left for the nodes"
    );
    assert_contains(&don.alpha.logs(), "DON member refused");

    // Another member's valid identity at beta's address (alpha's own): refused, nothing written.
    let alpha_text =
        std::fs::read_to_string(crate::support::identity_path(&don.alpha)).expect("alpha");
    don.beta_identity.serve(Some(alpha_text));
    let wrong = "enclave_don_member_refusals_total{member=\"beta\",reason=\"wrong_member\"}";
    wait_metric(
        &don.alpha,
        wrong,
        "another member's identity refused",
        |v| v >= 1.0,
    );
    assert_eq!(metric(&don.alpha, admitted), Some(0.0));
    assert!(
        !written.exists(),
        "another member's identity is left for beta's nodes"
    );

    // Its real identity again: admitted again.
    don.beta_identity.serve(Some(beta_text.clone()));
    wait_metric(&don.alpha, admitted, "beta admitted again", |v| v == 1.0);
    assert!(written.exists());
    don.alpha.stop_cleanly(T);
}

#[test]
fn a_node_that_reconnects_to_a_member_has_it_checked_again_at_once() {
    // An hour between re-checks: only the request can cause the next one.
    let mut don = don_rechecking(&this_binary(), 3_600_000);
    let beta_text = boot_member(&mut don.beta, &don.beta_key.clone());
    let alpha_key = don.alpha_key.clone();
    don.beta_identity.serve(Some(beta_text.clone()));
    start_member(&mut don.alpha, Some(&alpha_key));
    don.alpha.wait_status("idle", Status::Up, T);
    let admitted = "enclave_don_member_admitted{member=\"beta\"}";
    wait_metric(&don.alpha, admitted, "beta admitted", |v| v == 1.0);

    // Beta now answers with a forged signature; nothing asks, so nothing changes.
    let mut forged: Value = serde_json::from_str(&beta_text).expect("json");
    forged["memberSignature"] = json!("00".repeat(64));
    don.beta_identity.serve(Some(forged.to_string()));
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(metric(&don.alpha, admitted), Some(1.0));

    // What a node does when it reconnects to one of beta's nodes: the check runs at once.
    let request = don.alpha.root.join("run/enclave/members/recheck/beta");
    write(&request, "");
    wait_metric(
        &don.alpha,
        admitted,
        "beta checked again and refused",
        |v| v == 0.0,
    );
    assert!(!request.exists(), "the request is consumed");
    don.alpha.stop_cleanly(T);
}
