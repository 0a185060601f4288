use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use super::*;

fn store() -> (tempfile::TempDir, KeyStore) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = KeyStore::new(tmp.path().join("sp/secrets"));
    (tmp, store)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

const KEY_FILES: [&str; 4] = [
    OFFCHAIN_KEY_FILE,
    ONCHAIN_KEY_FILE,
    TRANSMITTER_KEY_FILE,
    CONFIG_KEY_FILE,
];

/// Every secret of `keys`, as raw bytes.
fn secrets(keys: &OracleKeys) -> Vec<[u8; 32]> {
    vec![
        keys.offchain().to_bytes(),
        keys.onchain().to_bytes().into(),
        keys.transmitter().to_bytes().into(),
        keys.config().to_bytes(),
    ]
}

/// Every way a secret could show up in text: the files' hex, upper-case hex, byte lists.
fn secret_renderings(store: &KeyStore, node: u32, keys: &OracleKeys) -> Vec<String> {
    let mut out = Vec::new();
    for file in KEY_FILES {
        let text = fs::read_to_string(store.node_dir(node).join(file)).expect("key file");
        out.push(text.trim().to_owned());
        out.push(text.trim().to_uppercase());
    }
    for secret in secrets(keys) {
        out.push(format!("{secret:?}"));
        out.push(format!("{:?}", &secret[..8]));
    }
    out
}

#[test]
fn generated_files_have_the_documented_names_formats_and_modes() {
    let (_tmp, store) = store();
    let keys = store.load_or_generate(2).expect("generate");
    let dir = store.node_dir(2);
    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(mode(&dir), 0o700);
    for (file, secret) in KEY_FILES.iter().zip(secrets(&keys)) {
        let path = dir.join(file);
        assert_eq!(mode(&path), 0o600, "{file}");
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text, format!("{}\n", hex::encode(secret)), "{file}");
    }
    let public_path = dir.join(PUBLIC_FILE);
    assert_eq!(mode(&public_path), 0o644);
    let public: NodePublicKeys =
        serde_json::from_str(&fs::read_to_string(&public_path).expect("read")).expect("json");
    assert_eq!(&public, keys.public());
    assert_eq!(public.node, 2);
    // Nothing else: no temporary files left behind.
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.key",
            "offchain.key",
            "onchain.key",
            "public.json",
            "transmitter.key"
        ]
    );
}

#[test]
fn the_public_keys_are_derived_from_the_private_ones() {
    let (_tmp, store) = store();
    let keys = store.load_or_generate(4).expect("generate");
    let public = keys.public();
    assert_eq!(public.peer_id.0, keys.offchain().verifying_key().to_bytes());
    assert_eq!(public.offchain_public_key, public.peer_id.0);
    assert_eq!(
        public.onchain_signing_address,
        ethereum_address(keys.onchain().verifying_key())
    );
    assert_eq!(
        public.transmitter_address,
        ethereum_address(keys.transmitter().verifying_key())
    );
    assert_eq!(
        public.config_public_key,
        x25519_dalek::PublicKey::from(keys.config()).to_bytes()
    );
    assert_eq!(keys.node(), 4);
}

#[test]
fn reloading_returns_identical_keys_and_changes_no_file() {
    let (_tmp, store) = store();
    let first = store.load_or_generate(2).expect("generate");
    let dir = store.node_dir(2);
    let snapshot = |name: &str| fs::read(dir.join(name)).expect("read");
    let before: Vec<Vec<u8>> = KEY_FILES.iter().map(|f| snapshot(f)).collect();
    let public_before = snapshot(PUBLIC_FILE);
    let second = store.load_or_generate(2).expect("reload");
    assert_eq!(secrets(&first), secrets(&second));
    assert_eq!(first.public(), second.public());
    let after: Vec<Vec<u8>> = KEY_FILES.iter().map(|f| snapshot(f)).collect();
    assert_eq!(before, after);
    assert_eq!(public_before, snapshot(PUBLIC_FILE));
    assert_eq!(store.load_public(2).expect("public"), *first.public());
}

#[test]
fn every_key_differs_within_a_node_and_between_nodes() {
    let (_tmp, store) = store();
    let publics = store.ensure_all(&[1, 2, 3]).expect("all");
    assert_eq!(
        publics.iter().map(|p| p.node).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let mut all: Vec<[u8; 32]> = Vec::new();
    for node in [1, 2, 3] {
        all.extend(secrets(&store.load_or_generate(node).expect("load")));
    }
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "a key repeats");
    let shared = store.shared_secret().expect("shared");
    assert_ne!(*shared.expose(), [0u8; SHARED_SECRET_LEN]);
}

#[test]
fn the_shared_secret_is_16_bytes_0600_and_stable() {
    let (_tmp, store) = store();
    let first = store.shared_secret().expect("generate");
    let path = store.shared_secret_file();
    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).expect("read");
    assert_eq!(text, format!("{}\n", hex::encode(first.expose())));
    assert_eq!(text.len(), 33);
    let second = store.shared_secret().expect("reload");
    assert_eq!(first.expose(), second.expose());
}

#[test]
fn concurrent_generation_agrees_on_one_set_of_keys() {
    let (_tmp, store) = store();
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let keys = store.load_or_generate(3).expect("generate");
                let shared = store.shared_secret().expect("shared");
                (secrets(&keys), keys.public().clone(), *shared.expose())
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    for result in &results[1..] {
        assert_eq!(result, &results[0]);
    }
}

/// Writes `content` over `file` of an existing node 2, expects the load to fail naming the file
/// with `expected` in the message, and the file to be left as it is.
fn assert_malformed(file: &str, content: &str, expected: &str) {
    let (_tmp, store) = store();
    store.load_or_generate(2).expect("generate");
    let path = store.node_dir(2).join(file);
    fs::write(&path, content).expect("corrupt");
    let err = store.load_or_generate(2).expect_err("malformed");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "{file} {content:?}: {text}"
    );
    assert!(text.contains(expected), "{file} {content:?}: {text}");
    assert_eq!(err.path(), path);
    assert_eq!(fs::read_to_string(&path).expect("read"), content, "{file}");
}

#[test]
fn a_malformed_key_file_is_an_error_naming_it_and_is_never_replaced() {
    for file in KEY_FILES {
        assert_malformed(file, "", "found 0");
        assert_malformed(file, &"ab".repeat(31), "found 62");
        assert_malformed(file, &format!("{}\n", "ab".repeat(33)), "found 66");
        assert_malformed(file, &format!("{}zz\n", "ab".repeat(31)), "not hexadecimal");
    }
    for file in [ONCHAIN_KEY_FILE, TRANSMITTER_KEY_FILE] {
        // Zero and the curve order itself are not secp256k1 private keys.
        assert_malformed(file, &format!("{}\n", "00".repeat(32)), "secp256k1");
        assert_malformed(
            file,
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141\n",
            "secp256k1",
        );
    }
}

#[test]
fn a_malformed_shared_secret_is_an_error_naming_it() {
    let (_tmp, store) = store();
    store.shared_secret().expect("generate");
    let path = store.shared_secret_file();
    for content in [
        "",
        "00112233445566778899aabbccddeeff00\n",
        "x".repeat(32).as_str(),
    ] {
        fs::write(&path, content).expect("corrupt");
        let err = store.shared_secret().expect_err("malformed").to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert_eq!(fs::read_to_string(&path).expect("read"), content);
    }
}

#[test]
fn a_valid_but_different_key_disagrees_with_public_json() {
    let (_tmp, store) = store();
    store.ensure_all(&[2, 3]).expect("generate");
    // Node 3's on-chain key copied over node 2's: well-formed, but not the key node 2 published.
    fs::copy(
        store.node_dir(3).join(ONCHAIN_KEY_FILE),
        store.node_dir(2).join(ONCHAIN_KEY_FILE),
    )
    .expect("copy");
    let err = store.load_or_generate(2).expect_err("mismatch");
    assert!(matches!(err, KeyError::PublicMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&store.public_file(2).display().to_string()),
        "{text}"
    );
    assert!(text.contains("onchainSigningAddress"), "{text}");
    assert!(!text.contains("transmitterAddress"), "{text}");
}

#[test]
fn an_edited_public_json_is_an_error() {
    let (_tmp, store) = store();
    let keys = store.load_or_generate(2).expect("generate");
    let path = store.public_file(2);
    let mut edited = keys.public().clone();
    edited.transmitter_address = alloy_primitives::Address::repeat_byte(7);
    fs::write(&path, serde_json::to_string(&edited).expect("json")).expect("write");
    let err = store.load_or_generate(2).expect_err("mismatch").to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("transmitterAddress"), "{err}");
}

#[test]
fn a_malformed_public_json_is_an_error_naming_it() {
    let (_tmp, store) = store();
    let keys = store.load_or_generate(2).expect("generate");
    let path = store.public_file(2);
    let good = serde_json::to_value(keys.public()).expect("json");
    let mut other_node = good.clone();
    other_node["node"] = serde_json::json!(3);
    let mut other_peer = good.clone();
    other_peer["peerId"] = serde_json::json!(crate::keys::peer_id::PeerId([1; 32]).to_string());
    let mut extra = good.clone();
    extra["secret"] = serde_json::json!("x");
    for (content, expected) in [
        ("{".to_owned(), "EOF"),
        (other_node.to_string(), "node 3"),
        (
            other_peer.to_string(),
            "peerId and offchainPublicKey differ",
        ),
        (extra.to_string(), "unknown field"),
    ] {
        fs::write(&path, &content).expect("write");
        for err in [
            store.load_or_generate(2).expect_err(&content).to_string(),
            store.load_public(2).expect_err(&content).to_string(),
        ] {
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(expected), "{content}: {err}");
        }
    }
}

#[test]
fn a_missing_public_json_is_written_again() {
    let (_tmp, store) = store();
    let keys = store.load_or_generate(2).expect("generate");
    let path = store.public_file(2);
    let before = fs::read(&path).expect("read");
    fs::remove_file(&path).expect("rm");
    let again = store.load_or_generate(2).expect("reload");
    assert_eq!(secrets(&keys), secrets(&again));
    assert_eq!(fs::read(&path).expect("read"), before);
    assert_eq!(mode(&path), 0o644);
}

#[test]
fn a_missing_key_file_of_a_published_node_is_an_error_and_is_not_generated() {
    let (_tmp, store) = store();
    store.load_or_generate(2).expect("generate");
    let path = store.node_dir(2).join(TRANSMITTER_KEY_FILE);
    fs::remove_file(&path).expect("rm");
    let err = store.load_or_generate(2).expect_err("missing");
    assert!(matches!(err, KeyError::Missing { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn an_interrupted_generation_completes_with_the_keys_already_written() {
    let (_tmp, store) = store();
    let keys = store.load_or_generate(2).expect("generate");
    // As if the process died after the first key file: only offchain.key remains.
    let dir = store.node_dir(2);
    for file in [
        ONCHAIN_KEY_FILE,
        TRANSMITTER_KEY_FILE,
        CONFIG_KEY_FILE,
        PUBLIC_FILE,
    ] {
        fs::remove_file(dir.join(file)).expect("rm");
    }
    let again = store.load_or_generate(2).expect("complete");
    assert_eq!(keys.public().peer_id, again.public().peer_id);
    assert_ne!(
        keys.public().onchain_signing_address,
        again.public().onchain_signing_address
    );
}

#[test]
fn loose_permissions_are_tightened_on_load() {
    let (_tmp, store) = store();
    store.load_or_generate(2).expect("generate");
    let dir = store.node_dir(2);
    let key = dir.join(CONFIG_KEY_FILE);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    store.load_or_generate(2).expect("reload");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn load_public_never_generates() {
    let (_tmp, store) = store();
    let err = store.load_public(2).expect_err("nothing yet");
    assert!(matches!(err, KeyError::NotGenerated { .. }), "{err}");
    assert!(err.to_string().contains("public.json"), "{err}");
    assert!(!store.dir().exists());
}

#[test]
fn node_zero_does_not_exist() {
    let (_tmp, store) = store();
    assert!(matches!(
        store.load_or_generate(0),
        Err(KeyError::NodeZero { .. })
    ));
    assert!(matches!(
        store.load_public(0),
        Err(KeyError::NodeZero { .. })
    ));
}

#[test]
fn debug_and_display_show_no_secret() {
    let (_tmp, store) = store();
    let keys = store.load_or_generate(2).expect("generate");
    let shared = store.shared_secret().expect("shared");
    let shown = [
        format!("{keys:?}"),
        format!("{keys:#?}"),
        format!("{keys}"),
        format!("{:?}", keys.public()),
        format!("{shared:?}"),
        format!("{shared}"),
    ];
    let mut forbidden = secret_renderings(&store, 2, &keys);
    forbidden.push(hex::encode(shared.expose()));
    forbidden.push(format!("{:?}", shared.expose()));
    for text in &shown {
        for secret in &forbidden {
            assert!(!text.contains(secret.as_str()), "{text} shows {secret}");
        }
    }
    // The public parts are what Debug is for.
    assert!(
        shown[0].contains(&keys.public().peer_id.to_string()),
        "{}",
        shown[0]
    );
    assert!(shown[0].contains(&keys.public().transmitter_address.to_string()));
    assert_eq!(shown[2], format!("node 2 ({})", keys.public().peer_id));
    assert_eq!(shown[4], "SharedSecret(***)");
    assert_eq!(shown[5], "***");
}
