//! Every node's keys, in `<spSecretsDir>/node-<i>/`, and the enclave's OCR shared secret in
//! `<spSecretsDir>/ocr-shared-secret` (docs/design/keys.md, ocr-and-sources.md A.3.1).
//!
//! On disk, one file per secret, each holding the secret's bytes as lowercase hex and a newline
//! (0600, directories 0700):
//!
//! | file | bytes | key |
//! |---|---|---|
//! | `node-<i>/offchain.key` | 32 | Ed25519 seed: P2P identity (peer id) and OCR off-chain signing |
//! | `node-<i>/onchain.key` | 32 | secp256k1 scalar: signs reports (`signers[]`) |
//! | `node-<i>/transmitter.key` | 32 | secp256k1 scalar: sends transactions (`transmitters[]`) |
//! | `node-<i>/config.key` | 32 | X25519 secret: decrypts the chain configuration's shared secret |
//! | `ocr-shared-secret` | 16 | libocr's `sharedSecret` |
//!
//! `node-<i>/public.json` (0644) holds the public parts ([`NodePublicKeys`]), so that a process
//! can learn a peer's keys without reading its private files.
//!
//! Keys are generated from the OS CSPRNG when absent and never replaced: a file that exists but
//! is malformed is an error, because a new key would silently change the node's identity (its
//! peer id and its registered on-chain addresses). For the same reason a missing key file is an
//! error once the node's `public.json` exists.

mod bundle;
mod error;
mod files;
pub mod peer_id;
mod shared_secret;

use std::path::{Path, PathBuf};

pub use bundle::{
    ethereum_address, NodePublicKeys, OracleKeys, CONFIG_KEY_FILE, OFFCHAIN_KEY_FILE,
    ONCHAIN_KEY_FILE, PUBLIC_FILE, TRANSMITTER_KEY_FILE,
};
pub use error::KeyError;
pub use shared_secret::{SharedSecret, SHARED_SECRET_FILE, SHARED_SECRET_LEN};

use crate::config::schema::Config;
use crate::paths::Root;

/// The secrets directory (`spSecretsDir`) holding every node's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(secrets_dir: PathBuf) -> Self {
        Self { dir: secrets_dir }
    }

    /// `<root><spSecretsDir>`.
    pub fn from_config(root: &Root, config: &Config) -> Self {
        Self::new(root.map(&config.secrets_dir))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/node-<i>`.
    pub fn node_dir(&self, node: u32) -> PathBuf {
        self.dir.join(format!("node-{node}"))
    }

    pub fn public_file(&self, node: u32) -> PathBuf {
        self.node_dir(node).join(PUBLIC_FILE)
    }

    pub fn shared_secret_file(&self) -> PathBuf {
        self.dir.join(SHARED_SECRET_FILE)
    }

    /// Node `node`'s keys, generating whatever is missing (see the module documentation).
    pub fn load_or_generate(&self, node: u32) -> Result<OracleKeys, KeyError> {
        let node_dir = self.checked_node_dir(node)?;
        files::ensure_private_dir(&self.dir)?;
        files::ensure_private_dir(&node_dir)?;
        OracleKeys::load_or_generate(&node_dir, node)
    }

    /// Node `node`'s public keys from its `public.json` only; never generates anything.
    pub fn load_public(&self, node: u32) -> Result<NodePublicKeys, KeyError> {
        let path = self.checked_node_dir(node)?.join(PUBLIC_FILE);
        bundle::read_public(&path, node)?.ok_or(KeyError::NotGenerated { path })
    }

    /// Generates whatever is missing for `nodes` and the shared secret; the public keys in the
    /// order of `nodes`.
    pub fn ensure_all(&self, nodes: &[u32]) -> Result<Vec<NodePublicKeys>, KeyError> {
        self.shared_secret()?;
        nodes
            .iter()
            .map(|&node| {
                self.load_or_generate(node)
                    .map(|keys| keys.public().clone())
            })
            .collect()
    }

    /// The shared secret, generated if absent.
    pub fn shared_secret(&self) -> Result<SharedSecret, KeyError> {
        files::ensure_private_dir(&self.dir)?;
        SharedSecret::load_or_generate(&self.shared_secret_file())
    }

    fn checked_node_dir(&self, node: u32) -> Result<PathBuf, KeyError> {
        let dir = self.node_dir(node);
        if node == 0 {
            return Err(KeyError::NodeZero { path: dir });
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests;
