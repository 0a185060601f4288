//! `enclave don-config --submit`: puts each feed's DON configuration on its contract, unless the
//! contract already has it (same signers, transmitters, threshold, parameters, keys, peer ids and
//! shared secret), with the standard OCR1 `setConfig` or the Super Protocol pair
//! `setConsensusConfig` + `setConfig(DonConfig)`; before it the payees the contract lacks
//! (`setPayees`, see [`super::payees`]), after it the configured billing (`setBilling`).

use std::sync::Arc;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};

use super::payees::{self, PayeeError};
use crate::config::schema::chain_options::SetConfigFunction;
use crate::config::schema::feeds::FeedConfig;
use crate::config::Config;
use crate::keys::SharedSecret;
use crate::node::contract::don_config::DonConfig;
use crate::node::contract::oracle_set::{OracleSet, OracleSetError};
use crate::node::evm::aggregator_contract::{
    set_billing_calldata, set_config_calldata, set_consensus_config_calldata, set_payees_calldata,
    sp_set_config_calldata,
};
use crate::node::evm::rpc::CallRequest;
use crate::node::evm::{AggregatorContract, ChainError, GasPolicy, RpcClient, TxSender, TxStatus};
use crate::node::ocr1::config_digest::ENCODED_CONFIG_VERSION;
use crate::node::ocr1::types::ConfigDigest;

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
    pub fn address(&self) -> Address {
        crate::node::ocr1::signature::address_of(self.key.verifying_key())
    }

    /// A sender whose gas limit fits `data`: a configuration costs far more gas than a
    /// `transmit`, so the limit comes from the node's estimate (+30%), never below the policy's.
    async fn sender_for(
        &self,
        contract: &AggregatorContract,
        data: &Bytes,
        chain_id: u64,
    ) -> Result<TxSender, ChainError> {
        let from = self.address();
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

/// What one `submit` did on one contract: its configuration, its payees, its billing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub configuration: Submitted,
    pub payees: PayeesOutcome,
    pub billing: BillingOutcome,
}

impl Submission {
    /// Something configured is not on the contract (billing refused or not supported).
    /// Payee conflicts are only reported: the contract lets only the current payee hand over.
    pub fn billing_problem(&self) -> Option<String> {
        match &self.billing {
            BillingOutcome::Failed(reason) => Some(format!("setBilling: {reason}")),
            BillingOutcome::Unsupported => Some(
                "chain.billing is configured, but the contract has no getBilling/setBilling".into(),
            ),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayeesOutcome {
    /// The contract has no payees (no `setPayees`): nothing to do.
    NotManaged,
    Checked {
        /// `(transmitter, payee)` set by this submission.
        set: Vec<(Address, Address)>,
        transaction: Option<B256>,
        /// `(transmitter, configured payee)` where the contract holds another payee.
        conflicts: Vec<(Address, Address)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingOutcome {
    /// `chain.billing` absent: the contract's billing is left as it is.
    NotConfigured,
    UpToDate,
    Set {
        transaction: B256,
    },
    /// Configured, but the contract has no billing.
    Unsupported,
    /// The contract refused `setBilling` (e.g. the admin lacks the right, or it cannot pay
    /// out what it owes at the old rates first).
    Failed(String),
}

/// Sends one admin call and waits for it; a refusal (in the gas estimate or on chain) is
/// `Reverted` with the contract's reason.
async fn send_admin_call(
    admin: &Admin,
    contract: &AggregatorContract,
    config: &Config,
    call: &'static str,
    data: Bytes,
) -> Result<B256, SubmitError> {
    let reverted = |reason: Option<String>| SubmitError::Reverted {
        call,
        reason: reason.unwrap_or_else(|| "no reason given".into()),
    };
    let sender = match admin
        .sender_for(contract, &data, config.chain.chain_id)
        .await
    {
        Ok(sender) => sender,
        Err(ChainError::Reverted { reason, .. }) => return Err(reverted(reason)),
        Err(e) => return Err(e.into()),
    };
    let options = &config.chain_options;
    let outcome = match sender
        .send_and_wait(
            contract.address(),
            data,
            U256::ZERO,
            options.receipt_timeout,
            options.rebroadcast_after,
        )
        .await
    {
        Ok(outcome) => outcome,
        Err(ChainError::Reverted { reason, .. }) => return Err(reverted(reason)),
        Err(e) => return Err(e.into()),
    };
    if let TxStatus::Reverted { reason } = outcome.status {
        return Err(reverted(reason));
    }
    Ok(outcome.tx_hash)
}

/// Sets the payees the contract lacks (one `setPayees`); reports those it holds otherwise.
async fn reconcile_payees(
    contract: &AggregatorContract,
    admin: &Admin,
    config: &Config,
    set: &OracleSet,
) -> Result<PayeesOutcome, SubmitError> {
    let admin_address = admin.address();
    let wanted: Vec<(Address, Address)> = set
        .oracles
        .iter()
        .map(|o| {
            let payee = config.chain_options.payees.payee_for(
                o.node,
                o.transmitter_address.0 .0,
                admin_address.0 .0,
            );
            (o.transmitter_address, Address::from(payee))
        })
        .collect();
    let plan = match payees::plan(contract, admin_address, &wanted).await {
        Ok(plan) => plan,
        Err(PayeeError::Chain(e)) => return Err(e.into()),
        Err(PayeeError::Refused(reason)) => {
            return Err(SubmitError::Reverted {
                call: "setPayees",
                reason,
            })
        }
    };
    if plan.unsupported {
        return Ok(PayeesOutcome::NotManaged);
    }
    let transaction = if plan.to_set.is_empty() {
        None
    } else {
        let (transmitters, payees): (Vec<Address>, Vec<Address>) =
            plan.to_set.iter().copied().unzip();
        Some(
            send_admin_call(
                admin,
                contract,
                config,
                "setPayees",
                set_payees_calldata(&transmitters, &payees),
            )
            .await?,
        )
    };
    Ok(PayeesOutcome::Checked {
        set: plan.to_set,
        transaction,
        conflicts: plan.conflicts,
    })
}

/// Puts `chain.billing` on the contract when it holds other values.
async fn reconcile_billing(
    contract: &AggregatorContract,
    admin: &Admin,
    config: &Config,
) -> Result<BillingOutcome, SubmitError> {
    let Some(wanted) = config.chain_options.billing else {
        return Ok(BillingOutcome::NotConfigured);
    };
    let current = match contract.billing().await {
        Ok(current) => current,
        Err(e) if e.is_bare_revert() => return Ok(BillingOutcome::Unsupported),
        Err(e) => return Err(e.into()),
    };
    if current == wanted.as_array() {
        return Ok(BillingOutcome::UpToDate);
    }
    let data = set_billing_calldata(wanted.as_array());
    match send_admin_call(admin, contract, config, "setBilling", data).await {
        Ok(transaction) => Ok(BillingOutcome::Set { transaction }),
        Err(SubmitError::Reverted { reason, .. }) => Ok(BillingOutcome::Failed(reason)),
        Err(e) => Err(e),
    }
}

/// Puts `feed`'s configuration on its contract unless it holds it already: first the payees
/// the contract requires, then the configuration, then the billing parameters if configured.
pub async fn submit(
    contract: &AggregatorContract,
    admin: &Admin,
    config: &Config,
    set: &OracleSet,
    feed: &FeedConfig,
    secret: &SharedSecret,
) -> Result<Submission, SubmitError> {
    let payees = reconcile_payees(contract, admin, config, set).await?;
    let configuration = match up_to_date(contract, config, set, feed, secret).await? {
        Some(digest) => Submitted::UpToDate { digest },
        None => put_configuration(contract, admin, config, set, feed, secret).await?,
    };
    let billing = reconcile_billing(contract, admin, config).await?;
    Ok(Submission {
        configuration,
        payees,
        billing,
    })
}

async fn put_configuration(
    contract: &AggregatorContract,
    admin: &Admin,
    config: &Config,
    set: &OracleSet,
    feed: &FeedConfig,
    secret: &SharedSecret,
) -> Result<Submitted, SubmitError> {
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
    let mut transactions = Vec::new();
    for (call, data) in calls {
        transactions.push(send_admin_call(admin, contract, config, call, data).await?);
    }
    let digest = contract.latest_config_details().await?.digest;
    Ok(Submitted::Sent {
        transactions,
        digest,
    })
}
