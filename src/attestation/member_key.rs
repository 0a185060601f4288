//! Which member of a DON across enclaves this enclave is (the configuration's `don` section;
//! docs/design/don-across-tees.md), and the member's endorsement of its identity.
//!
//! **Which member am I.** An enclave is given its member's *operator key* (an Ed25519 private
//! key, in the file [`OPERATOR_KEY_ENV`] names: a deployment secret, like the order's other
//! secrets); it is the member whose `operatorKey` is that key's public half. Anybody can set an
//! environment variable, but nobody without a member's private key can make an enclave that
//! member: the enclave signs its identity's SHA-512 with the key ([`sign_identity`]), and every
//! peer checks that signature with the key the signed configuration lists for the member the
//! identity names ([`verify_identity_signature`]). The signature covers the identity, so it
//! covers this boot's id and this enclave's node keys: copying another member's published
//! signature into another enclave does not make a valid one.
//!
//! Whether a peer is admitted is [`super::admission`]'s decision.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use zeroize::Zeroizing;

use crate::config::schema::don::{DonConfig, Member};
use crate::config::Config;

/// The file holding this enclave's operator key: 64 hex digits (the Ed25519 seed).
pub const OPERATOR_KEY_ENV: &str = "ENCLAVE_OPERATOR_KEY_FILE";
/// What the member's signature is over: this prefix, then the identity's SHA-512, so that the
/// operator key signs nothing else by mistake.
const SIGNATURE_CONTEXT: &[u8] = b"enclave-member-identity/1:";
/// An operator key file is one line of hex.
const MAX_KEY_FILE_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    #[error("{OPERATOR_KEY_ENV} is not set: with a `don` section, each enclave needs its member's operator key")]
    NoKey,
    #[error("the operator key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("the operator key (public {public}) is no member's operatorKey in don.members")]
    NotAMember { public: String },
}

/// This enclave's operator key. Never shown: `Debug` prints the public half only.
pub struct OperatorKey(SigningKey);

impl fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OperatorKey(public {})",
            hex::encode(self.public().as_bytes())
        )
    }
}

impl OperatorKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// A new random key (`enclave don operator-key`).
    pub fn generate() -> Self {
        use k256::elliptic_curve::rand_core::{OsRng, RngCore};
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(seed.as_mut());
        Self::from_seed(*seed)
    }

    /// The seed as 64 hex digits, for the key file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.to_bytes()))
    }

    /// Reads the key file: 64 hex digits, surrounding whitespace allowed.
    pub fn read(path: &Path) -> Result<Self, MembershipError> {
        let error = |reason: String| MembershipError::KeyFile {
            path: crate::logging::Untrusted::bounded(&path.display().to_string(), 200).to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
        if !meta.is_file() || meta.len() > MAX_KEY_FILE_BYTES {
            return Err(error(format!(
                "must be a regular file of 64 hex digits (at most {MAX_KEY_FILE_BYTES} bytes)"
            )));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?);
        let seed = Zeroizing::new(
            hex::decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| error("must hold 64 hex digits (an Ed25519 seed)".to_owned()))?,
        );
        Ok(Self::from_seed(*seed))
    }

    /// The key [`OPERATOR_KEY_ENV`] names.
    pub fn from_env() -> Result<Self, MembershipError> {
        let path = std::env::var_os(OPERATOR_KEY_ENV).ok_or(MembershipError::NoKey)?;
        Self::read(Path::new(&path))
    }

    pub fn public(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// The member this key makes this enclave.
    pub fn member<'a>(&self, don: &'a DonConfig) -> Result<&'a Member, MembershipError> {
        don.member_with_key(&self.public())
            .ok_or_else(|| MembershipError::NotAMember {
                public: hex::encode(self.public().as_bytes()),
            })
    }
}

/// This enclave's place in a DON across enclaves: its member and the member's key.
#[derive(Debug)]
pub struct Membership {
    pub name: String,
    /// The nodes this enclave runs, ascending.
    pub nodes: Vec<u32>,
    pub key: OperatorKey,
}

impl Membership {
    /// The nodes this enclave keys and runs: its member's, or every node of the configuration.
    pub fn nodes_here(member: Option<&Self>, config: &Config) -> Vec<u32> {
        match member {
            Some(member) => member.nodes.clone(),
            None => config.nodes.all(),
        }
    }

    /// With a `don` section, the member whose operator key [`OPERATOR_KEY_ENV`] holds; without
    /// one, `None` (every node runs here).
    pub fn of(don: Option<&DonConfig>) -> Result<Option<Self>, MembershipError> {
        let Some(don) = don else { return Ok(None) };
        let key = OperatorKey::from_env()?;
        let member = key.member(don)?;
        let mut nodes = member.nodes.clone();
        nodes.sort_unstable();
        Ok(Some(Self {
            name: member.name.clone(),
            nodes,
            key,
        }))
    }
}

fn signed_message(identity_sha512: &[u8; 64]) -> Vec<u8> {
    [SIGNATURE_CONTEXT, identity_sha512.as_slice()].concat()
}

/// The member's signature over the identity's SHA-512, hex (the document's `memberSignature`).
pub fn sign_identity(key: &OperatorKey, identity_sha512: &[u8; 64]) -> String {
    hex::encode(key.0.sign(&signed_message(identity_sha512)).to_bytes())
}

/// Whether `signature` (hex) is `member`'s over the identity's SHA-512.
pub fn verify_identity_signature(
    member: &Member,
    identity_sha512: &[u8; 64],
    signature: &str,
) -> bool {
    let Some(bytes) = hex::decode(signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
    else {
        return false;
    };
    member
        .operator_key
        .verify(
            &signed_message(identity_sha512),
            &Signature::from_bytes(&bytes),
        )
        .is_ok()
}

#[cfg(test)]
mod tests;
