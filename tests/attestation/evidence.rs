//! Evidence providers, key birth evidence and `GET /v1/identity`, with real `enclave` processes:
//! the simulated provider (a development CA made here) on a dev chain, refused elsewhere; a
//! Super Protocol-shaped order certificate chain made here, accepted with its root and refused
//! with another; keys planted before the first boot reported as having no birth evidence.

use crate::common;
use crate::support::{
    boot_and_wait_for_identity, ca, identity_path, simulated_attestation, write, Issued,
};

use std::path::Path;
use std::time::Duration;

use common::harness::Enclave;
use common::{assert_contains, code, stdout};
use enclave::attestation::identity::AttestationStatus;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

fn issue(name: &str, is_ca: bool, issuer: &Issued) -> Issued {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    if is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let key = KeyPair::generate().expect("key");
    let issuer_cert = rcgen::Issuer::from_params(&issuer.params, &issuer.key);
    let cert = params
        .clone()
        .signed_by(&key, &issuer_cert)
        .expect("signed");
    Issued { cert, params, key }
}

fn verify(e: &Enclave, extra: &[&str]) -> std::process::Output {
    let document = identity_path(e);
    let mut args = vec![
        "verify-identity",
        document.to_str().expect("utf-8"),
        "--require-birth",
    ];
    args.extend_from_slice(extra);
    common::enclave(&args)
}

/// An enclave on the dev chain id with the simulated provider and a CA written into `dir`.
fn simulated_enclave(dir: &Path, dev_ca: &Issued) -> Enclave {
    let attestation = simulated_attestation(dir, dev_ca);
    let e = Enclave::new();
    e.configure(|s| {
        s["chainlinkChainId"] = json!(1337);
        s["attestation"] = attestation;
    });
    e
}

#[test]
fn simulated_evidence_on_a_dev_chain_is_insecure_loud_served_and_verifies_only_when_allowed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dev_ca = ca("enclave development CA");
    let mut e = simulated_enclave(tmp.path(), &dev_ca);
    let document = boot_and_wait_for_identity(&mut e, T);
    assert_eq!(document.identity.evidence.provider, "simulated");
    assert!(document.identity.evidence.insecure);
    assert_eq!(document.attestation.status, AttestationStatus::Simulated);
    assert_eq!(document.birth.len(), 5);
    assert!(
        document.birth.iter().all(|b| b.present()),
        "{:?}",
        document.birth
    );
    for node in 1..=5 {
        let birth = e.root.join(format!("sp/secrets/node-{node}/birth.json"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&birth)
            .expect("birth.json")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "node {node}");
    }
    assert_contains(&e.logs(), "SIMULATED attestation");

    // Served on the supervisor's port, as written, with the metrics beside it.
    let port = e.port("supervisor");
    let (status, body) = Enclave::http_get(port, "/v1/identity").expect("answer");
    assert_eq!(status, 200, "{body}");
    let served: Value = serde_json::from_str(&body).expect("json");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(identity_path(&e)).expect("file"))
            .expect("json");
    assert_eq!(served, written);
    assert_eq!(served["evidence"]["provider"], json!("simulated"));
    let (_, metrics) = Enclave::http_get(port, "/metrics").expect("metrics");
    assert_contains(&metrics, "enclave_attestation_insecure 1");
    assert_contains(
        &metrics,
        "enclave_attestation_provider_info{provider=\"simulated\"} 1",
    );
    assert_contains(&metrics, "enclave_key_birth_evidence{node=\"3\"} 1");

    let ca_file = tmp.path().join("dev-ca.pem");
    let ca_path = ca_file.to_str().expect("utf-8");
    let out = verify(&e, &["--trusted-ca", ca_path, "--allow-simulated"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).contains("node 5's keys were born with simulated evidence"));
    // Without the explicit allowance: refused, however well signed.
    let out = verify(&e, &["--trusted-ca", ca_path]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert_contains(&stdout(&out), "FAIL  the identity is INSECURE");
    // Another development CA is not this one.
    let other = tmp.path().join("other-ca.pem");
    write(&other, &ca("another CA").cert.pem());
    let out = verify(
        &e,
        &[
            "--trusted-ca",
            other.to_str().expect("utf-8"),
            "--allow-simulated",
        ],
    );
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("is not one given with --trusted-ca"));
    e.stop_cleanly(T);
}

#[test]
fn the_simulated_key_comes_from_its_file_and_without_it_there_is_no_evidence() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dev_ca = ca("enclave development CA");
    let mut e = simulated_enclave(tmp.path(), &dev_ca);
    std::fs::remove_file(tmp.path().join("dev-ca.key")).expect("remove the key");
    let document = boot_and_wait_for_identity(&mut e, T);
    assert_eq!(document.attestation.status, AttestationStatus::Unavailable);
    let reason = document.attestation.reason.clone().unwrap_or_default();
    assert_contains(&reason, "dev-ca.key");
    assert!(document.evidence.is_none());
    assert!(document.birth.iter().all(|b| !b.present()));
    // Nothing in the binary could have stood in for it: it holds no private key at all.
    let binary = std::fs::read(env!("CARGO_BIN_EXE_enclave")).expect("binary");
    for marker in [&b"BEGIN PRIVATE KEY"[..], b"BEGIN EC PRIVATE KEY"] {
        assert!(
            !binary.windows(marker.len()).any(|w| w == marker),
            "the binary contains {}",
            String::from_utf8_lossy(marker)
        );
    }
    e.stop_cleanly(T);
}

#[test]
fn the_simulated_provider_is_refused_on_a_chain_that_is_not_a_dev_chain() {
    let tmp = tempfile::tempdir().expect("tmp");
    let e = simulated_enclave(tmp.path(), &ca("dev"));
    let config = e.config_path();
    let mut document: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("json");
    let attestation = document["solution"]["attestation"].clone();
    e.configure(|s| {
        s["chainlinkChainId"] = json!(56);
        s["attestation"] = attestation;
    });
    document =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("json");
    assert_eq!(document["solution"]["chainlinkChainId"], json!(56));
    let out = common::enclave(&["config", "check", config.to_str().expect("utf-8")]);
    assert_ne!(code(&out), 0, "{}", stdout(&out));
    let text = format!("{}{}", stdout(&out), common::stderr(&out));
    assert_contains(&text, "solution.attestation.provider: \"simulated\" proves nothing (no TEE) and is refused on chain 56");
}

#[test]
fn keys_planted_before_the_first_boot_have_no_birth_evidence() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dev_ca = ca("enclave development CA");
    let mut e = simulated_enclave(tmp.path(), &dev_ca);
    // Someone with the secrets volume puts node 2's keys there before the enclave ever ran.
    let secrets = e.root.join("sp/secrets/node-2");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    for (file, byte) in [
        ("offchain.key", "11"),
        ("onchain.key", "22"),
        ("transmitter.key", "33"),
        ("config.key", "44"),
    ] {
        write(&secrets.join(file), &format!("{}\n", byte.repeat(32)));
    }
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(&secrets).expect("dir") {
        let path = entry.expect("entry").path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let document = boot_and_wait_for_identity(&mut e, T);
    let node2 = document.birth.iter().find(|b| b.node == 2).expect("node 2");
    assert!(!node2.present());
    assert!(!e.root.join("sp/secrets/node-2/birth.json").exists());
    assert!(document
        .birth
        .iter()
        .filter(|b| b.node != 2)
        .all(|b| b.present()));
    let ca_file = tmp.path().join("dev-ca.pem");
    let ca_path = ca_file.to_str().expect("utf-8");
    let out = verify(&e, &["--trusted-ca", ca_path, "--allow-simulated"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert_contains(&stdout(&out), "FAIL  node 2: NO BIRTH EVIDENCE");
    // Without --require-birth it is still said, as a note, and never as attested.
    let document_path = identity_path(&e);
    let out = common::enclave(&[
        "verify-identity",
        document_path.to_str().expect("utf-8"),
        "--trusted-ca",
        ca_path,
        "--allow-simulated",
    ]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).contains("note  node 2: NO BIRTH EVIDENCE"));
    assert!(!stdout(&out).contains("node 2's keys were born"));
    e.stop_cleanly(T);
}

#[test]
fn an_identity_signed_with_an_order_certificate_verifies_to_its_root_and_not_to_another() {
    let root_ca = ca("Super Protocol-shaped root CA");
    let subroot = issue("Super Protocol-shaped subroot CA", true, &root_ca);
    let order = issue("order 4242", false, &subroot);
    let mut e = Enclave::new();
    write(
        &e.root.join("sp/certs/order_cert.crt"),
        &format!("{}{}", order.cert.pem(), subroot.cert.pem()),
    );
    write(
        &e.root.join("sp/certs/order_cert.key"),
        &order.key.serialize_pem(),
    );
    let document = boot_and_wait_for_identity(&mut e, T);
    assert_eq!(document.identity.evidence.provider, "superprotocol");
    assert!(!document.identity.evidence.insecure);
    assert_eq!(
        document.attestation.status,
        AttestationStatus::Signed,
        "{:?}",
        document.attestation
    );
    assert!(document.birth.iter().all(|b| b.present()));

    let tmp = tempfile::tempdir().expect("tmp");
    let root_file = tmp.path().join("root.pem");
    write(&root_file, &root_ca.cert.pem());
    let root_path = root_file.to_str().expect("utf-8");
    let out = verify(&e, &["--trusted-ca", root_path]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let text = stdout(&out);
    assert_contains(
        &text,
        "PASS  the identity: the order certificate chain verifies to the trusted",
    );
    assert_contains(
        &text,
        "PASS  the identity: signed with the order certificate's key",
    );
    assert_contains(&text, "node 4's keys were born with superprotocol evidence");

    // Another root: the chain does not verify.
    let other_file = tmp.path().join("other.pem");
    write(&other_file, &ca("Super Protocol-shaped root CA").cert.pem());
    let out = verify(&e, &["--trusted-ca", other_file.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("neither a trusted certificate nor signed by one"));
    // No root at all: not anchored.
    let out = verify(&e, &[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("not anchored"));

    // A signature by another key, with the same chain: refused.
    let mut forged: Value =
        serde_json::from_str(&std::fs::read_to_string(identity_path(&e)).expect("doc"))
            .expect("json");
    let impostor = issue("order 4242", false, &subroot);
    let impostor_key = tmp.path().join("impostor.key");
    write(&impostor_key, &impostor.key.serialize_pem());
    let signer =
        enclave::attestation::evidence::signing::SigningKey::read(&impostor_key).expect("key");
    let sha512: [u8; 64] = hex::decode(forged["digests"]["sha512"].as_str().expect("digest"))
        .expect("hex")
        .try_into()
        .expect("64 bytes");
    use base64::Engine as _;
    forged["evidence"]["signature"] = json!(
        base64::engine::general_purpose::STANDARD.encode(signer.sign(&sha512).expect("sign"))
    );
    let forged_path = tmp.path().join("forged.json");
    // `forged` is refused against the trusted root, for `reason`.
    let assert_refused = |forged: &Value, reason: &str| {
        write(
            &forged_path,
            &serde_json::to_string_pretty(forged).expect("json"),
        );
        let out = common::enclave(&[
            "verify-identity",
            forged_path.to_str().expect("utf-8"),
            "--trusted-ca",
            root_path,
        ]);
        assert_eq!(code(&out), 1, "{}", stdout(&out));
        assert_contains(&stdout(&out), reason);
    };
    assert_refused(&forged, "FAIL  the identity: the signature does not verify");
    // The impostor's own chain (its certificate in place of the order's): the chain verifies,
    // the identity no longer names that certificate.
    forged["evidence"]["certificateChain"] = json!([impostor.cert.pem(), subroot.cert.pem()]);
    assert_refused(
        &forged,
        "FAIL  the signing certificate is not the order certificate the identity names",
    );
    e.stop_cleanly(T);
}
