//! The oracles of this enclave as OCR sees them: oracle index i is node i+2 (node 1 is the
//! bootstrap), with each one's public keys, and each feed's config digest derived from them.

use alloy_primitives::Address;

use crate::config::schema::feeds::FeedConfig;
use crate::config::schema::nodes::BOOTSTRAP_NODE;
use crate::config::Config;
use crate::keys::peer_id::PeerId;
use crate::keys::{KeyError, KeyStore, NodePublicKeys};
use crate::node::ocr1::config_digest::{
    config_digest, encode_offchain_config, OffchainConfig, SharedSecretEncryptions,
};
use crate::node::ocr1::types::ConfigDigest;

/// A feed's configuration count before the chain issue reads the contract's.
pub const LOCAL_CONFIG_COUNT: u64 = 1;
pub const ENCODED_CONFIG_VERSION: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum OracleSetError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot encode the OCR configuration of feed {feed}: {detail}")]
    Encoding { feed: String, detail: String },
    #[error("node {node}'s off-chain public key is not a valid Ed25519 key")]
    BadOffchainKey { node: u32 },
}

#[derive(Debug, Clone)]
pub struct OracleSet {
    pub bootstrap: NodePublicKeys,
    /// Index = OCR oracle id.
    pub oracles: Vec<NodePublicKeys>,
}

impl OracleSet {
    pub fn load(keys: &KeyStore, config: &Config) -> Result<Self, OracleSetError> {
        let bootstrap = keys.load_public(BOOTSTRAP_NODE)?;
        let oracles = config
            .nodes
            .oracles()
            .into_iter()
            .map(|node| keys.load_public(node))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { bootstrap, oracles })
    }

    pub fn index_of(&self, node: u32) -> Option<u8> {
        self.oracles
            .iter()
            .position(|o| o.node == node)
            .and_then(|i| u8::try_from(i).ok())
    }

    pub fn nodes(&self) -> Vec<u32> {
        self.oracles.iter().map(|o| o.node).collect()
    }

    pub fn peer_ids(&self) -> Vec<PeerId> {
        self.oracles.iter().map(|o| o.peer_id).collect()
    }

    pub fn signers(&self) -> Vec<Address> {
        self.oracles
            .iter()
            .map(|o| o.onchain_signing_address)
            .collect()
    }

    pub fn transmitters(&self) -> Vec<Address> {
        self.oracles.iter().map(|o| o.transmitter_address).collect()
    }

    /// The Ed25519 keys that sign observations (the P2P identity keys).
    pub fn offchain_keys(&self) -> Result<Vec<ed25519_dalek::VerifyingKey>, OracleSetError> {
        self.oracles
            .iter()
            .map(|o| {
                ed25519_dalek::VerifyingKey::from_bytes(o.peer_id.as_bytes())
                    .map_err(|_| OracleSetError::BadOffchainKey { node: o.node })
            })
            .collect()
    }

    /// The version-1 offchain configuration of `feed` (libocr's `encoded` components).
    pub fn offchain_config(
        &self,
        config: &Config,
        feed: &FeedConfig,
        encryptions: SharedSecretEncryptions,
    ) -> OffchainConfig {
        let c = &config.consensus;
        OffchainConfig {
            delta_progress_ns: nanos(c.delta_progress),
            delta_resend_ns: nanos(c.delta_resend),
            delta_round_ns: nanos(c.delta_round),
            delta_grace_ns: nanos(c.delta_grace),
            delta_c_ns: nanos(feed.heartbeat),
            alpha_ppb: feed.alpha_ppb,
            delta_stage_ns: nanos(c.delta_stage),
            r_max: c.r_max,
            s: c.transmission_schedule.clone(),
            offchain_public_keys: self.oracles.iter().map(|o| *o.peer_id.as_bytes()).collect(),
            peer_ids: self.oracles.iter().map(|o| o.peer_id.to_string()).collect(),
            shared_secret_encryptions: encryptions,
        }
    }

    pub fn encode(
        &self,
        config: &Config,
        feed: &FeedConfig,
        encryptions: SharedSecretEncryptions,
    ) -> Result<Vec<u8>, OracleSetError> {
        encode_offchain_config(&self.offchain_config(config, feed, encryptions)).map_err(|e| {
            OracleSetError::Encoding {
                feed: feed.name.clone(),
                detail: e.to_string(),
            }
        })
    }

    /// The OCR1 config digest `feed`'s contract computes for this configuration at `config_count`.
    pub fn contract_digest(
        &self,
        config: &Config,
        feed: &FeedConfig,
        config_count: u64,
        encoded: &[u8],
    ) -> ConfigDigest {
        config_digest(
            Address::from(feed.contract_address.0),
            config_count,
            &self.signers(),
            &self.transmitters(),
            config.consensus.f as u8,
            ENCODED_CONFIG_VERSION,
            encoded,
        )
    }

    /// The digest the oracles use when no contract configuration is read (off-chain mode): the
    /// OCR1 formula over the feed's contract address, this oracle set, `f`, the consensus
    /// parameters and the shared secret's hash (no encryptions: they are random per dealing), so
    /// no two feeds share a digest and any difference in keys, parameters or shared secret splits
    /// the network loudly.
    pub fn digest(
        &self,
        config: &Config,
        feed: &FeedConfig,
        shared_secret_hash: [u8; 32],
    ) -> Result<ConfigDigest, OracleSetError> {
        let encryptions = SharedSecretEncryptions {
            diffie_hellman_point: [0u8; 32],
            shared_secret_hash,
            encryptions: Vec::new(),
        };
        let encoded = self.encode(config, feed, encryptions)?;
        Ok(self.contract_digest(config, feed, LOCAL_CONFIG_COUNT, &encoded))
    }
}

/// Go's time.Duration: nanoseconds in an i64 (durations past 292 years saturate).
fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
