//! `enclave don-config`: the OCR1 configuration of every feed for this enclave's oracles.

use crate::common;

use std::process::Output;

use common::harness::Enclave;
use common::{assert_contains, code, stderr, stdout};
use serde_json::Value;

fn run(e: &Enclave, args: &[&str]) -> Output {
    common::enclave_at(&e.root)
        .args(args)
        .output()
        .expect("enclave runs")
}

#[test]
fn don_config_prints_every_feeds_configuration_for_the_enclaves_oracles() {
    let e = Enclave::new();
    let out = run(&e, &["don-config"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let feeds = printed["feeds"].as_array().expect("feeds");
    assert_eq!(feeds.len(), 3);
    let keys: Value =
        serde_json::from_str(&stdout(&run(&e, &["keys", "show"]))).expect("keys JSON");
    let oracle_signers: Vec<&Value> = keys["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["role"] == "oracle")
        .map(|n| &n["onchainSigningAddress"])
        .collect();
    for feed in feeds {
        let signers: Vec<&Value> = feed["signers"]
            .as_array()
            .expect("signers")
            .iter()
            .collect();
        assert_eq!(
            signers, oracle_signers,
            "the contract's signers are the oracles' signing addresses, in oracle order"
        );
        assert_eq!(feed["threshold"], 1);
        assert_eq!(
            feed["sharedSecretEncryptions"]["encryptions"]
                .as_array()
                .map(Vec::len),
            Some(4)
        );
        assert_eq!(feed["encodedConfigVersion"], 1);
        assert!(
            feed["configDigest"]
                .as_str()
                .is_some_and(|d| d.len() == 34 && d.starts_with("0x")),
            "{}",
            feed["configDigest"]
        );
    }
    // The shared secret never appears, only its hash and encryptions.
    let secret =
        std::fs::read_to_string(e.root.join("sp/secrets/ocr-shared-secret")).expect("secret");
    assert!(!stdout(&out).contains(secret.trim()));

    let one = run(&e, &["don-config", "--feed", "ETH-USD"]);
    let printed: Value = serde_json::from_str(&stdout(&one)).expect("JSON");
    assert_eq!(printed["feeds"].as_array().map(Vec::len), Some(1));
    let unknown = run(&e, &["don-config", "--feed", "NOPE"]);
    assert_ne!(code(&unknown), 0);
    assert_contains(&stderr(&unknown), "NOPE");
}

#[test]
fn a_node_number_outside_the_configuration_is_refused_by_name() {
    let e = Enclave::new();
    for node in ["0", "6"] {
        let out = run(&e, &["node", "--node", node]);
        assert_ne!(code(&out), 0);
        assert_contains(
            &stderr(&out),
            &format!("node {node} is not in this configuration"),
        );
    }
}
