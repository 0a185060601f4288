//! What the benchmarks that boot the enclave share: a signed configuration from the example,
//! trivial longruns, waiting, and a process's resident memory.

// Each bench compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use enclave::config::signature::{self, PrivateKey};
use serde_json::{json, Value};

/// `configuration.example.json`'s `solution` without its signature, changed by `edit`, signed
/// with the development key and written to `path`.
pub fn write_signed_config(repo: &Path, path: &Path, edit: impl FnOnce(&mut Value)) {
    let text = fs::read_to_string(repo.join("configuration.example.json")).expect("example");
    let mut document: Value = serde_json::from_str(&text).expect("json");
    let solution = document["solution"].as_object_mut().expect("object");
    solution.shift_remove("signature");
    let mut payload = Value::Object(solution.clone());
    edit(&mut payload);
    let key_text =
        fs::read_to_string(repo.join("scripts/dev-keys/INSECURE-DEV-ONLY.configuration.key"))
            .expect("key");
    let key = PrivateKey::from_pkcs8_text(&key_text).expect("key parses");
    let signed = signature::sign(&payload, &key).expect("sign");
    payload["signature"] = Value::String(signed.signature_b64);
    fs::write(
        path,
        serde_json::to_string(&json!({ "solution": payload })).expect("json"),
    )
    .expect("write");
}

/// Installs the public key and the signed configuration under `root`, where `enclave init`
/// looks for them.
pub fn install_config(repo: &Path, root: &Path, edit: impl FnOnce(&mut Value)) {
    fs::create_dir_all(root.join("etc/enclave")).expect("mkdir");
    fs::create_dir_all(root.join("sp/configurations")).expect("mkdir");
    fs::copy(
        repo.join("scripts/dev-keys/configuration.pub"),
        root.join("etc/enclave/configuration.pub"),
    )
    .expect("key");
    let path = root.join("sp/configurations/configuration.json");
    write_signed_config(repo, &path, edit);
}

/// `count` longruns `svc-00`, `svc-01`, … under `services`, each sleeping for ever.
pub fn install_sleepers(services: &Path, count: usize) {
    for i in 0..count {
        let svc = services.join(format!("svc-{i:02}"));
        fs::create_dir_all(&svc).expect("mkdir");
        fs::write(svc.join("type"), "longrun\n").expect("type");
        fs::write(svc.join("run"), "#!/bin/sh\nexec sleep 100000\n").expect("run");
        fs::set_permissions(svc.join("run"), fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// `enclave --root <root> init --services <services>`, its output discarded.
pub fn spawn_init(root: &Path, services: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_enclave"))
        .args([
            "--root",
            root.to_str().expect("utf-8"),
            "init",
            "--services",
        ])
        .arg(services)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("init starts")
}

pub fn wait(timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// VmRSS of `pid` in KiB; 0 when it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A development CA for the simulated evidence provider, written into `dir`: (key, certificate).
pub fn dev_ca(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("cert");
    let ca_key = dir.join("dev-ca.key");
    let ca_cert = dir.join("dev-ca.pem");
    fs::write(&ca_key, key.serialize_pem()).expect("key");
    fs::write(&ca_cert, cert.pem()).expect("cert");
    (ca_key, ca_cert)
}
