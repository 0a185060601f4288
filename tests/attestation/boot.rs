//! `enclave init` states its identity at every boot: `identity.json` beside the service state,
//! shown by `enclave status`, pushed as metrics, and verifiable with `enclave verify-identity`.
//! Without a TEE it says so (`enclave_attestation_available 0`) and makes up no quote; a broken
//! attestation interface does not stop the enclave.

use crate::common;
use crate::support::{boot_and_wait_for_identity, identity_path, wait_for_identity};

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::harness::{wait_until, Enclave};
use common::{assert_contains, code, stderr, stdout};
use enclave::attestation::identity::{AttestationStatus, IdentityDocument};
use enclave::config::signature::{self, Scheme};
use enclave::service::state::Status;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

/// A receiver that answers every request 200 and keeps the bodies of the pushes (method, path,
/// body), standing in for a Pushgateway.
struct Capture {
    url: String,
    pushes: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl Capture {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let pushes = Arc::new(Mutex::new(Vec::new()));
        let store = pushes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let store = store.clone();
                std::thread::spawn(move || {
                    let _ = serve_one(stream, &store);
                });
            }
        });
        Self { url, pushes }
    }

    /// The body of the latest push whose path contains `job`.
    fn latest(&self, job: &str) -> Option<String> {
        self.pushes
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .find(|(method, path, _)| method == "PUT" && path.contains(job))
            .map(|(_, _, body)| body.clone())
    }
}

fn serve_one(
    stream: std::net::TcpStream,
    store: &Mutex<Vec<(String, String, String)>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    store
        .lock()
        .expect("lock")
        .push((method, path, String::from_utf8_lossy(&body).into_owned()));
    let mut stream = stream;
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

/// Sample lines of `family` in a text exposition, as (labels, value).
fn samples(text: &str, family: &str) -> Vec<(BTreeMap<String, String>, String)> {
    text.lines()
        .filter(|l| {
            l.starts_with(family)
                && matches!(l.as_bytes().get(family.len()), Some(b'{') | Some(b' '))
        })
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            let labels = series
                .split_once('{')
                .map(|(_, rest)| rest.trim_end_matches('}'))
                .unwrap_or("")
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once("=\""))
                .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
                .collect();
            (labels, value.to_owned())
        })
        .collect()
}

fn status(e: &Enclave, args: &[&str]) -> std::process::Output {
    let root = e.root.to_str().expect("utf-8");
    let mut all = vec!["--root", root, "status"];
    all.extend_from_slice(args);
    common::enclave(&all)
}

const TELEMETRY_PASSWORD: &str = "pw-IDENTITY-SECRET-1";
const TELEMETRY_TOKEN: &str = "tok-IDENTITY-SECRET-2";

#[test]
fn init_publishes_its_identity_in_a_file_in_status_and_in_pushed_metrics() {
    let capture = Capture::start();
    let mut e = Enclave::new();
    let url = capture.url.clone();
    e.configure(|s| {
        s["telemetry"]["instance"] = json!("identity-test");
        s["telemetry"]["targets"] = json!([{
            "url": url, "intervalMs": 1000, "timeoutMs": 500,
            "basicAuth": {"username": "enclave", "password": TELEMETRY_PASSWORD},
            "headers": {"X-Token": TELEMETRY_TOKEN}
        }]);
    });
    let document = boot_and_wait_for_identity(&mut e, T);

    // The facts: the configuration the supervisor verified, the keys the nodes will use.
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(e.config_path()).expect("config"))
            .expect("json");
    let mut payload = config["solution"].clone();
    payload
        .as_object_mut()
        .expect("object")
        .shift_remove("signature");
    let digest = signature::digest_hex(&payload, Scheme::Native).expect("digest");
    let identity = &document.identity;
    assert_eq!(identity.configuration.digest, digest);
    assert_eq!(identity.configuration.scheme, "native-ed25519");
    assert_eq!(
        identity.configuration.verifying_key,
        std::fs::read_to_string(common::dev_public_key_path())
            .expect("key")
            .trim()
    );
    assert!(!identity.configuration.insecure_key);
    assert_eq!(identity.nodes.len(), 5);
    for node in &identity.nodes {
        let public: Value = serde_json::from_str(
            &std::fs::read_to_string(
                e.root
                    .join(format!("sp/secrets/node-{}/public.json", node.node)),
            )
            .expect("the supervisor generated the node's keys"),
        )
        .expect("json");
        assert_eq!(public["peerId"], json!(node.peer_id));
        assert_eq!(
            public["onchainSigningAddress"],
            json!(node.onchain_signing_address)
        );
        assert_eq!(
            public["transmitterAddress"],
            json!(node.transmitter_address)
        );
        assert_eq!(public["offchainPublicKey"], json!(node.offchain_public_key));
    }
    // No TEE here: said plainly, and no quote.
    assert_eq!(document.attestation.status, AttestationStatus::Unavailable);
    assert!(document
        .attestation
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("configfs-tsm"));
    assert!(!e.root.join("run/enclave/identity.quote").exists());

    // No secret in it: not the configuration's, not a private key.
    let text = std::fs::read_to_string(identity_path(&e)).expect("identity");
    assert!(!text.contains(TELEMETRY_PASSWORD) && !text.contains(TELEMETRY_TOKEN));
    for node in 1..=5 {
        for file in [
            "offchain.key",
            "onchain.key",
            "transmitter.key",
            "config.key",
        ] {
            let secret =
                std::fs::read_to_string(e.root.join(format!("sp/secrets/node-{node}/{file}")))
                    .expect("key file");
            assert!(
                !text.to_lowercase().contains(secret.trim()),
                "node-{node}/{file}"
            );
        }
    }
    let mode = std::fs::metadata(identity_path(&e))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    // `enclave status` shows it; `--identity --json` is the document.
    let out = status(&e, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let table = stdout(&out);
    assert_contains(&table, "idle");
    assert_contains(&table, &document.digests.sha512);
    assert!(
        table.contains("attestation") && table.contains("unavailable"),
        "{table}"
    );
    assert!(
        table.contains(&identity.nodes[1].transmitter_address),
        "{table}"
    );
    let out = status(&e, &["--identity", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let shown: IdentityDocument = serde_json::from_str(&stdout(&out)).expect("document");
    assert_eq!(shown, document);
    // `--json` alone keeps its shape: the array of services.
    let services: Value = serde_json::from_str(&stdout(&status(&e, &["--json"]))).expect("json");
    assert!(services.is_array());

    // Pushed: one identity series per node, and attestation unavailable.
    let mut pushed = String::new();
    wait_until(T, "a push with the identity", || {
        pushed = capture.latest("/job/supervisor/").unwrap_or_default();
        pushed.contains("enclave_identity_info{")
    });
    let series = samples(&pushed, "enclave_identity_info");
    assert_eq!(series.len(), 5, "{pushed}");
    for (labels, value) in &series {
        assert_eq!(value, "1");
        assert_eq!(labels["config_digest"], digest);
        assert_eq!(labels["identity_sha512"], document.digests.sha512);
        let node: u32 = labels["node"].parse().expect("node");
        let stated = &identity.nodes[node as usize - 1];
        assert_eq!(labels["peer_id"], stated.peer_id);
        assert_eq!(
            labels["onchain_signing_address"],
            stated.onchain_signing_address
        );
        assert_eq!(labels["transmitter_address"], stated.transmitter_address);
        assert_eq!(labels["offchain_public_key"], stated.offchain_public_key);
    }
    assert_eq!(
        samples(&pushed, "enclave_attestation_available"),
        vec![(BTreeMap::new(), "0".to_owned())],
        "{pushed}"
    );
    assert!(samples(&pushed, "enclave_attestation_quote_info").is_empty());
    assert!(!pushed.contains(TELEMETRY_PASSWORD));

    // Logged once, with the reason.
    let logs = e.logs();
    assert_eq!(logs.matches("enclave identity").count(), 1, "{logs}");
    assert_eq!(logs.matches("attestation unavailable").count(), 1, "{logs}");

    // A third party checks it against the configuration and the key it expects.
    let out = common::enclave(&[
        "--config",
        e.config_path().to_str().expect("utf-8"),
        "verify-identity",
        identity_path(&e).to_str().expect("utf-8"),
        "--public-key-file",
        common::dev_public_key_path().to_str().expect("utf-8"),
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));

    e.stop_cleanly(T);
}

#[test]
fn a_broken_attestation_interface_is_reported_and_the_enclave_runs_on() {
    let mut e = Enclave::new();
    // An ordinary directory where configfs-tsm should be (given through the environment, as
    // an operator would point at a non-default mount): mkdir works, but no provider appears.
    let fake = e.root.join("fake-tsm-report");
    std::fs::create_dir_all(&fake).expect("mkdir");
    // A plain file as RTMR3: it takes the 48-byte write but does not extend.
    let rtmr3 = e
        .root
        .join("sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384");
    std::fs::create_dir_all(rtmr3.parent().expect("dir")).expect("mkdir");
    std::fs::write(&rtmr3, [0u8; 48]).expect("rtmr3");
    e.longrun("idle", "exec sleep 1000", &[]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_enclave"));
    command.env("ENCLAVE_TSM_REPORT_DIR", &fake);
    e.start_with(command, &[]);
    e.wait_status("idle", Status::Up, T);
    let document = wait_for_identity(&e, T);
    assert_eq!(document.attestation.status, AttestationStatus::Failed);
    let reason = document.attestation.reason.clone().unwrap_or_default();
    assert_contains(&reason, "provider");
    assert!(!e.root.join("run/enclave/identity.quote").exists());
    // The report entry was removed again.
    assert_eq!(std::fs::read_dir(&fake).expect("dir").count(), 0);

    // RTMR3: exactly the identity's 48-byte SHA-384 was written at offset 0, the event logged
    // (0600), and the register's failure to extend noticed.
    let written = std::fs::read(&rtmr3).expect("rtmr3");
    assert_eq!(hex::encode(&written), document.digests.sha384);
    let log = e.root.join("run/enclave/identity-events.jsonl");
    let events = std::fs::read_to_string(&log).expect("event log");
    assert_eq!(events.lines().count(), 1);
    let event: Value = serde_json::from_str(events.trim()).expect("json line");
    assert_eq!(event["digest"], json!(document.digests.sha384));
    assert_eq!(event["bootId"], json!(document.identity.boot_id));
    assert_eq!(
        std::fs::metadata(&log).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let rtmr = document.attestation.rtmr3.expect("rtmr3 record");
    assert!(rtmr.extended);
    assert!(
        rtmr.reason
            .as_deref()
            .unwrap_or("")
            .contains("something else extended it"),
        "{rtmr:?}"
    );
    let logs = e.logs();
    assert_contains(&logs, "attestation failed");

    // Still running, still healthy.
    let out = status(&e, &["--check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (status_code, metrics) =
        Enclave::http_get(e.port("supervisor"), "/metrics").expect("metrics endpoint");
    assert_eq!(status_code, 200);
    assert_contains(&metrics, "enclave_attestation_available 0");
    assert_contains(&metrics, "enclave_attestation_rtmr3_extended 1");
    e.stop_cleanly(T);
}

#[test]
fn a_new_boot_replaces_the_identity_and_keeps_the_keys() {
    let mut e = Enclave::new();
    e.longrun("idle", "exec sleep 1000", &[]);
    e.start(&[]);
    let first = wait_for_identity(&e, T);
    e.stop_cleanly(T);
    e.start(&[]);
    let mut second = None;
    wait_until(T, "the second boot's identity", || {
        second = std::fs::read_to_string(identity_path(&e))
            .ok()
            .and_then(|t| serde_json::from_str::<IdentityDocument>(&t).ok())
            .filter(|d| {
                d.identity.boot_id != first.identity.boot_id
                    && d.attestation.status != AttestationStatus::Pending
            });
        second.is_some()
    });
    let second = second.expect("second");
    assert_eq!(second.identity.nodes, first.identity.nodes, "same keys");
    assert_eq!(second.identity.configuration, first.identity.configuration);
    assert_ne!(second.digests, first.digests, "each boot is its own");
    e.stop_cleanly(T);
}
