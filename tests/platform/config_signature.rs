//! The configuration's signature: the example verifies with the dev key, any change of any
//! value is rejected, formatting is not.

use crate::common;

use common::*;
use enclave::config::signature::PublicKey;
use enclave::config::{verify_document, ConfigError};
use serde_json::Value;

fn dev_key() -> PublicKey {
    let text = std::fs::read_to_string(dev_public_key_path()).expect("dev public key");
    PublicKey::from_base64_spki(&text).expect("valid dev public key")
}

#[test]
fn the_example_verifies_with_the_dev_key() {
    let document = read_json(&example_path());
    let verified =
        verify_document(&document, &dev_key()).expect("example is signed with the dev key");
    assert_eq!(verified.digest_hex.len(), 64);
}

#[test]
fn changing_any_leaf_value_of_the_example_invalidates_the_signature() {
    let document = read_json(&example_path());
    let key = dev_key();
    let mut pointers = Vec::new();
    leaves(&document["solution"], "/solution".into(), &mut pointers);
    pointers.retain(|p| p != "/solution/signature");
    assert!(
        pointers.len() > 100,
        "the example should be rich: {} leaves",
        pointers.len()
    );
    for pointer in pointers {
        let mut changed = document.clone();
        let slot = changed
            .pointer_mut(&pointer)
            .expect("pointer from leaves()");
        *slot = tampered(slot);
        match verify_document(&changed, &key) {
            Err(ConfigError::Signature(_)) => {}
            other => panic!("changing {pointer} was not rejected: {other:?}"),
        }
    }
}

#[test]
fn adding_or_removing_a_member_invalidates_the_signature() {
    let document = read_json(&example_path());
    let key = dev_key();
    let mut added = document.clone();
    added["solution"]["priceAggregatorConfig"]["sources"]["bybit"] = serde_json::json!({});
    assert!(verify_document(&added, &key).is_err());
    let mut removed = document.clone();
    removed["solution"]
        .as_object_mut()
        .expect("object")
        .shift_remove("consensus");
    assert!(verify_document(&removed, &key).is_err());
}

#[test]
fn key_order_and_whitespace_do_not_matter() {
    let document = read_json(&example_path());
    // serde_json without preserve_order would sort; reverse every object's keys by hand.
    fn reversed(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .rev()
                    .map(|(k, v)| (k.clone(), reversed(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(reversed).collect()),
            other => other.clone(),
        }
    }
    let compact = serde_json::to_string(&reversed(&document)).expect("serialises");
    let reparsed = enclave::config::json::parse_strict(&compact).expect("parses");
    verify_document(&reparsed, &dev_key()).expect("reordered, compacted copy still verifies");
}

#[test]
fn a_signature_from_another_key_is_rejected() {
    let other = enclave::config::signature::PrivateKey::generate(
        enclave::config::signature::Scheme::Native,
    )
    .expect("keygen");
    let document = read_json(&example_path());
    let err = verify_document(&document, &other.public_key()).expect_err("wrong key");
    assert_eq!(err.exit_code(), 77);
}

#[test]
fn missing_empty_and_garbage_signatures_are_rejected_with_77() {
    let key = dev_key();
    let document = read_json(&example_path());
    let cases: Vec<(&str, Option<Value>)> = vec![
        ("missing", None),
        ("empty", Some(Value::from(""))),
        ("null", Some(Value::Null)),
        ("number", Some(Value::from(5))),
        ("not base64", Some(Value::from("!!!not base64!!!"))),
        ("base64 garbage", Some(Value::from("aGVsbG8gd29ybGQ="))),
        ("truncated", None),
    ];
    for (name, replacement) in cases {
        let mut d = document.clone();
        let solution = d["solution"].as_object_mut().expect("object");
        match (name, replacement) {
            ("truncated", _) => {
                let sig = solution["signature"].as_str().expect("string").to_owned();
                solution.insert("signature".into(), Value::from(&sig[..sig.len() / 2]));
            }
            (_, None) => {
                solution.shift_remove("signature");
            }
            (_, Some(v)) => {
                solution.insert("signature".into(), v);
            }
        }
        let err = verify_document(&d, &key).expect_err(name);
        assert_eq!(err.exit_code(), 77, "{name}: {err}");
    }
}
