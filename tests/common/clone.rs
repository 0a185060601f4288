//! A copy of the repository's scripts, service definitions and example configuration inside a
//! "home directory" of mode 0700, as a clone in root's home would be: for tests of the scripts
//! that must work from any clone location.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use enclave::config::signature::{self, PrivateKey};
use serde_json::Value;

use super::{dev_private_key_path, repo};

pub struct PrivateClone {
    /// The 0700 directory the clone sits in.
    pub home: tempfile::TempDir,
    pub clone: PathBuf,
}

/// What the scripts under test read from a clone.
const PARTS: &[&str] = &[
    "scripts/run-local.sh",
    "scripts/demo.sh",
    "scripts/demo",
    "scripts/lib",
    "scripts/dev-keys",
    "scripts/devchain",
    "s6-rc.d",
    "configuration.example.json",
    "enclave/prometheus/alerts.yml",
];

impl PrivateClone {
    pub fn new() -> Self {
        let home = tempfile::Builder::new()
            .prefix("home-")
            .tempdir()
            .expect("temp dir");
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).expect("chmod 0700");
        let clone = home.path().join("enclave");
        for part in PARTS {
            copy(&repo().join(part), &clone.join(part));
        }
        Self { home, clone }
    }

    /// Writes `{"solution": solution}` signed with the development key to `path`.
    pub fn write_signed(path: &Path, solution: &Value) {
        let mut solution = solution.clone();
        if let Some(o) = solution.as_object_mut() {
            o.shift_remove("signature");
        }
        let key_text = fs::read_to_string(dev_private_key_path()).expect("dev key");
        let key = PrivateKey::from_pkcs8_text(&key_text).expect("dev key parses");
        let signed = signature::sign(&solution, &key).expect("sign");
        solution["signature"] = Value::String(signed.signature_b64);
        let text = serde_json::to_string_pretty(&serde_json::json!({ "solution": solution }))
            .expect("JSON");
        fs::write(path, text).expect("write the configuration");
    }
}

/// Copies a file or a directory tree, keeping modes (scripts stay executable) and skipping
/// Python caches.
fn copy(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    let meta = fs::metadata(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    if meta.is_dir() {
        fs::create_dir_all(to).expect("mkdir");
        for entry in fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            if entry.file_name() == "__pycache__" {
                continue;
            }
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}
