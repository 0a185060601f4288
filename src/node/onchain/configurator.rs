//! `chain.configureContracts`: node 1 puts each feed's DON configuration on its contract at
//! boot — what `enclave don-config --submit` does by hand. In a TEE nobody can run that command,
//! and nobody outside holds the shared secret the configuration carries (encrypted to each
//! oracle), so the enclave must do it itself. A contract that already has this enclave's
//! configuration is left alone; a failure is retried until it succeeds or the node stops.

use std::time::Duration;

use alloy_primitives::Address;
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::watch;

use super::submit::{submit, Admin, Submitted};
use crate::config::schema::feeds::FeedConfig;
use crate::config::Config;
use crate::node::chain::AggregatorContract;
use crate::node::keys::SharedSecret;
use crate::node::oracle_set::OracleSet;

pub struct ContractConfigurator {
    pub config: Config,
    pub set: OracleSet,
    pub secret: SharedSecret,
    pub admin: Admin,
    /// Delay before another attempt at a feed whose submission failed.
    pub retry_after: Duration,
    pub submissions: IntCounterVec,
}

/// `enclave_chain_contract_configurations_total{feed, result}`.
pub fn submissions_metric(registry: &Registry) -> Result<IntCounterVec, prometheus::Error> {
    let counter = IntCounterVec::new(
        Opts::new(
            "enclave_chain_contract_configurations_total",
            "Contract configuration checks by node 1 (chain.configureContracts), by feed and result: submitted, up_to_date, failed.",
        ),
        &["feed", "result"],
    )?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

impl ContractConfigurator {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut pending: Vec<FeedConfig> = self.config.feeds.clone();
        loop {
            let mut failed = Vec::new();
            for feed in pending {
                if !self.configure(&feed).await {
                    failed.push(feed);
                }
            }
            pending = failed;
            if pending.is_empty() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.retry_after) => {}
                _ = stop.changed() => return,
            }
        }
        tracing::info!("every feed's contract holds this enclave's configuration");
    }

    /// One attempt; true when the contract holds this enclave's configuration afterwards.
    async fn configure(&self, feed: &FeedConfig) -> bool {
        let contract = AggregatorContract::new(
            self.admin.rpc.clone(),
            Address::from(feed.contract_address.0),
        );
        let outcome = submit(
            &contract,
            &self.admin,
            &self.config,
            &self.set,
            feed,
            &self.secret,
        )
        .await;
        let result = match &outcome {
            Ok(Submitted::UpToDate { digest }) => {
                tracing::info!(feed = %feed.name, config_digest = %digest, "contract configuration up to date");
                "up_to_date"
            }
            Ok(Submitted::Sent {
                transactions,
                digest,
            }) => {
                let transactions: Vec<String> =
                    transactions.iter().map(ToString::to_string).collect();
                tracing::info!(feed = %feed.name, config_digest = %digest, ?transactions, "contract configuration submitted");
                "submitted"
            }
            Err(e) => {
                tracing::warn!(feed = %feed.name, error = %e, retry_in_ms = self.retry_after.as_millis() as u64,
                    "cannot put the configuration on the contract; retrying");
                "failed"
            }
        };
        self.submissions
            .with_label_values(&[&feed.name, result])
            .inc();
        outcome.is_ok()
    }
}

/// Who configures the contracts: `chain.adminPrivateKey`, else node 1's transmitter key.
pub fn admin_key(
    config: &Config,
    node_1_transmitter: &k256::ecdsa::SigningKey,
) -> Result<k256::ecdsa::SigningKey, String> {
    match &config.chain_options.admin_private_key {
        Some(key) => crate::config::values::secp256k1_private_key(key.expose())
            .map_err(|message| format!("chain.adminPrivateKey {message}")),
        None => Ok(node_1_transmitter.clone()),
    }
}
