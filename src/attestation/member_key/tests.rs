use std::time::Duration;

use super::*;
use crate::config::schema::don::DonConfig;

fn member(name: &str, seed: u8, nodes: &[u32]) -> Member {
    Member {
        name: name.to_owned(),
        nodes: nodes.to_vec(),
        operator_key: OperatorKey::from_seed([seed; 32]).public(),
        p2p_addresses: nodes.iter().map(|n| format!("h{n}:1")).collect(),
        identity_url: crate::config::values::url(
            &mut crate::config::reader::Report::default(),
            "identityUrl",
            &format!("http://{name}/v1/identity"),
            &["http"],
        )
        .expect("url"),
    }
}

fn don() -> DonConfig {
    DonConfig {
        members: vec![member("a", 1, &[1, 2, 3]), member("b", 2, &[4, 5])],
        recheck: Duration::from_secs(600),
    }
}

#[test]
fn an_enclave_is_the_member_whose_operator_key_it_holds() {
    let don = don();
    assert_eq!(
        OperatorKey::from_seed([2; 32])
            .member(&don)
            .map(|m| m.name.as_str()),
        Ok("b")
    );
    let stranger = OperatorKey::from_seed([9; 32]);
    let error = stranger.member(&don).expect_err("no member");
    assert_eq!(
        error,
        MembershipError::NotAMember {
            public: hex::encode(stranger.public().as_bytes())
        }
    );
}

#[test]
fn the_identity_signature_verifies_only_for_its_member_and_its_identity() {
    let don = don();
    let digest = [7u8; 64];
    let signature = sign_identity(&OperatorKey::from_seed([1; 32]), &digest);
    let a = don.member("a").expect("a");
    let b = don.member("b").expect("b");
    assert!(verify_identity_signature(a, &digest, &signature));
    assert!(
        !verify_identity_signature(b, &digest, &signature),
        "another member's key"
    );
    assert!(
        !verify_identity_signature(a, &[8u8; 64], &signature),
        "another identity"
    );
    for garbage in ["", "zz", &"00".repeat(64), &signature[..64]] {
        assert!(
            !verify_identity_signature(a, &digest, garbage),
            "{garbage:?}"
        );
    }
    // A plain signature over the digest (no context) is not a member signature.
    let plain = hex::encode(SigningKey::from_bytes(&[1; 32]).sign(&digest).to_bytes());
    assert!(!verify_identity_signature(a, &digest, &plain));
}

#[test]
fn the_key_file_is_read_and_bad_files_are_refused_without_showing_their_content() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = OperatorKey::generate();
    let good = dir.path().join("operator.key");
    std::fs::write(&good, format!("  {}\n", key.to_hex().as_str())).expect("write");
    assert_eq!(
        OperatorKey::read(&good).expect("read").public(),
        key.public()
    );

    let secret_like = "ab".repeat(31);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short", secret_like.clone().into_bytes(), "64 hex digits"),
        ("not hex", "x".repeat(64).into_bytes(), "64 hex digits"),
        ("too big", vec![b'a'; 5000], "at most 4096 bytes"),
    ];
    for (what, content, expected) in cases {
        let path = dir.path().join(what);
        std::fs::write(&path, &content).expect("write");
        let error = OperatorKey::read(&path).expect_err(what).to_string();
        assert!(error.contains(expected), "{what}: {error}");
        assert!(
            !error.contains(&secret_like),
            "{what}: the content is shown: {error}"
        );
    }
    let error = OperatorKey::read(dir.path())
        .expect_err("a directory")
        .to_string();
    assert!(error.contains("regular file"), "{error}");
    let error = OperatorKey::read(&dir.path().join("absent"))
        .expect_err("absent")
        .to_string();
    assert!(error.contains("absent"), "{error}");
}

#[test]
fn debug_shows_the_public_key_only() {
    let key = OperatorKey::from_seed([3; 32]);
    let shown = format!("{key:?}");
    assert!(
        shown.contains(&hex::encode(key.public().as_bytes())),
        "{shown}"
    );
    assert!(!shown.contains(key.to_hex().as_str()), "{shown}");
}
