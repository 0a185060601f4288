//! The OCR1 configuration each feed's contract needs for this enclave's oracles (ocr-and-sources.md
//! §0, A.2.2): signers, transmitters, threshold, schedule, off-chain keys, peer ids, the shared
//! secret encrypted to each oracle's config key, and the consensus parameters as `encoded`.

use alloy_primitives::Address;
use serde_json::{json, Value};
use x25519_dalek::StaticSecret;

use crate::config::schema::feeds::FeedConfig;
use crate::config::Config;
use crate::keys::SharedSecret;
use crate::node::contract::oracle_set::{OracleSet, OracleSetError};
use crate::node::ocr1::config_digest::{
    OffchainConfig, SharedSecretEncryptions, ENCODED_CONFIG_VERSION,
};
use crate::node::ocr1::shared_secret::encrypt;
use crate::node::ocr1::types::ConfigDigest;

#[derive(Debug, Clone)]
pub struct DonConfig {
    pub feed: String,
    pub contract: Address,
    pub signers: Vec<Address>,
    pub transmitters: Vec<Address>,
    pub threshold: u8,
    pub offchain: OffchainConfig,
    pub encoded: Vec<u8>,
}

impl DonConfig {
    /// Builds the configuration of `feed`, dealing the shared secret with a fresh dealer key.
    pub fn build(
        config: &Config,
        set: &OracleSet,
        feed: &FeedConfig,
        secret: &SharedSecret,
    ) -> Result<Self, OracleSetError> {
        let mut dealer = [0u8; 32];
        // The dealer key only needs to be unpredictable; it is dropped after this call.
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut dealer).map_err(
            |_| OracleSetError::Encoding {
                feed: feed.name.clone(),
                detail: "no randomness for the dealer key".into(),
            },
        )?;
        let config_keys: Vec<[u8; 32]> = set.oracles.iter().map(|o| o.config_public_key).collect();
        let encryptions = encrypt(secret.expose(), &config_keys, &StaticSecret::from(dealer));
        Self::with_encryptions(config, set, feed, encryptions)
    }

    pub fn with_encryptions(
        config: &Config,
        set: &OracleSet,
        feed: &FeedConfig,
        encryptions: SharedSecretEncryptions,
    ) -> Result<Self, OracleSetError> {
        let offchain = set.offchain_config(config, feed, encryptions.clone());
        let encoded = set.encode(config, feed, encryptions)?;
        Ok(Self {
            feed: feed.name.clone(),
            contract: Address::from(feed.contract_address.0),
            signers: set.signers(),
            transmitters: set.transmitters(),
            threshold: config.consensus.f as u8,
            offchain,
            encoded,
        })
    }

    /// The digest the contract will compute when this is its `config_count`-th configuration.
    pub fn digest(&self, config_count: u64) -> ConfigDigest {
        crate::node::ocr1::config_digest::config_digest(
            self.contract,
            config_count,
            &self.signers,
            &self.transmitters,
            self.threshold,
            ENCODED_CONFIG_VERSION,
            &self.encoded,
        )
    }

    /// What `enclave don-config` prints for this feed.
    pub fn to_json(&self, config_count: u64) -> Value {
        let o = &self.offchain;
        let hex32 = |b: &[u8]| format!("0x{}", hex::encode(b));
        json!({
            "feed": self.feed,
            "contractAddress": self.contract.to_string(),
            "signers": self.signers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "transmitters": self.transmitters.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "threshold": self.threshold,
            "s": o.s,
            "offchainPublicKeys": o.offchain_public_keys.iter().map(|k| hex32(k)).collect::<Vec<_>>(),
            "peerIds": o.peer_ids,
            "sharedSecretEncryptions": {
                "diffieHellmanPoint": hex32(&o.shared_secret_encryptions.diffie_hellman_point),
                "sharedSecretHash": hex32(&o.shared_secret_encryptions.shared_secret_hash),
                "encryptions": o.shared_secret_encryptions.encryptions.iter().map(|e| hex32(e)).collect::<Vec<_>>(),
            },
            "consensus": {
                "deltaProgressNs": o.delta_progress_ns,
                "deltaResendNs": o.delta_resend_ns,
                "deltaRoundNs": o.delta_round_ns,
                "deltaGraceNs": o.delta_grace_ns,
                "deltaCNs": o.delta_c_ns,
                "alphaPPB": o.alpha_ppb,
                "deltaStageNs": o.delta_stage_ns,
                "rMax": o.r_max,
            },
            "encodedConfigVersion": ENCODED_CONFIG_VERSION,
            "encoded": hex32(&self.encoded),
            "configCount": config_count,
            "configDigest": self.digest(config_count).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NodePublicKeys;
    use crate::node::ocr1::config_digest::decode_offchain_config;
    use crate::node::ocr1::shared_secret::decrypt;

    fn example() -> Config {
        let text = include_str!("../../../configuration.example.json");
        let document: Value = serde_json::from_str(text).expect("example parses");
        crate::config::validate_document(&document)
            .expect("example is valid")
            .config
    }

    fn oracle(node: u32) -> (NodePublicKeys, StaticSecret) {
        let b = node as u8;
        let config_key = StaticSecret::from([b + 0x40; 32]);
        let public = NodePublicKeys::derive(
            node,
            &ed25519_dalek::SigningKey::from_bytes(&[b; 32]),
            &k256::ecdsa::SigningKey::from_slice(&[b; 32]).expect("key"),
            &k256::ecdsa::SigningKey::from_slice(&[b + 0x10; 32]).expect("key"),
            &config_key,
        );
        (public, config_key)
    }

    #[test]
    fn every_oracle_decrypts_the_dealt_secret_and_encoded_round_trips() {
        let config = example();
        let oracles: Vec<(NodePublicKeys, StaticSecret)> = (2..=5).map(oracle).collect();
        let set = OracleSet {
            bootstrap: oracle(1).0,
            oracles: oracles.iter().map(|(p, _)| p.clone()).collect(),
        };
        let secret = [7u8; 16];
        let keys: Vec<[u8; 32]> = set.oracles.iter().map(|o| o.config_public_key).collect();
        let encryptions = encrypt(&secret, &keys, &StaticSecret::from([0x33; 32]));
        let feed = &config.feeds[0];
        let don = DonConfig::with_encryptions(&config, &set, feed, encryptions).expect("builds");
        for (i, (_, key)) in oracles.iter().enumerate() {
            assert_eq!(
                decrypt(&don.offchain.shared_secret_encryptions, i, key),
                Ok(secret)
            );
        }
        assert_eq!(
            decode_offchain_config(&don.encoded).expect("decodes"),
            don.offchain
        );
        assert_eq!(don.threshold, 1);
        assert_eq!(don.signers.len(), 4);
        assert_ne!(
            don.digest(1),
            don.digest(2),
            "the digest covers the config count"
        );
        let json = don.to_json(1);
        assert_eq!(json["peerIds"].as_array().map(Vec::len), Some(4));
        assert_eq!(json["configDigest"], don.digest(1).to_string());
        assert!(
            !json.to_string().contains(&hex::encode(secret)),
            "the secret itself is never printed"
        );
    }
}
