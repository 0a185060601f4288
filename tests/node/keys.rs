//! `enclave keys init | show` and the `node-keys` oneshot, run as an operator and the supervisor
//! run them: a signed configuration in a temporary root, the real binary.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::harness::Enclave;
use common::{assert_contains, code, stderr, stdout};
use enclave::service::state::Status;
use serde_json::{json, Value};

const KEY_FILES: [&str; 4] = [
    "offchain.key",
    "onchain.key",
    "transmitter.key",
    "config.key",
];

/// `enclave --root <root> keys <args>`, verifying with the root's installed key as a service does.
fn keys(e: &Enclave, args: &[&str]) -> Output {
    common::enclave_at(&e.root)
        .arg("keys")
        .args(args)
        .env("RUST_LOG", "debug")
        .output()
        .expect("enclave runs")
}

fn secrets_dir(e: &Enclave) -> PathBuf {
    e.root.join("sp/secrets")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// The hex of every secret under the secrets directory.
fn private_hex(dir: &Path, nodes: u32) -> Vec<String> {
    let mut out = vec![fs::read_to_string(dir.join("ocr-shared-secret")).expect("shared secret")];
    for node in 1..=nodes {
        for file in KEY_FILES {
            let path = dir.join(format!("node-{node}")).join(file);
            out.push(fs::read_to_string(path).expect("key file"));
        }
    }
    out.iter().map(|s| s.trim().to_owned()).collect()
}

fn assert_no_secret(outputs: &[&Output], secrets: &[String]) {
    for output in outputs {
        let text = format!("{}{}", stdout(output), stderr(output)).to_lowercase();
        for secret in secrets {
            assert_eq!(secret.len() % 32, 0, "{secret}");
            assert!(
                !text.contains(secret.as_str()),
                "output shows a private key"
            );
        }
    }
}

#[test]
fn keys_show_prints_the_same_public_keys_every_time_and_no_secret() {
    let e = Enclave::new();
    let first = keys(&e, &["show"]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let second = keys(&e, &["show"]);
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    assert_eq!(stdout(&first), stdout(&second));

    let dir = secrets_dir(&e);
    let shown: Value = serde_json::from_str(&stdout(&first)).expect("JSON on stdout");
    assert_eq!(
        shown["sharedSecretFile"],
        json!(dir.join("ocr-shared-secret").display().to_string())
    );
    let nodes = shown["nodes"].as_array().expect("nodes");
    // The example configuration has 5 nodes: the bootstrap and 4 oracles.
    assert_eq!(nodes.len(), 5);
    for (i, node) in nodes.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(node["node"], json!(n));
        assert_eq!(
            node["role"],
            json!(if n == 1 { "bootstrap" } else { "oracle" })
        );
        assert!(
            node["peerId"]
                .as_str()
                .expect("peerId")
                .starts_with("12D3KooW"),
            "{node}"
        );
        for field in ["onchainSigningAddress", "transmitterAddress"] {
            let address = node[field].as_str().expect("address");
            assert!(address.starts_with("0x") && address.len() == 42, "{node}");
        }
        for field in ["offchainPublicKey", "configPublicKey"] {
            assert_eq!(node[field].as_str().expect("key").len(), 64, "{node}");
        }
        // public.json holds the same public keys, without the role.
        let public: Value = serde_json::from_str(
            &fs::read_to_string(dir.join(format!("node-{n}/public.json"))).expect("public.json"),
        )
        .expect("json");
        let mut expected = node.clone();
        expected
            .as_object_mut()
            .expect("object")
            .shift_remove("role");
        assert_eq!(public, expected);
    }

    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ocr-shared-secret")), 0o600);
    for n in 1..=5 {
        let node_dir = dir.join(format!("node-{n}"));
        assert_eq!(mode(&node_dir), 0o700);
        assert_eq!(mode(&node_dir.join("public.json")), 0o644);
        for file in KEY_FILES {
            assert_eq!(mode(&node_dir.join(file)), 0o600, "node {n} {file}");
        }
    }
    assert_no_secret(&[&first, &second], &private_hex(&dir, 5));
}

#[test]
fn keys_init_generates_quietly_and_keeps_what_exists() {
    let e = Enclave::new();
    let init = keys(&e, &["init"]);
    assert_eq!(code(&init), 0, "{}", stderr(&init));
    assert_eq!(stdout(&init), "");
    let dir = secrets_dir(&e);
    let before = private_hex(&dir, 5);
    assert_no_secret(&[&init], &before);
    let again = keys(&e, &["init"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert_eq!(private_hex(&dir, 5), before);
}

#[test]
fn a_corrupted_key_file_fails_naming_it_and_is_left_alone() {
    let e = Enclave::new();
    assert_eq!(code(&keys(&e, &["init"])), 0);
    let path = secrets_dir(&e).join("node-3/transmitter.key");
    fs::write(&path, "not a key\n").expect("corrupt");
    for command in ["init", "show"] {
        let out = keys(&e, &[command]);
        assert_ne!(code(&out), 0, "{command} accepted a corrupted key");
        assert!(
            stderr(&out).contains(&path.display().to_string()),
            "{}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "", "{command}");
        assert_eq!(fs::read_to_string(&path).expect("read"), "not a key\n");
    }
}

#[test]
fn a_key_swapped_from_another_node_fails_against_public_json() {
    let e = Enclave::new();
    assert_eq!(code(&keys(&e, &["init"])), 0);
    let dir = secrets_dir(&e);
    fs::copy(
        dir.join("node-2/onchain.key"),
        dir.join("node-4/onchain.key"),
    )
    .expect("copy");
    let out = keys(&e, &["show"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let public = dir.join("node-4/public.json").display().to_string();
    assert_contains(&stderr(&out), &public);
    assert_contains(&stderr(&out), "onchainSigningAddress");
}

#[test]
fn a_bad_configuration_exits_77_or_78_and_generates_nothing() {
    let e = Enclave::new();
    // Changed after signing: the signature no longer matches.
    let path = e.config_path();
    let text = fs::read_to_string(&path).expect("config");
    let tampered = text.replacen("\"totalNodes\": \"5\"", "\"totalNodes\": \"6\"", 1);
    assert_ne!(text, tampered);
    fs::write(&path, tampered).expect("write");
    let out = keys(&e, &["show"]);
    assert_eq!(code(&out), 77, "{}", stderr(&out));
    // Signed, but not a valid configuration.
    e.configure(|s| s["totalNodes"] = json!("0"));
    let out = keys(&e, &["init"]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(!secrets_dir(&e).exists());
}

#[test]
fn the_keys_go_to_sp_secrets_dir_and_follow_total_nodes() {
    let e = Enclave::new();
    e.configure(|s| {
        s["spSecretsDir"] = json!("/sp/other-secrets");
        s["totalNodes"] = json!("6");
        s["nodesList"] = json!("1 2 3 4 5 6");
    });
    let out = keys(&e, &["show"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let shown: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(shown["nodes"].as_array().expect("nodes").len(), 6);
    let dir = e.root.join("sp/other-secrets");
    assert!(dir.join("node-6/public.json").exists());
    assert!(!secrets_dir(&e).exists());
}

#[test]
fn the_node_keys_oneshot_generates_the_keys_at_boot() {
    let mut e = Enclave::new();
    e.use_repo_services();
    e.start(&["--only", "node-keys"]);
    e.wait_status("node-keys", Status::Finished, Duration::from_secs(60));
    let dir = secrets_dir(&e);
    let secrets = private_hex(&dir, 5);
    assert_eq!(secrets.len(), 21);
    let service_log = e.root.join("var/log/node-keys/current");
    let service_log = fs::read_to_string(&service_log).expect("the service's log");
    assert_contains(&service_log, "node keys ready");
    let logs = format!("{}{service_log}", e.logs()).to_lowercase();
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "the boot logs show a private key"
        );
    }
}
