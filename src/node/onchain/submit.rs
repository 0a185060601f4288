//! `enclave don-config --submit`: puts each feed's DON configuration on its contract, unless the
//! contract already has it (same signers, transmitters, threshold, parameters, keys, peer ids and
//! shared secret), with the standard OCR1 `setConfig` or the Super Protocol pair
//! `setConsensusConfig` + `setConfig(DonConfig)`.

use std::sync::Arc;

use alloy_primitives::{keccak256, Bytes, B256, U256};

use crate::config::schema::chain_options::SetConfigFunction;
use crate::config::schema::feeds::FeedConfig;
use crate::config::Config;
use crate::node::chain::aggregator_contract::{
    set_config_calldata, set_consensus_config_calldata, sp_set_config_calldata,
};
use crate::node::chain::rpc::CallRequest;
use crate::node::chain::{
    AggregatorContract, ChainError, GasPolicy, RpcClient, TxSender, TxStatus,
};
use crate::node::don_config::DonConfig;
use crate::node::keys::SharedSecret;
use crate::node::ocr1::config_digest::ENCODED_CONFIG_VERSION;
use crate::node::ocr1::types::ConfigDigest;
use crate::node::oracle_set::{OracleSet, OracleSetError};

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Config(#[from] OracleSetError),
    #[error("{call} reverted: {reason}")]
    Reverted { call: &'static str, reason: String },
    #[error("cannot encode the configuration: {0}")]
    Encoding(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    UpToDate {
        digest: ConfigDigest,
    },
    Sent {
        transactions: Vec<B256>,
        digest: ConfigDigest,
    },
}

impl Admin {
    /// A sender whose gas limit fits `data`: a configuration costs far more gas than a
    /// `transmit`, so the limit comes from the node's estimate (+30%), never below the policy's.
    async fn sender_for(
        &self,
        contract: &AggregatorContract,
        data: &Bytes,
        chain_id: u64,
    ) -> Result<TxSender, ChainError> {
        let from = crate::node::ocr1::signature::address_of(self.key.verifying_key());
        let estimate = self
            .rpc
            .estimate_gas(&CallRequest::new(
                Some(from),
                contract.address(),
                data.clone(),
            ))
            .await?;
        let mut policy = self.policy;
        policy.gas_limit = policy.gas_limit.max(estimate.saturating_mul(13) / 10);
        TxSender::new(self.rpc.clone(), chain_id, self.key.clone(), policy)
    }
}

/// Whether the contract's current configuration already is this enclave's.
pub async fn up_to_date(
    contract: &AggregatorContract,
    config: &Config,
    set: &OracleSet,
    feed: &FeedConfig,
    secret: &SharedSecret,
) -> Result<Option<ConfigDigest>, ChainError> {
    let details = contract.latest_config_details().await?;
    if details.config_count == 0 {
        return Ok(None);
    }
    let Some(event) = contract
        .config_set_at(u64::from(details.block_number))
        .await?
    else {
        return Ok(None);
    };
    let Ok(theirs) = event.offchain_config() else {
        return Ok(None);
    };
    let ours = set.offchain_config(config, feed, theirs.shared_secret_encryptions.clone());
    let same = event.signers == set.signers()
        && event.transmitters == set.transmitters()
        && usize::from(event.threshold) == config.consensus.f
        && theirs == ours
        && theirs.shared_secret_encryptions.shared_secret_hash == keccak256(secret.expose()).0
        && theirs.shared_secret_encryptions.encryptions.len() == set.oracles.len();
    Ok(same.then_some(details.digest))
}

/// Who sends the configuration: the admin key on the configured chain, with the configured fees.
pub struct Admin {
    pub rpc: Arc<RpcClient>,
    pub key: k256::ecdsa::SigningKey,
    pub policy: GasPolicy,
}

pub async fn submit(
    contract: &AggregatorContract,
    admin: &Admin,
    config: &Config,
    set: &OracleSet,
    feed: &FeedConfig,
    secret: &SharedSecret,
) -> Result<Submitted, SubmitError> {
    if let Some(digest) = up_to_date(contract, config, set, feed, secret).await? {
        return Ok(Submitted::UpToDate { digest });
    }
    let don = DonConfig::build(config, set, feed, secret)?;
    let calls: Vec<(&'static str, Bytes)> = match config.chain_options.set_config_function {
        SetConfigFunction::Standard => vec![(
            "setConfig",
            set_config_calldata(
                &don.signers,
                &don.transmitters,
                don.threshold,
                ENCODED_CONFIG_VERSION,
                &don.encoded,
            ),
        )],
        SetConfigFunction::SuperProtocol => vec![
            (
                "setConsensusConfig",
                set_consensus_config_calldata(&don.offchain, ENCODED_CONFIG_VERSION),
            ),
            (
                "setConfig(DonConfig)",
                sp_set_config_calldata(
                    &don.signers,
                    &don.transmitters,
                    don.threshold,
                    &don.offchain,
                )
                .map_err(|e| SubmitError::Encoding(e.to_string()))?,
            ),
        ],
    };
    let options = &config.chain_options;
    let mut transactions = Vec::new();
    for (call, data) in calls {
        let outcome = admin
            .sender_for(contract, &data, config.chain.chain_id)
            .await?
            .send_and_wait(
                contract.address(),
                data,
                U256::ZERO,
                options.receipt_timeout,
                options.rebroadcast_after,
            )
            .await?;
        if let TxStatus::Reverted { reason } = outcome.status {
            return Err(SubmitError::Reverted {
                call,
                reason: reason.unwrap_or_else(|| "no reason given".into()),
            });
        }
        transactions.push(outcome.tx_hash);
    }
    let digest = contract.latest_config_details().await?.digest;
    Ok(Submitted::Sent {
        transactions,
        digest,
    })
}
