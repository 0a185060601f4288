use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use super::*;

fn key(seed: u8) -> String {
    hex::encode(
        SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .as_bytes(),
    )
}

fn nodes(total: u32) -> NodesConfig {
    NodesConfig {
        total,
        list: (1..=total).collect(),
        primary: (1..=total).collect(),
    }
}

/// A valid DON of five nodes: node 1 with member "boot", each oracle its own member.
fn five() -> Value {
    let mut members = vec![json!({"name": "boot", "nodes": [1], "operatorKey": key(1),
                                  "p2pAddresses": ["boot.example:9901"],
                                  "identityUrl": "http://boot.example:3002/v1/identity"})];
    for n in 2..=5u8 {
        members.push(json!({"name": format!("oracle-{n}"), "nodes": [n],
                            "operatorKey": key(n), "p2pAddresses": [format!("10.0.0.{n}:990{n}")],
                            "identityUrl": format!("https://10.0.0.{n}/v1/identity")}));
    }
    json!({"members": members})
}

fn read(section: &Value, total: u32) -> (Option<DonConfig>, Report) {
    let mut r = Report::default();
    let f = Fields::of(&mut r, "solution.don", section);
    let don = read_don(&mut r, f, &nodes(total));
    (don, r)
}

#[test]
fn a_valid_section_gives_every_member_with_its_nodes_key_and_addresses() {
    let (don, r) = read(&five(), 5);
    assert!(r.is_ok(), "{:?}", r.problems);
    let don = don.expect("don");
    assert_eq!(don.members.len(), 5);
    assert_eq!(don.recheck, Duration::from_millis(defaults::RECHECK_MS));
    let member = don.member_of(3).expect("node 3's member");
    assert_eq!(member.name, "oracle-3");
    assert_eq!(member.address_of(3), Some("10.0.0.3:9903"));
    assert_eq!(member.address_of(4), None);
    assert_eq!(
        member.identity_url.expose().as_str(),
        "https://10.0.0.3/v1/identity"
    );
    let operator = SigningKey::from_bytes(&[4; 32]).verifying_key();
    assert_eq!(
        don.member_with_key(&operator).map(|m| m.name.as_str()),
        Some("oracle-4")
    );
    assert_eq!(don.member("boot").map(|m| m.nodes.clone()), Some(vec![1]));
    // The Debug form shows the key as hex (it is public) and nothing else.
    assert!(format!("{member:?}").contains(&key(3)));
}

#[test]
fn a_member_may_run_several_nodes_and_the_bootstrap() {
    let section = json!({"recheckMs": 60000, "members": [
        {"name": "a", "nodes": [1, 2, 3], "operatorKey": key(1),
         "p2pAddresses": ["a:1", "a:2", "[::1]:3"], "identityUrl": "http://a:3002/v1/identity"},
        {"name": "b", "nodes": [5, 4], "operatorKey": key(2), "p2pAddresses": ["b:5", "b:4"],
         "identityUrl": "http://b:3002/v1/identity"},
    ]});
    let (don, r) = read(&section, 5);
    assert!(r.is_ok(), "{:?}", r.problems);
    let don = don.expect("don");
    assert_eq!(don.recheck, Duration::from_secs(60));
    assert_eq!(don.member_of(4).and_then(|m| m.address_of(4)), Some("b:4"));
    assert_eq!(
        don.member_of(1).and_then(|m| m.address_of(3)),
        Some("[::1]:3")
    );
}

#[test]
fn an_absent_section_is_one_enclave() {
    let mut r = Report::default();
    assert_eq!(read_don(&mut r, None, &nodes(5)), None);
    assert!(r.is_ok());
}

#[test]
fn bad_sections_are_errors_naming_the_field() {
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit, &str, &str)] = &[
        (
            "no members",
            |s| {
                s.as_object_mut().expect("object").remove("members");
            },
            "solution.don.members",
            "is required",
        ),
        (
            "one member",
            |s| s["members"] = json!([s["members"][0].clone()]),
            "solution.don.members",
            "leave out the `don` section",
        ),
        (
            "members not an array",
            |s| s["members"] = json!({}),
            "solution.don.members",
            "must be an array",
        ),
        (
            "a node nobody runs",
            |s| {
                s["members"].as_array_mut().expect("array").pop();
            },
            "solution.don.members",
            "node(s) 5 belong to no member",
        ),
        (
            "a node two members claim",
            |s| s["members"][2]["nodes"] = json!([2]),
            "solution.don.members[2].nodes[0]",
            "node 2 is member \"oracle-2\"'s already",
        ),
        (
            "a node out of range",
            |s| s["members"][1]["nodes"] = json!([6]),
            "solution.don.members[1].nodes[0]",
            "must be a node number 1..5",
        ),
        (
            "a node listed twice",
            |s| {
                s["members"][1]["nodes"] = json!([2, 2]);
                s["members"][1]["p2pAddresses"] = json!(["a:1", "a:2"]);
            },
            "solution.don.members[1].nodes[1]",
            "listed twice",
        ),
        (
            "no nodes",
            |s| s["members"][1]["nodes"] = json!([]),
            "solution.don.members[1].nodes",
            "at least one node",
        ),
        (
            "two members, one name",
            |s| s["members"][2]["name"] = json!("oracle-2"),
            "solution.don.members[2].name",
            "names another member too",
        ),
        (
            "a name with spaces",
            |s| s["members"][1]["name"] = json!("Oracle Two"),
            "solution.don.members[1].name",
            "a-z, 0-9 and '-'",
        ),
        (
            "a name too long",
            |s| s["members"][1]["name"] = json!("a".repeat(41)),
            "solution.don.members[1].name",
            "1 to 40 characters",
        ),
        (
            "two members, one operator",
            |s| s["members"][2]["operatorKey"] = s["members"][1]["operatorKey"].clone(),
            "solution.don.members[2].operatorKey",
            "member \"oracle-2\"'s key too",
        ),
        (
            "a key that is not hex",
            |s| s["members"][1]["operatorKey"] = json!("zz"),
            "solution.don.members[1].operatorKey",
            "64 hex digits",
        ),
        (
            "a key of the wrong length",
            |s| s["members"][1]["operatorKey"] = json!("ab".repeat(31)),
            "solution.don.members[1].operatorKey",
            "64 hex digits",
        ),
        (
            "no key",
            |s| {
                s["members"][1]
                    .as_object_mut()
                    .expect("object")
                    .remove("operatorKey");
            },
            "solution.don.members[1].operatorKey",
            "is required",
        ),
        (
            "an address without a port",
            |s| s["members"][1]["p2pAddresses"] = json!(["oracle"]),
            "solution.don.members[1].p2pAddresses[0]",
            "must be host:port",
        ),
        (
            "an address with port 0",
            |s| s["members"][1]["p2pAddresses"] = json!(["oracle:0"]),
            "solution.don.members[1].p2pAddresses[0]",
            "must be host:port",
        ),
        (
            "an address with a path",
            |s| s["members"][1]["p2pAddresses"] = json!(["oracle/x:1"]),
            "solution.don.members[1].p2pAddresses[0]",
            "must be host:port",
        ),
        (
            "an address too long",
            |s| s["members"][1]["p2pAddresses"] = json!([format!("{}:1", "a".repeat(300))]),
            "solution.don.members[1].p2pAddresses[0]",
            "at most 261 characters",
        ),
        (
            "fewer addresses than nodes",
            |s| s["members"][1]["nodes"] = json!([2, 3]),
            "solution.don.members[1].p2pAddresses",
            "one per node",
        ),
        (
            "no addresses",
            |s| {
                s["members"][1]
                    .as_object_mut()
                    .expect("object")
                    .remove("p2pAddresses");
            },
            "solution.don.members[1].p2pAddresses",
            "is required",
        ),
        (
            "an unknown member field",
            |s| s["members"][1]["operator"] = json!("x"),
            "solution.don.members[1].operator",
            "",
        ),
        (
            "an unknown section field",
            |s| s["member"] = json!([]),
            "solution.don.member",
            "",
        ),
        (
            "a recheck too short",
            |s| s["recheckMs"] = json!(500),
            "solution.don.recheckMs",
            "",
        ),
    ];
    for (what, edit, path, message) in cases {
        let mut section = five();
        edit(&mut section);
        let (_, r) = read(&section, 5);
        let found = r.problems.iter().find(|p| p.path == *path);
        assert!(
            found.is_some_and(|p| p.message.contains(message)),
            "{what}: expected an error at {path} containing {message:?}, got {:?}",
            r.problems
        );
    }
}
