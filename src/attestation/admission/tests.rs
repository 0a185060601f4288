//! The refusal reasons: each failed check `verify` can report maps to its fixed label (the first
//! failure decides). Admission itself is tested on real member enclaves' identities in
//! tests/attestation/don_members.rs.

use super::*;

#[test]
fn each_kind_of_failed_check_gets_its_reason() {
    let cases = [
        ("FAIL  the configuration digest is 00aa, the identity states 11bb", "other_configuration"),
        ("FAIL  the configuration's signature does not verify: bad signature", "other_configuration"),
        ("FAIL  the verifying key is MCow…, expected MCox…", "other_configuration"),
        ("FAIL  the identity is not signed by member \"beta\"'s operator key (memberSignature)", "member_signature"),
        ("FAIL  the identity names member \"gamma\", which the configuration's don.members does not list", "not_a_member"),
        ("FAIL  the configuration describes a DON across enclaves, but the identity names no member", "not_a_member"),
        ("FAIL  the identity lists nodes [4, 5], member \"beta\" runs [4]", "member_nodes"),
        ("FAIL  no allowed measurement record (attestation.allowedMeasurements) matches: binary_sha256", "measurement_not_allowed"),
        ("FAIL  the identity: the TD is a DEBUG TD", "debug_td"),
        ("FAIL  the identity is INSECURE (simulated provider): it proves no TEE", "simulated_not_allowed"),
        ("FAIL  the identity: the collateral expired 3 days ago", "collateral"),
        ("FAIL  node 4: NO BIRTH EVIDENCE (planted): nothing shows its keys were made inside a TEE", "key_birth"),
        ("FAIL  the identity: the signature does not verify", "evidence"),
    ];
    for (message, reason) in cases {
        let refusal =
            Refusal::Evidence(vec![message.to_owned(), "FAIL  anything after".to_owned()]);
        assert_eq!(refusal.reason(), reason, "{message}");
        assert!(refusal.to_string().contains(message), "{refusal}");
    }
    assert_eq!(Refusal::KeyNotInIdentity.reason(), "key_not_in_identity");
    assert_eq!(Refusal::NoMember.reason(), "not_a_member");
    assert_eq!(Refusal::Evidence(Vec::new()).reason(), "evidence");
}
