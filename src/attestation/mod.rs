//! The enclave's verifiable identity: at boot the supervisor states which configuration, which
//! software and which oracle keys this enclave runs ([`identity`]), publishes it (a file,
//! `enclave status`, the log, pushed metrics) and, where the platform allows, proves it: a TDX
//! quote whose REPORTDATA is the identity's SHA-512 ([`tsm`]), RTMR3 extended with its
//! SHA-384 and an event log to replay ([`rtmr`]), and on Super Protocol the order certificate
//! ([`order_certificate`]). Which of these proves the identity is the evidence provider's choice
//! ([`evidence`]: `tdx`, `superprotocol`, or `simulated` for tests without TDX), and new node
//! keys get evidence of their birth ([`birth`]); [`serve`] answers `GET /v1/identity` with all
//! of it. [`verify`] is the other side: what `enclave verify-identity` checks,
//! with [`dcap`] (a quote against Intel's collateral, offline, under a policy) and
//! [`measurements`] (which VM images, host-chosen registers and software are allowed).
//!
//! Where there is no TEE, the enclave says so (`enclave_attestation_available 0`, the reason
//! in the log and the document) and never makes up a quote. Attestation failures do not stop
//! the enclave: the oracles' work does not depend on them, and the metric tells the outside.

pub mod admission;
pub mod birth;
pub mod boot;
pub mod dcap;
pub mod evidence;
pub mod identity;
pub mod measurements;
pub mod member_key;
pub mod membership;
pub mod metrics;
pub mod node_identity;
pub mod order_certificate;
pub mod outcome;
pub mod quote;
pub mod quote_builder;
pub mod rtmr;
pub mod serve;
// Test support (synthetic quotes) for unit tests; never in a binary
// (scripts/check-release-binary.sh).
#[cfg(test)]
pub mod testing;
pub mod tsm;
pub mod verify;

use std::path::{Path, PathBuf};

use crate::paths::Root;

/// Where the identity and its proofs are written: `<root>/run/enclave/`.
pub const IDENTITY_DIR: &str = "/run/enclave";
pub const IDENTITY_FILE: &str = "identity.json";
pub const QUOTE_FILE: &str = "identity.quote";
pub const EVENT_LOG_FILE: &str = "identity-events.jsonl";

/// Environment variables that override the platform paths (absolute paths, used as given).
pub const TSM_REPORT_DIR_ENV: &str = "ENCLAVE_TSM_REPORT_DIR";
pub const RTMR3_PATH_ENV: &str = "ENCLAVE_RTMR3_PATH";
pub const ORDER_CERTIFICATE_ENV: &str = "ENCLAVE_ORDER_CERTIFICATE";
pub const ORDER_KEY_ENV: &str = "ENCLAVE_ORDER_KEY";
/// The image's digest, set by whoever deploys the image (it cannot be baked into the image).
pub const IMAGE_DIGEST_ENV: &str = "ENCLAVE_IMAGE_DIGEST";

/// Where everything attestation touches is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationPaths {
    pub identity_dir: PathBuf,
    /// configfs-tsm's report directory.
    pub tsm_report_dir: PathBuf,
    /// RTMR3's sysfs file.
    pub rtmr3: PathBuf,
    pub order_certificate: PathBuf,
    /// The order certificate's private key (PKCS#8 PEM): signs evidence on Super Protocol.
    pub order_key: PathBuf,
}

impl AttestationPaths {
    /// The defaults mapped under `root` (so a local run under `--root` finds no TEE unless it
    /// is given one), each overridable from the environment.
    pub fn from_env(root: &Root) -> Self {
        let path = |env: &str, default: &str| {
            std::env::var_os(env)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| root.map(default))
        };
        Self {
            identity_dir: root.map(IDENTITY_DIR),
            tsm_report_dir: path(TSM_REPORT_DIR_ENV, tsm::REPORT_DIR),
            rtmr3: path(RTMR3_PATH_ENV, rtmr::RTMR3_PATH),
            order_certificate: path(
                ORDER_CERTIFICATE_ENV,
                order_certificate::ORDER_CERTIFICATE_PATH,
            ),
            order_key: path(ORDER_KEY_ENV, order_certificate::ORDER_KEY_PATH),
        }
    }

    pub fn identity_file(&self) -> PathBuf {
        self.identity_dir.join(IDENTITY_FILE)
    }

    pub fn quote_file(&self) -> PathBuf {
        self.identity_dir.join(QUOTE_FILE)
    }

    pub fn event_log(&self) -> PathBuf {
        self.identity_dir.join(EVENT_LOG_FILE)
    }
}

/// `<root>/run/enclave/identity.json`.
pub fn identity_file(root: &Root) -> PathBuf {
    root.map(IDENTITY_DIR).join(IDENTITY_FILE)
}

/// Replaces `path` with `contents` atomically (a temporary file beside it, fsync, rename), mode
/// `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
