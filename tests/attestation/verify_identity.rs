//! `enclave verify-identity`: a matching set (identity document, TDX quote, RTMR3 event log,
//! configuration, verifying key) is accepted, and each kind of mismatch is rejected with a
//! line saying what does not hold. The quotes are synthetic (the real layout, no signature).

use crate::common;
use crate::support::fixture;

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use common::{assert_contains, code, has_line, stderr, stdout};
use enclave::attestation::identity::{
    Attestation, AttestationStatus, Identity, IdentityDigests, IdentityDocument, IdentityInputs,
    QuoteRecord, RtmrRecord,
};
use enclave::attestation::quote_builder::{synthetic_quote, QuoteSpec};
use enclave::attestation::rtmr::{self, RtmrEvent};
use enclave::config::signature::{self, PrivateKey, PublicKey, Scheme};
use enclave::config::{read_document, verify_document};
use enclave::keys::KeyStore;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// A consistent set, as an enclave on a TDX guest would leave it, in a temporary directory.
struct Set {
    dir: tempfile::TempDir,
    document: IdentityDocument,
    digests: IdentityDigests,
    quote: QuoteSpec,
}

/// Re-signs the configuration file at `path` after `change` (a valid signature over other
/// content).
fn resign(path: &Path, change: impl FnOnce(&mut Value)) {
    let mut document: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
    let solution = document["solution"].as_object_mut().expect("object");
    solution.shift_remove("signature");
    let mut payload = Value::Object(solution.clone());
    change(&mut payload);
    let key_text = std::fs::read_to_string(common::dev_private_key_path()).expect("key");
    let key = PrivateKey::from_pkcs8_text(&key_text).expect("key");
    let signed = signature::sign(&payload, &key).expect("sign");
    payload["signature"] = Value::String(signed.signature_b64);
    std::fs::write(
        path,
        serde_json::to_string_pretty(&serde_json::json!({"solution": payload})).expect("json"),
    )
    .expect("write");
}

impl Set {
    fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// A set whose configuration is the example's after `change`, signed with the dev key.
    fn with_config(change: impl FnOnce(&mut Value)) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("configuration.json");
        std::fs::copy(common::example_path(), &config).expect("config");
        resign(&config, change);
        let key_text = std::fs::read_to_string(common::dev_public_key_path()).expect("key");
        let key = PublicKey::from_base64_spki(&key_text).expect("key");
        let verified =
            verify_document(&read_document(&config).expect("read"), &key).expect("signed");
        let nodes = KeyStore::new(dir.path().join("secrets"))
            .ensure_all(&[1, 2, 3, 4, 5])
            .expect("keys");
        let identity = Identity::build(IdentityInputs {
            boot_time: UNIX_EPOCH + Duration::from_secs(1_750_000_000),
            boot_id: [0x1d; 16],
            config_digest: &verified.digest_hex,
            scheme: verified.scheme,
            verifying_key: key_text.trim(),
            insecure_key: false,
            image_digest: Some("sha256:0123".into()),
            binary_sha256: Some("cd".repeat(32)),
            nodes: &nodes,
            order_certificate: None,
            provider: "tdx",
            insecure: false,
        });
        let mut set = Self {
            dir,
            document: IdentityDocument::new(identity).expect("document"),
            digests: IdentityDigests {
                sha512: [0; 64],
                sha384: [0; 48],
            },
            quote: QuoteSpec::default(),
        };
        set.seal();
        set
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Recomputes the digests, the event log and the quote from the identity, and writes all
    /// files: what an enclave would have produced for this identity.
    fn seal(&mut self) {
        self.digests = self.document.identity.digests().expect("digests");
        self.document.digests = self.digests.recorded();
        // RTMR3 had been extended once by something else before the enclave's event.
        let before = rtmr::extended(&[0; 48], &[0x11; 48]);
        let after = rtmr::extended(&before, &self.digests.sha384);
        let event = RtmrEvent {
            time: "2025-06-15T15:06:40Z".into(),
            rtmr: 3,
            event: "enclave-identity".into(),
            boot_id: self.document.identity.boot_id.clone(),
            digest: hex::encode(self.digests.sha384),
            rtmr_before: Some(hex::encode(before)),
            rtmr_after: Some(hex::encode(after)),
        };
        let _ = std::fs::remove_file(self.path("identity-events.jsonl"));
        rtmr::append_event(&self.path("identity-events.jsonl"), &event).expect("log");
        self.quote = QuoteSpec {
            report_data: self.digests.sha512,
            rtmr3: after,
            ..QuoteSpec::default()
        };
        self.write_quote(&self.quote.clone());
        let quote = std::fs::read(self.path("identity.quote")).expect("quote");
        self.document.attestation = Attestation {
            status: AttestationStatus::Quoted,
            reason: None,
            quote: Some(QuoteRecord {
                file: "identity.quote".into(),
                sha256: hex::encode(Sha256::digest(&quote)),
                bytes: quote.len(),
                provider: "tdx_guest".into(),
            }),
            rtmr3: Some(RtmrRecord {
                extended: true,
                event_log: "identity-events.jsonl".into(),
                value: Some(hex::encode(after)),
                reason: None,
            }),
            self_check: None,
        };
        self.write_document();
    }

    fn write_document(&self) {
        std::fs::write(self.path("identity.json"), self.document.to_pretty_json()).expect("write");
    }

    fn write_quote(&self, spec: &QuoteSpec) {
        std::fs::write(self.path("identity.quote"), synthetic_quote(spec)).expect("quote");
    }

    /// Re-signs the configuration file after `change` (a valid signature over other content).
    fn resign_config(&self, change: impl FnOnce(&mut Value)) {
        resign(&self.path("configuration.json"), change);
    }

    fn verify(&self, extra: &[&str]) -> std::process::Output {
        self.verify_with_key(common::dev_public_key_path().as_path(), extra)
    }

    fn verify_with_key(&self, key: &Path, extra: &[&str]) -> std::process::Output {
        let s = |p: PathBuf| p.to_str().expect("utf-8").to_owned();
        let config = s(self.path("configuration.json"));
        let identity = s(self.path("identity.json"));
        let quote = s(self.path("identity.quote"));
        let log = s(self.path("identity-events.jsonl"));
        let key = key.to_str().expect("utf-8");
        let mut args = vec![
            "--config",
            &config,
            "verify-identity",
            &identity,
            "--quote",
            &quote,
            "--event-log",
            &log,
            "--public-key-file",
            key,
        ];
        args.extend_from_slice(extra);
        common::enclave(&args)
    }
}

/// Runs the verification and asserts it failed with a FAIL line containing `expected`.
fn assert_rejected(out: std::process::Output, expected: &str) {
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}{}", stderr(&out));
    assert!(
        has_line(&text, "FAIL", &[expected]),
        "no FAIL line with {expected:?} in:\n{text}"
    );
    assert_contains(&text, "identity NOT verified");
}

#[test]
fn a_matching_set_is_accepted_and_every_check_is_named() {
    let set = Set::new();
    let out = set.verify(&[]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    for holds in [
        "the recorded digests are those of the identity",
        "the verifying key is the expected one",
        "the configuration's signature is valid (native-ed25519)",
        "the configuration digest",
        "the identity lists the configuration's 5 nodes",
        "TDX quote v4 (TEE type 0x81)",
        "the quote's REPORTDATA is the identity's SHA-512",
        "the TD is not in debug mode",
        "the quote's SHA-256 is the one the document records",
        "the RTMR3 event log records this identity's SHA-384",
        "the RTMR3 event log replays (1 events)",
        "the quote's RTMR3 equals the replayed event log",
    ] {
        assert!(
            has_line(&text, "PASS", &[holds]),
            "no PASS line with {holds:?} in:\n{text}"
        );
    }
    assert!(!text.contains("FAIL"), "{text}");
    assert_contains(&text, "NOT verified here");
    // RTMR3 had been extended before the log began: said, as the log cannot explain it.
    assert_contains(&text, "not zero");
    assert_contains(&text, "identity verified");
    // The digest it prints is the recorded one.
    assert_contains(&text, &set.document.digests.sha512);
}

#[test]
fn the_document_alone_verifies_and_says_what_was_not_checked() {
    let set = Set::new();
    let out = common::enclave(&[
        "verify-identity",
        set.path("identity.json").to_str().expect("utf-8"),
    ]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    assert_contains(&text, "the configuration was not checked");
    assert_contains(&text, "no quote given");
    assert_contains(&text, "not compared with an expected one");
}

#[test]
fn an_edited_identity_is_rejected() {
    // Edited, digests left alone: they no longer match, and the quote binds something else.
    let mut set = Set::new();
    set.document.identity.nodes[2].transmitter_address =
        "0x000000000000000000000000000000000000dEaD".into();
    set.write_document();
    let out = set.verify(&[]);
    assert_rejected(
        set.verify(&[]),
        "the recorded digests are not those of the identity",
    );
    assert_rejected(out, "does not bind this identity");

    // Edited with its digests recomputed: the quote still binds the original.
    let mut set = Set::new();
    set.document.identity.nodes[1].peer_id = set.document.identity.nodes[3].peer_id.clone();
    let digests = set.document.identity.digests().expect("digests");
    set.document.digests = digests.recorded();
    set.write_document();
    assert_rejected(set.verify(&[]), "does not bind this identity");
}

#[test]
fn a_quote_that_does_not_bind_the_identity_is_rejected() {
    let set = Set::new();
    let mut other = set.quote.clone();
    other.report_data[0] ^= 1;
    set.write_quote(&other);
    assert_rejected(set.verify(&[]), "does not bind this identity");
}

#[test]
fn a_quote_other_than_the_recorded_one_is_rejected() {
    let set = Set::new();
    // Same REPORTDATA, but another quote than the document records (a v5 one).
    set.write_quote(&QuoteSpec {
        version: 5,
        ..set.quote.clone()
    });
    assert_rejected(set.verify(&[]), "the document records");
}

#[test]
fn a_quote_that_is_not_tdx_or_from_a_debug_td_is_rejected() {
    let set = Set::new();
    set.write_quote(&QuoteSpec {
        tee_type: 0,
        ..set.quote.clone()
    });
    assert_rejected(set.verify(&[]), "not Intel TDX");
    set.write_quote(&QuoteSpec {
        td_attributes: [1, 0, 0, 0, 0, 0, 0, 0],
        ..set.quote.clone()
    });
    assert_rejected(set.verify(&[]), "DEBUG mode");
    std::fs::write(set.path("identity.quote"), b"not a quote").expect("write");
    assert_rejected(set.verify(&[]), "the quote is not a TDX quote");
}

#[test]
fn another_configuration_is_rejected() {
    // Changed and signed again with the same key: the signature holds, the digest does not.
    let set = Set::new();
    set.resign_config(|s| s["pgPort"] = serde_json::json!(5433));
    assert_rejected(set.verify(&[]), "the configuration digest is");
    // Changed without signing: the signature fails.
    let set = Set::new();
    let path = set.path("configuration.json");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replacen("\"pgPort\": 5432", "\"pgPort\": 5433", 1),
    )
    .expect("write");
    assert_ne!(
        std::fs::read_to_string(&path).expect("read"),
        text,
        "the example sets pgPort 5432"
    );
    assert_rejected(set.verify(&[]), "signature does not verify");
}

#[test]
fn another_expected_key_is_rejected() {
    let set = Set::new();
    let other = PrivateKey::generate(Scheme::Native)
        .expect("key")
        .public_key()
        .to_base64_spki();
    let key = set.path("other.pub");
    std::fs::write(&key, format!("{other}\n")).expect("write");
    let out = set.verify_with_key(&key, &[]);
    let text = stdout(&out);
    assert_rejected(out, "the verifying key is");
    assert_contains(&text, "signature does not verify");
}

#[test]
fn a_development_run_is_rejected() {
    let mut set = Set::new();
    set.document.identity.configuration.insecure_key = true;
    set.seal();
    assert_rejected(set.verify(&[]), "--insecure-public-key-file");
}

#[test]
fn an_event_log_that_does_not_replay_to_the_quote_is_rejected() {
    let set = Set::new();
    let log = set.path("identity-events.jsonl");
    let text = std::fs::read_to_string(&log).expect("log");
    let mut event: Value = serde_json::from_str(text.trim()).expect("json");
    event["digest"] = Value::String("ab".repeat(48));
    std::fs::write(&log, format!("{event}\n")).expect("write");
    let out = set.verify(&[]);
    let text = stdout(&out);
    assert_rejected(out, "does not replay");
    assert_contains(&text, "has no event with this identity's SHA-384");
    // A consistent log for another register value: replays, but not to the quote's RTMR3.
    let other = rtmr::extended(&[0; 48], &[0x22; 48]);
    event["digest"] = Value::String(hex::encode([0x22; 48]));
    event["rtmrBefore"] = Value::String(hex::encode([0; 48]));
    event["rtmrAfter"] = Value::String(hex::encode(other));
    std::fs::write(&log, format!("{event}\n")).expect("write");
    assert_rejected(set.verify(&[]), "the quote's RTMR3 is");
}

#[test]
fn a_document_that_is_not_an_identity_is_rejected() {
    let set = Set::new();
    std::fs::write(set.path("identity.json"), "{\"identity\": 1}").expect("write");
    assert_rejected(set.verify(&[]), "no \"identity\" object");
    std::fs::write(set.path("identity.json"), "not json").expect("write");
    assert_rejected(set.verify(&[]), "not valid JSON");
    let text = set.document.to_pretty_json();
    // A duplicate key: two readers could see two identities.
    std::fs::write(
        set.path("identity.json"),
        text.replacen("{", "{\"digests\": {}, ", 1),
    )
    .expect("write");
    assert_rejected(set.verify(&[]), "not valid JSON");
}

/// A measurement record allowing the synthetic quote's registers and this set's identity.
fn record(set: &Set, id: &str) -> Value {
    let hex48 = |b: u8| hex::encode([b; 48]);
    serde_json::json!({
        "measurement_id": id,
        "attestation_type": "dcap-tdx",
        "measurements": {
            "mrtd": {"expected_any": [hex48(0x7d)]},
            "rtmr0": {"expected_any": [hex48(0)]},
            "rtmr1": {"expected_any": [hex48(0)]},
            "rtmr2": {"expected_any": [hex48(0)]},
        },
        "identity": {
            "configuration_digest": {"expected_any": [set.document.identity.configuration.digest]},
            "binary_sha256": {"expected_any": ["cd".repeat(32)]},
            "image_digest": {"expected_any": ["sha256:0123"]},
        }
    })
}

impl Set {
    fn write_measurements(&self, records: Value) -> String {
        let path = self.path("measurements.json");
        std::fs::write(&path, records.to_string()).expect("write");
        path.to_str().expect("utf-8").to_owned()
    }
}

#[test]
fn allowed_measurements_from_a_file_are_compared_with_the_quote_and_the_identity() {
    let set = Set::new();
    let file = set.write_measurements(serde_json::json!([record(&set, "this image")]));
    let out = set.verify(&["--measurements", &file]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "PASS  allowed by measurement record \"this image\" (from {file}): MRTD, RTMR0, RTMR1, RTMR2, MRCONFIGID, MROWNER, MROWNERCONFIG, identity.configuration.digest, identity.software.binarySha256, identity.software.imageDigest"
        )),
        "{text}"
    );
    // Without a file or a configuration that names them, the report says so.
    let text = stdout(&set.verify(&[]));
    assert_contains(
        &text,
        "note  the measurements were not compared with allowed values",
    );

    // Each register and identity fact must match; OR across records.
    let mut other_image = record(&set, "other image");
    other_image["measurements"]["mrtd"] = serde_json::json!({"expected_any": ["ab".repeat(48)]});
    let mut other_binary = record(&set, "other binary");
    other_binary["identity"]["binary_sha256"] =
        serde_json::json!({"expected_any": ["ef".repeat(32)]});
    let file = set.write_measurements(serde_json::json!([other_image, other_binary]));
    let out = set.verify(&["--measurements", &file]);
    let text = stdout(&out);
    assert_rejected(out, "no allowed measurement record");
    assert!(
        text.contains(&format!(
            "record \"other image\": MRTD is {}",
            "7d".repeat(48)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "record \"other binary\": identity.software.binarySha256 is \"{}\"",
            "cd".repeat(32)
        )),
        "{text}"
    );
    let file = set.write_measurements(serde_json::json!([other_image, record(&set, "this image")]));
    let out = set.verify(&["--measurements", &file]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn allowed_measurements_come_from_the_configuration_when_no_file_is_given() {
    // A configuration cannot name its own digest: the record pins the image and the software.
    let probe = Set::new();
    let mut allowed = record(&probe, "this image");
    allowed["identity"]
        .as_object_mut()
        .expect("object")
        .remove("configuration_digest");
    let set = Set::with_config(|s| {
        s["attestation"] = serde_json::json!({"allowedMeasurements": [allowed]});
    });
    let out = set.verify(&[]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    assert_contains(&text, "allowed by measurement record \"this image\" (from the configuration's attestation.allowedMeasurements)");
    let mut other = record(&probe, "old image");
    other["measurements"]["rtmr1"] = serde_json::json!({"expected_any": ["01".repeat(48)]});
    other["identity"]
        .as_object_mut()
        .expect("object")
        .remove("configuration_digest");
    let set = Set::with_config(|s| {
        s["attestation"] = serde_json::json!({"allowedMeasurements": [other]});
    });
    assert_rejected(set.verify(&[]), "RTMR1 is 0000");
}

#[test]
fn a_real_quote_is_verified_with_its_collateral_and_must_still_bind_the_identity() {
    let set = Set::new();
    std::fs::copy(fixture("tdx_quote"), set.path("identity.quote")).expect("copy");
    let collateral = fixture("tdx_quote_collateral.json");
    let out = set.verify(&["--collateral", &collateral, "--at", "2025-07-01T00:00:00Z"]);
    let text = stdout(&out);
    for holds in [
        "the quote's signatures verify to Intel's SGX root CA (PCK chain and CRLs, QE identity, TCB Info) as of 2025-07-01T00:00:00Z; collateral valid until 2025-07-19T10:00:34Z (PCK CRL expires first)",
        "the policy accepts the quote (TCB status UpToDate)",
    ] {
        assert!(
            has_line(&text, "PASS", &[holds]),
            "no PASS line with {holds:?} in:\n{text}"
        );
    }
    assert_contains(&text, "note  TCB status UpToDate (advisories: none); FMSPC B0C06F000000, PCK CA platform; platform flags: dynamic-platform true, cached-keys true, smt true");
    // Intel signed it, but for another TD's REPORTDATA.
    assert_rejected(out, "does not bind this identity");
    assert!(!text.contains("NOT verified here"), "{text}");

    // The policy applies: a refused platform flag fails, a TD 1.5ex quote is read too.
    let out = set.verify(&[
        "--collateral",
        &collateral,
        "--at",
        "2025-07-01T00:00:00Z",
        "--refuse-platform-flag",
        "smt",
    ]);
    assert_rejected(out, "platform flag smt is set and the policy refuses it");
    std::fs::copy(fixture("tdx_quote_td15ex"), set.path("identity.quote")).expect("copy");
    let out = set.verify(&[
        "--collateral",
        &fixture("tdx_quote_td15ex_collateral.json"),
        "--at",
        "2026-10-20T00:00:00Z",
    ]);
    let text = stdout(&out);
    assert_contains(
        &text,
        "PASS  TDX quote v5 (TEE type 0x81, body type 4), 5247 bytes",
    );
    assert_contains(&text, "PASS  the quote's signatures verify");
}

#[test]
fn with_collateral_a_quote_without_intels_signature_or_with_expired_collateral_fails() {
    let set = Set::new();
    let collateral = fixture("tdx_quote_collateral.json");
    // The synthetic quote has the layout but no signature data a verifier can read.
    assert_rejected(
        set.verify(&["--collateral", &collateral, "--at", "2025-07-01T00:00:00Z"]),
        "the quote is not a DCAP quote",
    );
    std::fs::copy(fixture("tdx_quote"), set.path("identity.quote")).expect("copy");
    let late = [
        "--collateral",
        collateral.as_str(),
        "--at",
        "2025-07-21T10:00:34Z",
    ];
    assert_rejected(
        set.verify(&late),
        "the collateral expired at 2025-07-19T10:00:34Z",
    );
    let mut graced = late.to_vec();
    graced.extend_from_slice(&["--collateral-grace", "3d"]);
    let text = stdout(&set.verify(&graced));
    assert_contains(&text, "note  the collateral expired 2days before 2025-07-21T10:00:34Z; accepted within the grace of 3days");
    assert_contains(&text, "PASS  the quote's signatures verify");
}

#[test]
fn verification_inputs_that_cannot_be_read_exit_65() {
    let set = Set::new();
    let missing = set.path("missing.json");
    let missing = missing.to_str().expect("utf-8");
    let out = set.verify(&["--collateral", missing]);
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert_contains(&stderr(&out), "cannot read the collateral");
    let file =
        set.write_measurements(serde_json::json!([{"measurement_id": "x", "measurements": {}}]));
    let out = set.verify(&["--measurements", &file]);
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert_contains(&stderr(&out), "$[0].measurements.mrtd: is required");
}

#[test]
fn without_a_quote_only_the_identity_facts_are_compared_and_said() {
    let set = Set::new();
    let out = common::enclave(&[
        "verify-identity",
        set.path("identity.json").to_str().expect("utf-8"),
        "--measurements",
        &set.write_measurements(serde_json::json!([record(&set, "this image")])),
    ]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    assert!(
        text.contains("PASS  allowed by measurement record \"this image\"")
            && text.contains("): identity.configuration.digest, identity.software.binarySha256, identity.software.imageDigest"),
        "{text}"
    );
    assert!(
        text.contains(
            "note  the registers (MRTD, RTMR0-2, …) were not compared: no readable quote"
        ),
        "{text}"
    );
    // A record that pins no identity fact compares nothing without a quote: never a PASS.
    let mut bare = record(&set, "image only");
    bare.as_object_mut().expect("object").remove("identity");
    let out = common::enclave(&[
        "verify-identity",
        set.path("identity.json").to_str().expect("utf-8"),
        "--measurements",
        &set.write_measurements(serde_json::json!([bare])),
    ]);
    let text = stdout(&out);
    assert_contains(
        &text,
        "note  nothing compared with measurement record \"image only\"",
    );
    assert!(!text.contains("PASS  allowed by"), "{text}");
}
