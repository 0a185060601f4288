//! `enclave config keygen | sign | verify | check` as an operator runs them.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `enclave config <command> --public-key-file <the dev key> <file>`.
fn with_dev_key(command: &str, file: &std::path::Path) -> std::process::Output {
    enclave(&dev_key_args(command, file))
}

fn dev_key_args(command: &str, file: &std::path::Path) -> Vec<String> {
    vec![
        "config".into(),
        command.into(),
        "--public-key-file".into(),
        path_str(&dev_public_key_path()).into(),
        path_str(file).into(),
    ]
}

/// `enclave --root <root> config verify <the example>`: no key given, so the image's is looked
/// for under the root.
fn verify_the_example_under(root: &std::path::Path) -> std::process::Output {
    enclave(&[
        "--root",
        path_str(root),
        "config",
        "verify",
        path_str(&example_path()),
    ])
}

fn write_json(file: &std::path::Path, value: &serde_json::Value) {
    std::fs::write(file, serde_json::to_string(value).expect("json")).expect("write");
}

#[test]
fn verify_accepts_the_example_with_the_dev_key() {
    let out = with_dev_key("verify", &example_path());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_contains(&stdout(&out), "scheme: native-ed25519");
    assert!(stdout(&out).contains("digest: "));
}

#[test]
fn a_one_character_change_makes_verify_exit_77() {
    let dir = tmp();
    let text = std::fs::read_to_string(example_path()).expect("example");
    let changed = text.replacen("\"rMax\": 6", "\"rMax\": 5", 1);
    assert_ne!(text, changed);
    let file = dir.path().join("c.json");
    std::fs::write(&file, changed).expect("write");
    let out = with_dev_key("verify", &file);
    assert_eq!(code(&out), 77, "{}", stderr(&out));
    assert_contains(&stderr(&out), "signature");
}

#[test]
fn keygen_sign_verify_round_trip_for_both_schemes() {
    for (scheme, name) in [
        ("ed25519", "native-ed25519"),
        ("secp256k1", "reference-secp256k1"),
    ] {
        let dir = tmp();
        let keys = dir.path().join("keys");
        let out = enclave(&[
            "config",
            "keygen",
            "--scheme",
            scheme,
            "--out",
            path_str(&keys),
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let key_file = keys.join("configuration.key");
        let mode = std::fs::metadata(&key_file)
            .expect("key")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "private key must be 0600");
        let public = std::fs::read_to_string(keys.join("configuration.pub")).expect("pub");
        assert_eq!(stdout(&out).trim(), public.trim());

        // Flat layout, as the reference's signer takes it.
        let example = read_json(&example_path());
        let flat = dir.path().join("flat.json");
        std::fs::write(
            &flat,
            serde_json::to_string(&example["solution"]).expect("json"),
        )
        .expect("write");
        let signed = dir.path().join("signed.json");
        let out = enclave(&[
            "config",
            "sign",
            "--key",
            path_str(&key_file),
            path_str(&flat),
            "--out",
            path_str(&signed),
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let out = enclave(&[
            "config",
            "verify",
            "--public-key",
            public.trim(),
            path_str(&signed),
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_contains(&stdout(&out), name);
        // The dev key does not verify it.
        let out = with_dev_key("verify", &signed);
        assert_eq!(code(&out), 77);
    }
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let dir = tmp();
    let keys = path_str(dir.path());
    assert_eq!(
        code(&enclave(&[
            "config", "keygen", "--scheme", "ed25519", "--out", keys
        ])),
        0
    );
    let out = enclave(&["config", "keygen", "--scheme", "ed25519", "--out", keys]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("--force"));
    assert_eq!(
        code(&enclave(&[
            "config", "keygen", "--scheme", "ed25519", "--out", keys, "--force"
        ])),
        0
    );
}

#[test]
fn sign_refuses_an_invalid_configuration_and_changes_nothing() {
    let dir = tmp();
    let mut example = read_json(&example_path());
    example["solution"]["totalNodes"] = serde_json::json!("3");
    let file = dir.path().join("c.json");
    let before = serde_json::to_string(&example).expect("json");
    std::fs::write(&file, &before).expect("write");
    let out = enclave(&[
        "config",
        "sign",
        "--key",
        path_str(&dev_private_key_path()),
        path_str(&file),
    ]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert_contains(&stderr(&out), "solution.totalNodes");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), before);
}

#[test]
fn check_prints_every_problem_and_exits_78() {
    let dir = tmp();
    let mut example = read_json(&example_path());
    let s = &mut example["solution"];
    s["pgPort"] = serde_json::json!(70000);
    s["priceAggregatorConfig"]["sources"]["okx"]["rps"] = serde_json::json!(0);
    s["chainlinkRpcHttpUrl"] = serde_json::json!("ftp://x");
    let file = dir.path().join("c.json");
    write_json(&file, &example);
    let out = enclave(&["config", "check", path_str(&file)]);
    assert_eq!(code(&out), 78);
    let err = stderr(&out);
    for expected in [
        "error: solution.pgPort: must be between 1 and 65535",
        "error: solution.priceAggregatorConfig.sources.okx.rps: must be > 0",
        "error: solution.chainlinkRpcHttpUrl: must be a http or https URL",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn check_with_a_key_reports_a_bad_signature_with_77() {
    let dir = tmp();
    let text = std::fs::read_to_string(example_path()).expect("example");
    let file = dir.path().join("c.json");
    std::fs::write(&file, text.replacen("\"rps\": 10", "\"rps\": 11", 1)).expect("write");
    let out = with_dev_key("check", &file);
    assert_eq!(code(&out), 77, "{}", stderr(&out));
    let out = with_dev_key("check", &example_path());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("configuration valid"));
}

#[test]
fn unreadable_or_malformed_files_exit_78() {
    let dir = tmp();
    let missing = dir.path().join("nope.json");
    assert_eq!(code(&enclave(&["config", "check", path_str(&missing)])), 78);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"solution\": {").expect("write");
    assert_eq!(code(&enclave(&["config", "check", path_str(&bad)])), 78);
    std::fs::write(&bad, "{\"solution\": {\"a\": 1, \"a\": 2}}").expect("write");
    let out = enclave(&["config", "check", path_str(&bad)]);
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("duplicate key"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        code(&enclave(&[
            "config", "keygen", "--scheme", "rsa", "--out", "/tmp/x"
        ])),
        2
    );
    assert_eq!(
        code(&enclave(&[
            "config",
            "verify",
            "--public-key",
            "a",
            "--public-key-file",
            "b"
        ])),
        2
    );
    assert_eq!(code(&enclave(&["no-such-command"])), 2);
}

#[test]
fn verify_without_any_key_says_how_to_give_one() {
    let dir = tmp();
    let out = verify_the_example_under(dir.path());
    assert_eq!(code(&out), 77);
    assert_contains(&stderr(&out), "--public-key");
}

#[test]
fn verify_finds_the_image_key_under_the_root() {
    let dir = tmp();
    let etc = dir.path().join("etc/enclave");
    std::fs::create_dir_all(&etc).expect("mkdir");
    std::fs::copy(dev_public_key_path(), etc.join("configuration.pub")).expect("copy");
    let out = verify_the_example_under(dir.path());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// Member names beside `solution` are not covered by the signature, so anyone on the way can
/// put anything there; names and keys inside it, too, when the file is checked unsigned.
#[test]
fn hostile_member_names_reach_check_output_escaped_and_bounded() {
    use common::hostile::{assert_escaped, long_text, HOSTILE_TEXTS};
    let dir = tmp();
    let file = dir.path().join("c.json");
    let long = long_text();
    let texts: Vec<&str> = HOSTILE_TEXTS
        .iter()
        .copied()
        .chain([long.as_str()])
        .collect();
    for hostile in texts {
        let shown = |out: &std::process::Output| format!("{}{}", stdout(out), stderr(out));

        // Beside `solution`: the signature still verifies, the member is noted.
        let mut document = read_json(&example_path());
        document[hostile] = serde_json::json!(1);
        write_json(&file, &document);
        let out = with_dev_key("check", &file);
        assert_eq!(code(&out), 0, "{}", shown(&out));
        assert_escaped("beside solution", &shown(&out), 2_000);
        assert!(
            stderr(&out).contains("not covered by the signature"),
            "{}",
            shown(&out)
        );

        // An unknown member inside `solution`: an error line naming it.
        let mut document = read_json(&example_path());
        document["solution"][hostile] = serde_json::json!(1);
        write_json(&file, &document);
        let out = enclave(&["config", "check", path_str(&file)]);
        assert_eq!(code(&out), 78, "{}", shown(&out));
        assert_escaped("unknown field", &shown(&out), 2_000);
        assert!(stderr(&out).contains("unknown field"), "{}", shown(&out));

        // A duplicate key: serde_json's message quotes it.
        let name = serde_json::to_string(hostile).expect("json string");
        std::fs::write(
            &file,
            format!("{{\"solution\": {{}}, {name}: 1, {name}: 2}}"),
        )
        .expect("write");
        let out = enclave(&["config", "check", path_str(&file)]);
        assert_eq!(code(&out), 78, "{}", shown(&out));
        assert_escaped("duplicate key", &shown(&out), 2_000);
        assert!(stderr(&out).contains("duplicate key"), "{}", shown(&out));
    }
}

/// `open()` of a FIFO waits for a writer: a configuration that is not a regular file is refused
/// at once, naming the path, with exit 78.
#[test]
fn a_configuration_that_is_not_a_regular_file_is_refused_at_once_with_78() {
    let dir = tmp();
    let fifo = dir.path().join("fifo.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    let socket = dir.path().join("socket.json");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("socket");
    let cases: [(&std::path::Path, &str); 4] = [
        (&fifo, "FIFO"),
        (&socket, "socket"),
        (std::path::Path::new("/dev/zero"), "character device"),
        (dir.path(), "directory"),
    ];
    for (path, kind) in cases {
        for command in ["check", "verify"] {
            let out = enclave_within(
                &dev_key_args(command, path),
                std::time::Duration::from_secs(10),
            );
            assert_eq!(code(&out), 78, "{command} {path:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains(kind), "{command} {path:?}: {err}");
            assert!(err.contains(path_str(path)), "{command} {path:?}: {err}");
        }
    }
}
