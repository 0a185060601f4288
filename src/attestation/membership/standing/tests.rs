use super::*;
use crate::attestation::identity::NodeIdentity;

fn node(n: u32, key: &str) -> NodeIdentity {
    NodeIdentity {
        node: n,
        role: "oracle".into(),
        peer_id: format!("peer-{key}"),
        offchain_public_key: key.into(),
        onchain_signing_address: "0x0".into(),
        transmitter_address: "0x0".into(),
        config_public_key: key.into(),
    }
}

fn identity(member: &str, boot: &str, key: &str) -> AdmittedMember {
    AdmittedMember {
        member: member.into(),
        nodes: vec![node(4, key)],
        boot_id: boot.into(),
    }
}

fn admitted(boot: &str, key: &str, at: u64, unreachable: Option<u64>) -> Standing {
    Standing::Admitted {
        identity: identity("beta", boot, key),
        verified_at: at,
        unreachable_since: unreachable,
    }
}

fn refused(reason: &'static str, since: u64) -> Standing {
    Standing::Refused {
        reason,
        detail: "d".into(),
        since,
    }
}

fn ok(boot: &str, key: &str) -> Check {
    Check::Judged(Ok(identity("beta", boot, key)))
}

fn no(refusal: Refusal) -> Check {
    Check::Judged(Err(refusal))
}

fn down() -> Check {
    Check::Unreachable("connection refused".into())
}

/// Only what the table compares of an event: its kind and `first`.
fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Admitted { .. } => "admitted".into(),
            Event::Restarted { .. } => "restarted".into(),
            Event::KeysChanged { .. } => "keys-changed".into(),
            Event::Refused { reason, first, .. } => format!("refused {reason} first={first}"),
            Event::Unreachable { first, .. } => format!("unreachable first={first}"),
            Event::Reachable => "reachable".into(),
        })
        .collect()
}

#[test]
fn each_check_moves_the_standing_as_the_table_says() {
    let cases: Vec<(&str, Standing, Check, Standing, Vec<&str>)> = vec![
        (
            "first admission",
            Standing::Unknown,
            ok("b1", "k"),
            admitted("b1", "k", 100, None),
            vec!["admitted"],
        ),
        (
            "re-check, nothing new",
            admitted("b1", "k", 50, None),
            ok("b1", "k"),
            admitted("b1", "k", 100, None),
            vec![],
        ),
        (
            "a restart keeps its keys",
            admitted("b1", "k", 50, None),
            ok("b2", "k"),
            admitted("b2", "k", 100, None),
            vec!["restarted"],
        ),
        (
            "new keys",
            admitted("b1", "k", 50, None),
            ok("b2", "other"),
            admitted("b2", "other", 100, None),
            vec!["keys-changed"],
        ),
        (
            "unreachable after admission keeps it",
            admitted("b1", "k", 50, None),
            down(),
            admitted("b1", "k", 50, Some(100)),
            vec!["unreachable first=true"],
        ),
        (
            "still unreachable",
            admitted("b1", "k", 50, Some(70)),
            down(),
            admitted("b1", "k", 50, Some(70)),
            vec!["unreachable first=false"],
        ),
        (
            "reachable again",
            admitted("b1", "k", 50, Some(70)),
            ok("b1", "k"),
            admitted("b1", "k", 100, None),
            vec!["reachable"],
        ),
        (
            "never reached",
            Standing::Unknown,
            down(),
            Standing::Unreachable {
                error: "connection refused".into(),
                since: 100,
            },
            vec!["unreachable first=true"],
        ),
        (
            "refused",
            admitted("b1", "k", 50, None),
            no(Refusal::NoMember),
            refused("not_a_member", 100),
            vec!["refused not_a_member first=true"],
        ),
        (
            "refused again, same reason",
            refused("not_a_member", 70),
            no(Refusal::NoMember),
            refused("not_a_member", 70),
            vec!["refused not_a_member first=false"],
        ),
        (
            "refused for another reason",
            refused("not_a_member", 70),
            no(Refusal::KeyNotInIdentity),
            refused("key_not_in_identity", 100),
            vec!["refused key_not_in_identity first=true"],
        ),
        (
            "a refusal stands while unreachable",
            refused("not_a_member", 70),
            down(),
            refused("not_a_member", 70),
            vec!["unreachable first=false"],
        ),
        (
            "admitted after a refusal",
            refused("not_a_member", 70),
            ok("b1", "k"),
            admitted("b1", "k", 100, None),
            vec!["admitted"],
        ),
        (
            "another member's identity",
            Standing::Unknown,
            Check::Judged(Ok(identity("alpha", "b1", "k"))),
            refused("wrong_member", 100),
            vec!["refused wrong_member first=true"],
        ),
        (
            "two enclaves answer for it: refused, whatever it was",
            admitted("b1", "k", 50, None),
            Check::ClaimedTwice("boots b1 and b2".into()),
            refused("duplicate_claim", 100),
            vec!["refused duplicate_claim first=true"],
        ),
        (
            "still claimed twice: the same refusal, logged once",
            refused("duplicate_claim", 60),
            Check::ClaimedTwice("boots b1 and b2".into()),
            refused("duplicate_claim", 60),
            vec!["refused duplicate_claim first=false"],
        ),
    ];
    for (what, before, check, expected, events) in cases {
        let (after, got) = observe(&before, "beta", check, 100);
        // Details are free text; the table compares the rest.
        let after = match after {
            Standing::Refused { reason, since, .. } => Standing::Refused {
                reason,
                detail: "d".into(),
                since,
            },
            other => other,
        };
        assert_eq!(after, expected, "{what}");
        assert_eq!(kinds(&got), events, "{what}");
    }
}

#[test]
fn only_an_admitted_standing_admits() {
    assert!(admitted("b", "k", 1, Some(2)).is_admitted());
    for other in [
        Standing::Unknown,
        refused("x", 1),
        Standing::Unreachable {
            error: String::new(),
            since: 1,
        },
    ] {
        assert!(!other.is_admitted(), "{other:?}");
    }
}
