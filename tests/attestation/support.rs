//! Helpers the attestation tests share: the identity a running enclave writes, the DCAP samples.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::{json, Value};

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

/// A CA (self-signed) or a certificate it issues, with its key.
pub struct Issued {
    pub cert: rcgen::Certificate,
    pub params: CertificateParams,
    pub key: KeyPair,
}

pub fn ca(name: &str) -> Issued {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("key");
    let cert = params.clone().self_signed(&key).expect("self-signed");
    Issued { cert, params, key }
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// The `attestation` section of the simulated provider with `dev_ca`, written into `dir`
/// (a dev chain's configuration only).
pub fn simulated_attestation(dir: &Path, dev_ca: &Issued) -> Value {
    let key = dir.join("dev-ca.key");
    let certificate = dir.join("dev-ca.pem");
    write(&key, &dev_ca.key.serialize_pem());
    write(&certificate, &dev_ca.cert.pem());
    json!({
        "provider": "simulated",
        "simulated": {
            "caKeyFile": key.to_str().expect("utf-8"),
            "caCertificateFile": certificate.to_str().expect("utf-8"),
        }
    })
}
