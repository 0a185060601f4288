//! What admitting a DON member costs: one member's enclave (the simulated provider, three nodes)
//! boots and publishes its identity; then its document is judged as every other member's
//! supervisor judges it at each check (`membership::Judge::judge`: the evidence, the allowed
//! measurements, the configuration and its signature, every key birth, the member's operator
//! signature). Median and p90 over many judgements. Run with `scripts/bench-don.sh` (or `cargo
//! bench --bench don_admission`).
//!
//! The P2P handshake itself gains one set lookup per connection (the gate): what costs is this
//! judgement, made once per member per `don.recheckMs` and at startup, never per connection.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use enclave::attestation::member_key::{OperatorKey, OPERATOR_KEY_ENV};
use enclave::attestation::membership::Judge;
use enclave::config::signature::PublicKey;
use serde_json::{json, Value};
use sha2::Digest;

mod common;
use common::{dev_ca, install_config, wait};

const JUDGEMENTS: usize = 300;

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let services = dir.path().join("s6-rc.d");
    fs::create_dir_all(&services).expect("services");
    let (ca_key, ca_cert) = dev_ca(dir.path());
    let alpha = OperatorKey::from_seed([0xa1; 32]);
    let beta = OperatorKey::from_seed([0xb2; 32]);
    let key_file = dir.path().join("alpha.key");
    fs::write(&key_file, alpha.to_hex().as_bytes()).expect("operator key");
    let binary = fs::read(env!("CARGO_BIN_EXE_enclave")).expect("binary");
    let measurements = simulated_measurements(&hex::encode(sha2::Sha256::digest(&binary)));
    let public = |k: &OperatorKey| hex::encode(k.public().as_bytes());
    install_config(&repo, &root, |s| {
        s["chainlinkChainId"] = json!(1337);
        s["chain"]["enabled"] = json!(true);
        s["chain"]["configureContracts"] = json!(true);
        s["attestation"] = json!({
            "provider": "simulated",
            "simulated": {"caKeyFile": ca_key, "caCertificateFile": ca_cert},
            "allowedMeasurements": measurements,
        });
        s["don"] = json!({"members": [
            {"name": "alpha", "nodes": [1, 2, 3], "operatorKey": public(&alpha),
             "p2pAddresses": ["a:9901", "a:9902", "a:9903"],
             "identityUrl": "http://a:3002/v1/identity"},
            {"name": "beta", "nodes": [4, 5], "operatorKey": public(&beta),
             "p2pAddresses": ["b:9904", "b:9905"], "identityUrl": "http://b:3002/v1/identity"},
        ]});
        for port in ["supervisor", "processMetrics", "alerts"] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            s["ports"][port] = json!(listener.local_addr().expect("addr").port());
        }
        s["telemetry"]["targets"] = json!([]);
    });
    let identity = root.join("run/enclave/identity.json");
    let mut init = Command::new(env!("CARGO_BIN_EXE_enclave"))
        .arg("--root")
        .arg(&root)
        .arg("init")
        .arg("--services")
        .arg(&services)
        .env(OPERATOR_KEY_ENV, &key_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("init starts");
    wait(Duration::from_secs(60), || {
        fs::read_to_string(&identity)
            .is_ok_and(|t| t.contains("\"simulated\"") && !t.contains("\"pending\""))
    });
    let text = fs::read_to_string(&identity).expect("identity");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("term");
    init.wait().expect("wait");

    let configuration_path = root.join("sp/configurations/configuration.json");
    let document: Value =
        serde_json::from_str(&fs::read_to_string(&configuration_path).expect("configuration"))
            .expect("json");
    let config = enclave::config::validate_document(&document)
        .expect("valid")
        .config;
    let public_key = PublicKey::from_base64_spki(
        &fs::read_to_string(repo.join("scripts/dev-keys/configuration.pub")).expect("key"),
    )
    .expect("key parses");
    // beta judges alpha.
    let judge = Judge::new(&config, document, public_key).expect("judge");
    let admitted = judge.judge(&text).expect("alpha is admitted");
    assert_eq!(admitted.member, "alpha");
    let mut times = Vec::with_capacity(JUDGEMENTS);
    for _ in 0..JUDGEMENTS {
        let started = Instant::now();
        let judged = judge.judge(&text);
        times.push(started.elapsed());
        assert!(judged.is_ok());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "DON admission: one member's identity ({} nodes, {} bytes) judged {JUDGEMENTS} times: median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        admitted.nodes.len(),
        text.len(),
        ms(times[JUDGEMENTS / 2]),
        ms(times[JUDGEMENTS * 9 / 10]),
        ms(times[JUDGEMENTS - 1]),
    );
}

/// The allowed measurements of the simulated TD running the binary with this SHA-256 (what
/// `enclave attestation simulated-measurements` prints).
fn simulated_measurements(binary_sha256: &str) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_enclave"))
        .args(["attestation", "simulated-measurements", "--binary"])
        .arg(env!("CARGO_BIN_EXE_enclave"))
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    let records: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        records[0]["identity"]["binary_sha256"]["expected_any"][0],
        json!(binary_sha256)
    );
    records
}
