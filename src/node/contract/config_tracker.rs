//! What each feed's contract says the DON configuration is (latestConfigDetails, then its
//! ConfigSet log): the config digest the oracles must use, and the shared secret dealt to them.
//! An oracle only joins a configuration that names exactly its oracle set and this enclave's
//! parameters, as libocr's `SharedConfigFromContractConfig` checks.

use x25519_dalek::StaticSecret;

use crate::config::schema::feeds::FeedConfig;
use crate::config::Config;
use crate::node::contract::oracle_set::OracleSet;
use crate::node::evm::{AggregatorContract, ChainError};
use crate::node::ocr1::shared_secret::decrypt;
use crate::node::ocr1::types::ConfigDigest;

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("feed {feed}: contract {contract} has no configuration yet: {remedy}")]
    NotConfigured {
        feed: String,
        contract: String,
        remedy: &'static str,
    },
    #[error("feed {feed}: {source}")]
    Chain {
        feed: String,
        #[source]
        source: ChainError,
    },
    #[error(
        "feed {feed}: the contract's configuration differs from this enclave's ({what}): {remedy}"
    )]
    Mismatch {
        feed: String,
        what: &'static str,
        remedy: &'static str,
    },
    #[error("feed {feed}: cannot recover the shared secret: {detail}")]
    Secret { feed: String, detail: String },
}

#[derive(Clone, PartialEq, Eq)]
pub struct OnchainConfig {
    pub digest: ConfigDigest,
    pub config_count: u32,
    pub shared_secret: [u8; 16],
}

impl std::fmt::Debug for OnchainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnchainConfig")
            .field("digest", &self.digest)
            .field("config_count", &self.config_count)
            .finish_non_exhaustive()
    }
}

/// Who puts the configuration on the contract: node 1 itself with `chain.configureContracts`,
/// else the operator.
pub fn remedy(config: &Config) -> &'static str {
    if config.chain_options.configure_contracts {
        "waiting for node 1 to configure it (chain.configureContracts)"
    } else {
        "run `enclave don-config --submit`"
    }
}

impl TrackError {
    /// Expected while node 1 configures the contracts (at boot, or after a change of the
    /// configuration): nothing for the operator to do yet.
    pub fn awaits_node_1(&self, config: &Config) -> bool {
        config.chain_options.configure_contracts
            && matches!(
                self,
                TrackError::NotConfigured { .. } | TrackError::Mismatch { .. }
            )
    }
}

/// Reads and checks `feed`'s contract configuration for oracle `me`.
pub async fn read(
    contract: &AggregatorContract,
    config: &Config,
    feed: &FeedConfig,
    set: &OracleSet,
    me: usize,
    config_key: &StaticSecret,
) -> Result<OnchainConfig, TrackError> {
    let chain = |source| TrackError::Chain {
        feed: feed.name.clone(),
        source,
    };
    let mismatch = |what| TrackError::Mismatch {
        feed: feed.name.clone(),
        what,
        remedy: remedy(config),
    };
    let details = contract.latest_config_details().await.map_err(chain)?;
    if details.config_count == 0 {
        return Err(TrackError::NotConfigured {
            feed: feed.name.clone(),
            contract: contract.address().to_string(),
            remedy: remedy(config),
        });
    }
    let event = contract
        .config_set_at(u64::from(details.block_number))
        .await
        .map_err(chain)?
        .ok_or(mismatch("no ConfigSet log at the configuration's block"))?;
    if event.digest(contract.address()) != details.digest {
        return Err(mismatch(
            "the ConfigSet log does not produce the contract's digest",
        ));
    }
    if event.signers != set.signers() {
        return Err(mismatch("signers"));
    }
    if event.transmitters != set.transmitters() {
        return Err(mismatch("transmitters"));
    }
    if usize::from(event.threshold) != config.consensus.f {
        return Err(mismatch("threshold f"));
    }
    let offchain = event
        .offchain_config()
        .map_err(|_| mismatch("undecodable encoded configuration"))?;
    let ours = set.offchain_config(config, feed, offchain.shared_secret_encryptions.clone());
    if offchain != ours {
        return Err(mismatch("consensus parameters, off-chain keys or peer ids"));
    }
    let shared_secret =
        decrypt(&offchain.shared_secret_encryptions, me, config_key).map_err(|e| {
            TrackError::Secret {
                feed: feed.name.clone(),
                detail: e.to_string(),
            }
        })?;
    Ok(OnchainConfig {
        digest: details.digest,
        config_count: details.config_count,
        shared_secret,
    })
}
