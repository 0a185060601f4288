//! Key birth evidence: when a node's keys are generated, evidence is taken at once over the
//! digest of the new public keys and the boot id, and kept beside them as
//! `<spSecretsDir>/node-<i>/birth.json` (0644, nothing secret). A verifier then knows the keys
//! were made inside a TEE with the evidence's measurements, not planted on the secrets volume.
//!
//! The digest is SHA-256 of the RFC 8785 canonical JSON of the record's `keys` member (format,
//! node, boot id, time, every public key); the report data is that digest followed by 32 zero
//! bytes (an identity's report data is a full SHA-512, so the two cannot be confused).
//!
//! The keys module only makes keys; this module decides when they are new (no key file and no
//! `public.json` in the node's directory before) and takes the evidence: keys that were there
//! before, whoever made them, get none, and are reported as "no birth evidence".

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::evidence::{Evidence, Provider, ReportData};
use super::node_identity::{rfc3339, NodeIdentity};
use super::tsm::ConfigFs;
use super::write_atomic;
use crate::config::signature::canonical::canonical_json;
use crate::keys::{
    KeyError, KeyStore, NodePublicKeys, CONFIG_KEY_FILE, OFFCHAIN_KEY_FILE, ONCHAIN_KEY_FILE,
    PUBLIC_FILE, TRANSMITTER_KEY_FILE,
};

pub const BIRTH_FILE: &str = "birth.json";
pub const BIRTH_FORMAT: &str = "enclave-key-birth/1";
/// A birth record is a few KiB (a quote, or a certificate chain).
const MAX_BIRTH_BYTES: u64 = 1024 * 1024;

/// What the birth evidence binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BirthKeys {
    /// [`BIRTH_FORMAT`].
    pub format: String,
    /// The boot (or `enclave keys init` run) that generated the keys: 16 random bytes, hex.
    pub boot_id: String,
    /// RFC 3339, UTC.
    pub born_at: String,
    /// The node's public keys, as the identity lists them.
    pub public_keys: NodeIdentity,
}

impl BirthKeys {
    pub fn new(node: &NodeIdentity, boot_id: &str, time: SystemTime) -> Self {
        Self {
            format: BIRTH_FORMAT.to_owned(),
            boot_id: boot_id.to_owned(),
            born_at: rfc3339(time),
            public_keys: node.clone(),
        }
    }

    /// SHA-256 of the canonical JSON of these facts. Every value is a string, an integer or
    /// a boolean, so neither serialising nor canonicalising can fail.
    pub fn digest(&self) -> [u8; 32] {
        let value = serde_json::to_value(self).unwrap_or_default();
        let canonical = canonical_json(&value).unwrap_or_default();
        Sha256::digest(canonical).into()
    }

    /// The digest, then 32 zero bytes.
    pub fn report_data(&self) -> ReportData {
        let mut data = [0u8; 64];
        data[..32].copy_from_slice(&self.digest());
        data
    }
}

/// `birth.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BirthRecord {
    pub keys: BirthKeys,
    /// [`BirthKeys::digest`], hex (a verifier recomputes it).
    pub sha256: String,
    pub evidence: Evidence,
}

/// One node's birth evidence as the identity document carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeBirth {
    pub node: u32,
    /// The node's `birth.json`, when there is one.
    pub record: Option<BirthRecord>,
    /// Why there is none (or why it does not fit the node's keys).
    pub missing: Option<String>,
}

impl NodeBirth {
    /// True when the record is there and is about the node's current keys.
    pub fn present(&self) -> bool {
        self.record.is_some() && self.missing.is_none()
    }
}

/// Generates whatever keys `nodes` lack (as [`KeyStore::ensure_all`]) and takes birth evidence
/// for the nodes whose keys were made now; returns the public keys and every node's birth
/// evidence as found afterwards.
pub fn ensure_keys(
    store: &KeyStore,
    nodes: &[u32],
    provider: &Provider,
    fs: &dyn ConfigFs,
    boot_id: &str,
) -> Result<(Vec<NodePublicKeys>, Vec<NodeBirth>), KeyError> {
    let fresh: Vec<bool> = nodes
        .iter()
        .map(|&node| has_no_keys(&store.node_dir(node)))
        .collect();
    let publics = store.ensure_all(nodes)?;
    let births = publics
        .iter()
        .zip(&fresh)
        .map(|(public, &fresh)| {
            let untaken = if fresh {
                record_birth(store, public, provider, fs, boot_id).err()
            } else {
                None
            };
            match untaken {
                // Read back would say "planted": say instead why these new keys have none.
                Some(reason) => NodeBirth {
                    node: public.node,
                    record: None,
                    missing: Some(format!(
                        "no birth evidence: the keys were generated now, where no evidence \
                         could be taken ({reason})"
                    )),
                },
                None => read_birth(store, public),
            }
        })
        .collect();
    Ok((publics, births))
}

/// The nodes whose keys have no (fitting) birth evidence, grouped by reason, in first-seen order.
pub fn missing_by_reason(births: &[NodeBirth]) -> Vec<(&str, Vec<u32>)> {
    let mut by_reason: Vec<(&str, Vec<u32>)> = Vec::new();
    for birth in births.iter().filter(|b| !b.present()) {
        let reason = birth.missing.as_deref().unwrap_or("");
        match by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, nodes)) => nodes.push(birth.node),
            None => by_reason.push((reason, vec![birth.node])),
        }
    }
    by_reason
}

/// Logs [`missing_by_reason`]: one warning per distinct reason, naming the nodes, rather than
/// one per node at every boot.
pub fn log_missing(births: &[NodeBirth]) {
    for (reason, nodes) in missing_by_reason(births) {
        let nodes: Vec<String> = nodes.iter().map(u32::to_string).collect();
        tracing::warn!(
            nodes = %nodes.join(","),
            reason,
            "node keys without birth evidence"
        );
    }
}

fn has_no_keys(dir: &Path) -> bool {
    [
        OFFCHAIN_KEY_FILE,
        ONCHAIN_KEY_FILE,
        TRANSMITTER_KEY_FILE,
        CONFIG_KEY_FILE,
        PUBLIC_FILE,
    ]
    .iter()
    .all(|file| !dir.join(file).exists())
}

/// Takes and writes the birth evidence of keys made now; the reason when there is none.
fn record_birth(
    store: &KeyStore,
    public: &NodePublicKeys,
    provider: &Provider,
    fs: &dyn ConfigFs,
    boot_id: &str,
) -> Result<(), String> {
    let path = store.node_dir(public.node).join(BIRTH_FILE);
    let keys = BirthKeys::new(&NodeIdentity::from(public), boot_id, SystemTime::now());
    let evidence = match provider.take(fs, &keys.report_data()) {
        Ok(evidence) => evidence,
        Err(e) => {
            // A file left from keys that no longer exist must not be taken for these keys'.
            let _ = std::fs::remove_file(&path);
            return Err(e.to_string());
        }
    };
    let record = BirthRecord {
        sha256: hex::encode(keys.digest()),
        keys,
        evidence,
    };
    let mut text = serde_json::to_string_pretty(&record).unwrap_or_default();
    text.push('\n');
    match write_atomic(&path, text.as_bytes(), 0o644) {
        Ok(()) => {
            tracing::info!(
                node = public.node,
                provider = record.evidence.provider(),
                file = %path.display(),
                "node keys generated with birth evidence"
            );
            Ok(())
        }
        Err(e) => {
            tracing::error!(node = public.node, path = %path.display(), error = %e, "cannot write the birth evidence");
            Err(format!("cannot write {BIRTH_FILE}: {e}"))
        }
    }
}

/// The node's `birth.json` and whether it is about `public`.
pub fn read_birth(store: &KeyStore, public: &NodePublicKeys) -> NodeBirth {
    let path = store.node_dir(public.node).join(BIRTH_FILE);
    let missing = |reason: String| NodeBirth {
        node: public.node,
        record: None,
        missing: Some(reason),
    };
    let bytes = match crate::config::regular_file::read_bounded(&path, MAX_BIRTH_BYTES) {
        Ok(bytes) => bytes,
        Err(crate::config::regular_file::FileError::Io(e))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            return missing(
                "no birth evidence: the keys were there before this enclave generated any \
                 (planted, or made where no evidence could be taken)"
                    .to_owned(),
            )
        }
        Err(e) => return missing(format!("no birth evidence: {BIRTH_FILE} unreadable: {e}")),
    };
    let record: BirthRecord = match serde_json::from_slice(&bytes) {
        Ok(record) => record,
        Err(e) => return missing(format!("no birth evidence: {BIRTH_FILE} malformed: {e}")),
    };
    let about_these = record.keys.public_keys == NodeIdentity::from(public);
    NodeBirth {
        node: public.node,
        record: Some(record),
        missing: (!about_these)
            .then(|| "the birth evidence is about other keys than the node's".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::tsm::Kernel;

    fn no_provider() -> Provider {
        Provider::None {
            reason: "attestation.provider is none".to_owned(),
        }
    }

    #[test]
    fn keys_generated_without_a_provider_say_so_and_later_boots_say_they_may_be_planted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = KeyStore::new(dir.path().join("secrets"));
        let (_, first) = ensure_keys(&store, &[1, 2], &no_provider(), &Kernel, "00").expect("keys");
        for birth in &first {
            let reason = birth.missing.as_deref().expect("missing");
            assert!(!birth.present());
            assert!(reason.contains("generated now"), "{reason}");
            assert!(reason.contains("attestation.provider is none"), "{reason}");
            assert!(!reason.contains("planted"), "{reason}");
        }
        let (_, again) = ensure_keys(&store, &[1, 2], &no_provider(), &Kernel, "01").expect("keys");
        for birth in &again {
            let reason = birth.missing.as_deref().expect("missing");
            assert!(reason.contains("planted"), "{reason}");
        }
    }

    #[test]
    fn missing_birth_evidence_is_grouped_by_reason_in_node_order() {
        let birth = |node, missing: Option<&str>| NodeBirth {
            node,
            record: None,
            missing: missing.map(str::to_owned),
        };
        type Case<'a> = (Vec<NodeBirth>, Vec<(&'a str, Vec<u32>)>);
        let cases: Vec<Case> = vec![
            (vec![], vec![]),
            (
                vec![
                    birth(1, Some("a")),
                    birth(2, Some("a")),
                    birth(3, Some("a")),
                ],
                vec![("a", vec![1, 2, 3])],
            ),
            (
                vec![
                    birth(1, Some("a")),
                    birth(2, Some("b")),
                    birth(3, Some("a")),
                ],
                vec![("a", vec![1, 3]), ("b", vec![2])],
            ),
            // No record and no reason is still missing evidence.
            (vec![birth(4, None)], vec![("", vec![4])]),
        ];
        for (births, expected) in cases {
            assert_eq!(missing_by_reason(&births), expected, "{births:?}");
        }
    }
}
