//! The identity document: what this enclave runs (which configuration, verified with which key,
//! which software) and which oracle keys it holds, in a form anyone can recompute and check.
//!
//! `identity.json` has five members:
//!
//! * `identity`: the facts, among them the evidence provider (`evidence.provider`, and
//!   `evidence.insecure` for the simulated one). This is the part a quote binds.
//! * `digests`: SHA-512 and SHA-384 of the canonical form of `identity` (see below), recorded
//!   for convenience; a verifier recomputes them.
//! * `attestation`: what the platform said about it (quote, RTMR3), filled in after the facts;
//!   it cannot be part of what the quote binds, because it describes the quote.
//! * `evidence`: the evidence over the identity's SHA-512 ([`super::evidence`]): the quote, or
//!   the order certificate's signature with its chain, or simulated evidence.
//! * `birth`: every node's key birth evidence ([`super::birth`]), which proves itself.
//!
//! **Canonical form.** The bytes that are hashed are the RFC 8785 (JCS) canonical JSON of the
//! `identity` member exactly as it stands in the file: object members sorted by their UTF-16
//! code units, no whitespace, strings escaped minimally. Every value in it is a string, an
//! integer, a boolean or null, so JCS's number rules never come into play. REPORTDATA of the
//! quote is SHA-512 of those bytes (64 bytes, the whole REPORTDATA); the RTMR3 event digest is
//! SHA-384 of the same bytes.
//!
//! Nothing secret is in it: configuration digest and public keys only.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha384, Sha512};

use super::birth::NodeBirth;
use super::evidence::Evidence;
pub use super::node_identity::{rfc3339, NodeIdentity};
use super::order_certificate::OrderCertificate;
use crate::config::signature::canonical::{canonical_json, CanonicalError};
use crate::config::signature::Scheme;
use crate::keys::NodePublicKeys;

/// The `format` member: bumped when the document's meaning changes.
pub const FORMAT: &str = "enclave-identity/2";
/// The name of the one event this enclave records in RTMR3.
pub const RTMR_EVENT: &str = "enclave-identity";

/// The facts a quote binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Identity {
    /// [`FORMAT`].
    pub format: String,
    /// When `enclave init` started, RFC 3339 seconds, UTC.
    pub boot_time: String,
    /// 16 random bytes in hex, new at every boot: tells two boots with the same configuration
    /// and keys apart, so a quote from an earlier boot is not mistaken for this one's.
    pub boot_id: String,
    pub configuration: ConfigurationIdentity,
    pub software: Software,
    /// Every node of the configuration, in node order: node 1 the bootstrap, 2..N the oracles.
    pub nodes: Vec<NodeIdentity>,
    /// The Super Protocol order certificate, when the platform provides one.
    pub order_certificate: Option<OrderCertificate>,
    /// Which evidence provider attests this identity.
    pub evidence: EvidenceChoice,
    /// In a DON across enclaves (the configuration's `don`), the member this enclave is; its
    /// `nodes` are then that member's only. Absent otherwise, so that a single enclave's
    /// identity (and its digest) is what it was before members existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

/// The evidence provider, stated in the identity (so the evidence cannot claim another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvidenceChoice {
    /// `tdx`, `superprotocol`, `simulated` or `none`.
    pub provider: String,
    /// True with the `simulated` provider: the evidence proves nothing (no TEE).
    pub insecure: bool,
}

/// The verified configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigurationIdentity {
    /// Lowercase hex: the digest the signature scheme works on (the `object-hash` for the
    /// reference scheme, SHA-256 of the canonical JSON for the native one), as `enclave config
    /// verify` prints it.
    pub digest: String,
    /// `native-ed25519` or `reference-secp256k1`.
    pub scheme: String,
    /// The key the signature was verified with: base64 of its DER SubjectPublicKeyInfo.
    pub verifying_key: String,
    /// True when the key came from the command line (`--insecure-public-key-file`), not from
    /// the image: a development run, never a production one.
    pub insecure_key: bool,
}

/// The software that runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Software {
    /// The `enclave` binary's version.
    pub version: String,
    /// The git commit the binary was built from (`unknown` when built outside a checkout).
    pub git_revision: String,
    /// `ENCLAVE_IMAGE_DIGEST` from the environment (the deployment sets it to the image's
    /// digest), or null.
    pub image_digest: Option<String>,
    /// SHA-256 (hex) of the running `enclave` executable (`/proc/self/exe`), or null when it
    /// cannot be read: what a reproducible build of `gitRevision` must produce.
    pub binary_sha256: Option<String>,
}

/// What the identity is built from.
#[derive(Debug, Clone)]
pub struct IdentityInputs<'a> {
    pub boot_time: SystemTime,
    pub boot_id: [u8; 16],
    pub config_digest: &'a str,
    pub scheme: Scheme,
    /// Base64 SPKI of the verifying key.
    pub verifying_key: &'a str,
    pub insecure_key: bool,
    pub image_digest: Option<String>,
    pub binary_sha256: Option<String>,
    pub nodes: &'a [NodePublicKeys],
    pub order_certificate: Option<OrderCertificate>,
    /// The evidence provider's name, and whether it is insecure (simulated).
    pub provider: &'a str,
    pub insecure: bool,
}

impl Identity {
    pub fn build(inputs: IdentityInputs<'_>) -> Self {
        Self {
            format: FORMAT.to_owned(),
            boot_time: rfc3339(inputs.boot_time),
            boot_id: hex::encode(inputs.boot_id),
            configuration: ConfigurationIdentity {
                digest: inputs.config_digest.to_owned(),
                scheme: inputs.scheme.to_string(),
                verifying_key: inputs.verifying_key.to_owned(),
                insecure_key: inputs.insecure_key,
            },
            software: Software {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                git_revision: env!("ENCLAVE_GIT_REVISION").to_owned(),
                image_digest: inputs.image_digest.filter(|d| !d.trim().is_empty()),
                binary_sha256: inputs.binary_sha256,
            },
            nodes: inputs.nodes.iter().map(NodeIdentity::from).collect(),
            order_certificate: inputs.order_certificate,
            evidence: EvidenceChoice {
                provider: inputs.provider.to_owned(),
                insecure: inputs.insecure,
            },
            member: None,
        }
    }

    pub fn to_value(&self) -> Value {
        // Serialising plain strings, integers, booleans and options cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn digests(&self) -> Result<IdentityDigests, CanonicalError> {
        IdentityDigests::of_value(&self.to_value())
    }
}

/// The digests of an identity's canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityDigests {
    /// SHA-512: the quote's REPORTDATA.
    pub sha512: [u8; 64],
    /// SHA-384: the RTMR3 event digest.
    pub sha384: [u8; 48],
}

impl IdentityDigests {
    /// The digests of `identity` (the `identity` member's value, as it stands).
    pub fn of_value(identity: &Value) -> Result<Self, CanonicalError> {
        let canonical = canonical_json(identity)?;
        Ok(Self {
            sha512: Sha512::digest(&canonical).into(),
            sha384: Sha384::digest(&canonical).into(),
        })
    }

    pub fn recorded(&self) -> RecordedDigests {
        RecordedDigests {
            sha512: hex::encode(self.sha512),
            sha384: hex::encode(self.sha384),
        }
    }
}

/// [`IdentityDigests`] as the document records them (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordedDigests {
    /// = REPORTDATA of the quote.
    pub sha512: String,
    /// = the digest RTMR3 was extended with.
    pub sha384: String,
}

/// How attestation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttestationStatus {
    /// Not tried yet (the document is written before the quote is asked for).
    Pending,
    /// A TDX quote binds this identity: `identity.quote`.
    Quoted,
    /// This platform offers no quote interface (a laptop, CI, a container without configfs-tsm).
    Unavailable,
    /// The interface exists but producing a quote failed; `reason` says why.
    Failed,
    /// The order certificate's key signed this identity (`superprotocol`).
    Signed,
    /// The development CA signed quote-shaped evidence (`simulated`): proves nothing.
    Simulated,
}

impl AttestationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Quoted => "quoted",
            Self::Unavailable => "unavailable",
            Self::Failed => "failed",
            Self::Signed => "signed",
            Self::Simulated => "simulated",
        }
    }
}

/// The `attestation` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attestation {
    pub status: AttestationStatus,
    /// Why there is no quote (unavailable or failed).
    pub reason: Option<String>,
    pub quote: Option<QuoteRecord>,
    pub rtmr3: Option<RtmrRecord>,
    /// What the enclave found when it checked its own quote right after making it.
    #[serde(default)]
    pub self_check: Option<String>,
}

impl Attestation {
    pub fn pending() -> Self {
        Self {
            status: AttestationStatus::Pending,
            reason: None,
            quote: None,
            rtmr3: None,
            self_check: None,
        }
    }
}

/// The quote beside the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuoteRecord {
    /// File name, in the document's directory.
    pub file: String,
    /// Lowercase hex SHA-256 of the quote's bytes.
    pub sha256: String,
    pub bytes: usize,
    /// The configfs-tsm provider that produced it (`tdx_guest`).
    pub provider: String,
}

/// RTMR3's extension with the identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RtmrRecord {
    /// True when RTMR3 was extended with `digests.sha384` at this boot.
    pub extended: bool,
    /// The event log file, in the document's directory.
    pub event_log: String,
    /// RTMR3 after the extension (hex), when it could be read.
    pub value: Option<String>,
    /// Why it was not extended, or why the value is suspect.
    pub reason: Option<String>,
}

/// `identity.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityDocument {
    pub identity: Identity,
    pub digests: RecordedDigests,
    pub attestation: Attestation,
    /// The evidence over the identity's SHA-512 (none until taken, or when there is none).
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// Every node's key birth evidence, in node order.
    #[serde(default)]
    pub birth: Vec<NodeBirth>,
    /// With `identity.member`: that member's operator key's signature over the identity's
    /// SHA-512 ([`super::membership`]), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_signature: Option<String>,
}

impl IdentityDocument {
    pub fn new(identity: Identity) -> Result<Self, CanonicalError> {
        let digests = identity.digests()?.recorded();
        Ok(Self {
            identity,
            digests,
            attestation: Attestation::pending(),
            evidence: None,
            birth: Vec::new(),
            member_signature: None,
        })
    }

    /// Pretty JSON with a trailing newline, as written to `identity.json`.
    pub fn to_pretty_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyStore;
    use std::time::{Duration, UNIX_EPOCH};

    struct Fixture {
        _dir: tempfile::TempDir,
        store: KeyStore,
        nodes: Vec<NodePublicKeys>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tmp");
        let store = KeyStore::new(dir.path().join("secrets"));
        let nodes = store.ensure_all(&[1, 2, 3, 4, 5]).expect("keys");
        Fixture {
            _dir: dir,
            store,
            nodes,
        }
    }

    const KEY: &str = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
    const DIGEST: &str = "3b1fa2e7c5e3f3a3a0b6f4fd2a67c2fcd2b7a1e0b1a6e2b4c1d9e8f7a6b5c4d3";

    fn inputs<'a>(nodes: &'a [NodePublicKeys], digest: &'a str) -> IdentityInputs<'a> {
        IdentityInputs {
            boot_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            boot_id: [7; 16],
            config_digest: digest,
            scheme: Scheme::Native,
            verifying_key: KEY,
            insecure_key: false,
            image_digest: Some("sha256:abc".to_owned()),
            binary_sha256: Some("ab".repeat(32)),
            nodes,
            order_certificate: None,
            provider: "tdx",
            insecure: false,
        }
    }

    fn digest_of(inputs: IdentityInputs<'_>) -> [u8; 64] {
        Identity::build(inputs).digests().expect("digests").sha512
    }

    #[test]
    fn the_document_is_deterministic_for_the_same_configuration_and_keys() {
        let f = fixture();
        let a = Identity::build(inputs(&f.nodes, DIGEST));
        // Loading the same keys again (as another boot would) gives the same document.
        let reloaded = f.store.ensure_all(&[1, 2, 3, 4, 5]).expect("keys");
        let b = Identity::build(inputs(&reloaded, DIGEST));
        assert_eq!(a, b);
        assert_eq!(
            IdentityDocument::new(a.clone())
                .expect("doc")
                .to_pretty_json(),
            IdentityDocument::new(b).expect("doc").to_pretty_json()
        );
        assert_eq!(a.nodes.len(), 5);
        assert_eq!(a.nodes[0].role, "bootstrap");
        assert_eq!(a.nodes[1].role, "oracle");
        assert_eq!(a.boot_time, "2023-11-14T22:13:20Z");
        assert_eq!(a.software.version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn the_digest_changes_when_any_key_or_the_configuration_changes() {
        let f = fixture();
        let base = digest_of(inputs(&f.nodes, DIGEST));
        let other_digest = DIGEST.replace('3', "4");
        assert_ne!(base, digest_of(inputs(&f.nodes, &other_digest)));
        let mut i = inputs(&f.nodes, DIGEST);
        i.scheme = Scheme::Reference;
        assert_ne!(base, digest_of(i));
        let mut i = inputs(&f.nodes, DIGEST);
        i.verifying_key = "MCowBQYDK2VwAyEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_ne!(base, digest_of(i));
        // Any key of any node: swap in a key from another store, one field at a time.
        let other = fixture();
        for node in 0..f.nodes.len() {
            let changes: [fn(&mut NodePublicKeys, &NodePublicKeys); 4] = [
                |n, o| {
                    n.peer_id = o.peer_id;
                    n.offchain_public_key = o.offchain_public_key;
                },
                |n, o| n.onchain_signing_address = o.onchain_signing_address,
                |n, o| n.transmitter_address = o.transmitter_address,
                |n, o| n.config_public_key = o.config_public_key,
            ];
            for change in changes {
                let mut nodes = f.nodes.clone();
                change(&mut nodes[node], &other.nodes[node]);
                assert_ne!(base, digest_of(inputs(&nodes, DIGEST)), "node {node}");
            }
        }
        // A node more or fewer.
        assert_ne!(base, digest_of(inputs(&f.nodes[..4], DIGEST)));
        // Each boot is its own.
        let mut i = inputs(&f.nodes, DIGEST);
        i.boot_id = [8; 16];
        assert_ne!(base, digest_of(i));
        // Other software.
        let mut i = inputs(&f.nodes, DIGEST);
        i.binary_sha256 = Some("cd".repeat(32));
        assert_ne!(base, digest_of(i));
        let mut i = inputs(&f.nodes, DIGEST);
        i.image_digest = Some("sha256:abd".to_owned());
        assert_ne!(base, digest_of(i));
    }

    #[test]
    fn no_private_key_is_in_the_document() {
        let f = fixture();
        let text = IdentityDocument::new(Identity::build(inputs(&f.nodes, DIGEST)))
            .expect("doc")
            .to_pretty_json()
            .to_lowercase();
        let mut secrets =
            vec![std::fs::read_to_string(f.store.shared_secret_file()).expect("secret")];
        for node in 1..=5 {
            for file in [
                "offchain.key",
                "onchain.key",
                "transmitter.key",
                "config.key",
            ] {
                secrets
                    .push(std::fs::read_to_string(f.store.node_dir(node).join(file)).expect("key"));
            }
        }
        for secret in secrets {
            let secret = secret.trim().to_lowercase();
            assert!(secret.len() >= 32);
            assert!(!text.contains(&secret), "a private key is in the document");
        }
    }

    #[test]
    fn the_canonical_form_is_sorted_compact_jcs_of_the_identity_member() {
        let f = fixture();
        let identity = Identity::build(inputs(&f.nodes[..1], DIGEST));
        let canonical =
            String::from_utf8(canonical_json(&identity.to_value()).expect("jcs")).expect("utf-8");
        assert!(canonical.starts_with(r#"{"bootId":"07070707070707070707070707070707","bootTime":"2023-11-14T22:13:20Z","configuration":{"digest":""#), "{canonical}");
        assert!(!canonical.contains(' ') && !canonical.contains('\n'));
        // The digests are those of exactly these bytes.
        let digests = identity.digests().expect("digests");
        assert_eq!(
            digests.sha512,
            <[u8; 64]>::from(Sha512::digest(canonical.as_bytes()))
        );
        assert_eq!(
            digests.sha384,
            <[u8; 48]>::from(Sha384::digest(canonical.as_bytes()))
        );
        // The same identity re-read from the pretty file hashes the same.
        let doc = IdentityDocument::new(identity).expect("doc");
        let reread: Value = serde_json::from_str(&doc.to_pretty_json()).expect("json");
        assert_eq!(
            IdentityDigests::of_value(&reread["identity"])
                .expect("digests")
                .recorded(),
            doc.digests
        );
    }
}
