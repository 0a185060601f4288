//! Helpers the attestation tests share: the identity a running enclave writes, the DCAP samples.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::harness::{wait_until, Enclave};
use enclave::attestation::identity::{AttestationStatus, IdentityDocument};
use enclave::service::state::Status;

pub fn identity_path(e: &Enclave) -> PathBuf {
    e.root.join("run/enclave/identity.json")
}

/// Boots `e` with one idle service and returns its identity document once the attestation
/// has an outcome.
pub fn boot_and_wait_for_identity(e: &mut Enclave, timeout: Duration) -> IdentityDocument {
    e.longrun("idle", "exec sleep 1000", &[]);
    e.start(&[]);
    e.wait_status("idle", Status::Up, timeout);
    wait_for_identity(e, timeout)
}

/// Waits until the document's attestation is no longer pending.
pub fn wait_for_identity(e: &Enclave, timeout: Duration) -> IdentityDocument {
    let mut found = None;
    wait_until(
        timeout,
        "identity.json with the attestation outcome",
        || {
            found = std::fs::read_to_string(identity_path(e))
                .ok()
                .and_then(|t| serde_json::from_str::<IdentityDocument>(&t).ok())
                .filter(|d| d.attestation.status != AttestationStatus::Pending);
            found.is_some()
        },
    );
    found.expect("document")
}

/// A file of `tests/fixtures/dcap` (Intel's samples, tests/fixtures/dcap/SOURCE.md).
pub fn fixture(name: &str) -> String {
    crate::common::repo()
        .join("tests/fixtures/dcap")
        .join(name)
        .to_str()
        .expect("utf-8")
        .to_owned()
}
