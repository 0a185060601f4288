use ed25519_dalek::SigningKey;
use serde_json::json;

use super::*;
use crate::attestation::node_identity::NodeIdentity;
use crate::config::reader::{Fields, Report};
use crate::config::schema::don::read_don;
use crate::config::schema::nodes::NodesConfig;

/// Five nodes: member "boot" runs 1 and 2 (this enclave), "c" runs 3, "d" runs 4 and 5.
fn members(dir: &Path) -> Members {
    let key = |seed: u8| {
        hex::encode(
            SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .as_bytes(),
        )
    };
    let section = json!({"members": [
        {"name": "boot", "nodes": [1, 2], "operatorKey": key(1),
         "p2pAddresses": ["boot:6601", "boot:6602"], "identityUrl": "http://boot:3002/v1/identity"},
        {"name": "c", "nodes": [3], "operatorKey": key(3),
         "p2pAddresses": ["c:6603"], "identityUrl": "http://c:3002/v1/identity"},
        {"name": "d", "nodes": [5, 4], "operatorKey": key(4),
         "p2pAddresses": ["d:6605", "d:6604"], "identityUrl": "http://d:3002/v1/identity"},
    ]});
    let nodes = NodesConfig {
        total: 5,
        list: (1..=5).collect(),
        primary: (1..=5).collect(),
    };
    let mut r = Report::default();
    let f = Fields::of(&mut r, "solution.don", &section);
    let don = read_don(&mut r, f, &nodes).expect("a valid DON");
    Members {
        don,
        me: "boot".into(),
        dir: dir.to_owned(),
    }
}

fn config() -> Config {
    let document = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("configuration.example.json"),
        )
        .expect("example"),
    )
    .expect("json");
    crate::config::validate_document(&document)
        .expect("valid")
        .config
}

/// Keys generated in a store of their own, as another member's enclave would.
fn foreign_keys(nodes: &[u32]) -> Vec<NodePublicKeys> {
    let dir = tempfile::tempdir().expect("tmp");
    KeyStore::new(dir.path().to_owned())
        .ensure_all(nodes)
        .expect("keys")
}

/// What the supervisor writes: the admitted document (only the part the node reads matters).
fn admit(dir: &Path, member: &str, keys: &[NodePublicKeys]) {
    let nodes: Vec<NodeIdentity> = keys.iter().map(NodeIdentity::from).collect();
    let document = json!({"identity": {"member": member, "nodes": nodes}, "evidence": {}});
    std::fs::write(dir.join(format!("{member}.json")), document.to_string()).expect("write");
}

struct Fixture {
    _tmp: tempfile::TempDir,
    members: Members,
    keys: KeyStore,
    config: Config,
    c: Vec<NodePublicKeys>,
    d: Vec<NodePublicKeys>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("members");
    std::fs::create_dir(&dir).expect("dir");
    let keys = KeyStore::new(tmp.path().join("secrets"));
    keys.ensure_all(&[1, 2]).expect("own keys");
    Fixture {
        members: members(&dir),
        keys,
        config: config(),
        c: foreign_keys(&[3]),
        d: foreign_keys(&[4, 5]),
        _tmp: tmp,
    }
}

/// c and d admitted, and the view assembled from them.
fn complete_view(f: &Fixture) -> DonView {
    admit(&f.members.dir, "c", &f.c);
    admit(&f.members.dir, "d", &f.d);
    f.members
        .assemble(&f.keys, &f.config, &f.members.read_admitted())
        .expect("no error")
        .expect("complete")
}

#[test]
fn the_set_is_assembled_only_once_every_other_member_is_admitted() {
    let f = fixture();
    let assemble = || {
        let admitted = f.members.read_admitted();
        (
            f.members.missing(&admitted),
            f.members
                .assemble(&f.keys, &f.config, &admitted)
                .expect("no error")
                .is_some(),
        )
    };
    let none: Vec<String> = Vec::new();
    assert_eq!(assemble(), (vec!["c".to_owned(), "d".to_owned()], false));
    admit(&f.members.dir, "d", &f.d);
    assert_eq!(assemble(), (vec!["c".to_owned()], false));
    admit(&f.members.dir, "c", &f.c);
    assert_eq!(assemble(), (none, true));
}

#[test]
fn the_set_has_own_keys_and_admitted_ones_in_node_order_and_dials_the_others_where_configured() {
    let f = fixture();
    let view = complete_view(&f);
    let own1 = f.keys.load_public(1).expect("own 1");
    let own2 = f.keys.load_public(2).expect("own 2");
    assert_eq!(view.set.bootstrap, own1);
    assert_eq!(view.set.nodes(), vec![2, 3, 4, 5]);
    assert_eq!(
        view.set.oracles,
        vec![own2.clone(), f.c[0].clone(), f.d[0].clone(), f.d[1].clone()]
    );
    assert_eq!(view.own_peers, HashSet::from([own1.peer_id, own2.peer_id]));
    let expected: HashMap<PeerId, String> = [
        (f.c[0].peer_id, "c:6603"),
        (f.d[0].peer_id, "d:6604"),
        (f.d[1].peer_id, "d:6605"),
    ]
    .into_iter()
    .map(|(p, a)| (p, a.to_owned()))
    .collect();
    assert_eq!(view.static_addresses, expected);
}

#[test]
fn a_document_that_does_not_list_exactly_the_members_nodes_or_does_not_parse_is_not_admitted() {
    let f = fixture();
    type Write<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Write)> = vec![
        (
            "another member's nodes",
            Box::new(|dir| admit(dir, "d", &f.c)),
        ),
        ("one node short", Box::new(|dir| admit(dir, "d", &f.d[..1]))),
        (
            "not JSON",
            Box::new(|dir| std::fs::write(dir.join("d.json"), "{").expect("write")),
        ),
        (
            "no node list",
            Box::new(|dir| {
                std::fs::write(dir.join("d.json"), r#"{"identity": {}}"#).expect("write")
            }),
        ),
        (
            "a key that is not one",
            Box::new(|dir| {
                let mut nodes: Vec<Value> =
                    f.d.iter()
                        .map(|k| serde_json::to_value(NodeIdentity::from(k)).expect("json"))
                        .collect();
                nodes[0]["offchainPublicKey"] = json!("00");
                let text = json!({"identity": {"nodes": nodes}}).to_string();
                std::fs::write(dir.join("d.json"), text).expect("write")
            }),
        ),
    ];
    for (case, write) in cases {
        write(&f.members.dir);
        let admitted = f.members.read_admitted();
        assert!(!admitted.contains_key("d"), "{case}");
        assert_eq!(f.members.missing(&admitted), vec!["c", "d"], "{case}");
    }
}

#[test]
fn peers_stay_admitted_while_their_members_document_is_there_and_a_new_key_makes_the_set_stale() {
    let f = fixture();
    let view = complete_view(&f);
    let own: Vec<PeerId> = view.own_peers.iter().copied().collect();
    let all: HashSet<PeerId> = own
        .iter()
        .copied()
        .chain(f.c.iter().chain(&f.d).map(|k| k.peer_id))
        .collect();
    let now = f.members.read_admitted();
    assert_eq!(view.admitted_peers(&now), all);
    assert_eq!(view.changed_member(&now), None);

    // d is refused: the supervisor removed its document. Own nodes and c stay admitted.
    std::fs::remove_file(f.members.dir.join("d.json")).expect("remove");
    let now = f.members.read_admitted();
    let expected: HashSet<PeerId> = own.iter().copied().chain([f.c[0].peer_id]).collect();
    assert_eq!(view.admitted_peers(&now), expected);
    assert_eq!(view.changed_member(&now), None, "refused is not changed");

    // d comes back with new keys (its volumes were lost): none of them is in the set, so none
    // is admitted, and the set is stale.
    let renewed = foreign_keys(&[4, 5]);
    admit(&f.members.dir, "d", &renewed);
    let now = f.members.read_admitted();
    assert_eq!(view.admitted_peers(&now), expected);
    assert_eq!(view.changed_member(&now), Some("d"));
}

#[test]
fn a_bootstrap_run_by_another_member_is_dialled_as_the_bootstrap_not_as_a_peer_of_the_set() {
    let f = fixture();
    let mut members = f.members.clone();
    members.me = "c".into();
    let keys = KeyStore::new(f._tmp.path().join("secrets-c"));
    keys.ensure_all(&[3]).expect("c's keys");
    let boot = foreign_keys(&[1, 2]);
    admit(&members.dir, "boot", &boot);
    admit(&members.dir, "d", &f.d);
    let view = members
        .assemble(&keys, &f.config, &members.read_admitted())
        .expect("no error")
        .expect("complete");
    assert_eq!(view.set.bootstrap, boot[0]);
    assert!(!view.static_addresses.contains_key(&boot[0].peer_id));
    let dialled: HashSet<&str> = view.static_addresses.values().map(String::as_str).collect();
    assert_eq!(dialled, HashSet::from(["boot:6602", "d:6604", "d:6605"]));
}

#[test]
fn new_keys_restart_the_node_only_once_they_have_stayed_for_the_settling_time() {
    let t0 = std::time::Instant::now();
    let settle = std::time::Duration::from_secs(30);
    let at = |s: u64| t0 + std::time::Duration::from_secs(s);
    // (seconds, member with new keys, settled?)
    let steps: [(u64, Option<&str>, bool); 8] = [
        (0, None, false),
        (1, Some("d"), false),
        (20, Some("d"), false),
        (25, None, false), // refused meanwhile (claimed twice): forgotten
        (26, Some("d"), false),
        (50, Some("c"), false), // another member: its own clock
        (79, Some("c"), false),
        (80, Some("c"), true),
    ];
    let mut new_keys = NewKeys::default();
    for (s, changed, settled) in steps {
        assert_eq!(
            new_keys.settled(changed, at(s), settle),
            settled,
            "at {s} s"
        );
    }
}

#[test]
fn a_reconnected_peer_names_its_member_for_a_recheck_and_own_peers_name_none() {
    let f = fixture();
    let view = complete_view(&f);
    let own = *view.own_peers.iter().next().expect("own");
    let cases: Vec<(&str, Vec<PeerId>, Vec<&str>)> = vec![
        ("nobody", vec![], vec![]),
        ("an own node", vec![own], vec![]),
        ("c's node", vec![f.c[0].peer_id], vec!["c"]),
        (
            "both of d's nodes: d once",
            vec![f.d[0].peer_id, f.d[1].peer_id],
            vec!["d"],
        ),
        (
            "c and d",
            vec![f.d[1].peer_id, f.c[0].peer_id, own],
            vec!["c", "d"],
        ),
    ];
    for (case, peers, members) in cases {
        let peers: HashSet<PeerId> = peers.into_iter().collect();
        assert_eq!(view.members_of(&peers), members, "{case}");
    }
    f.members.request_recheck("c").expect("request");
    assert!(f
        .members
        .dir
        .join(crate::attestation::membership::RECHECK_DIR)
        .join("c")
        .is_file());
}
