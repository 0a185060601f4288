//! `chain.configureContracts`: node 1 puts each feed's DON configuration on its contract at
//! boot — what `enclave don-config --submit` does by hand. In a TEE nobody can run that command,
//! and nobody outside holds the shared secret the configuration carries (encrypted to each
//! oracle), so the enclave must do it itself. A contract that already has this enclave's
//! configuration is left alone; a failure is retried until it succeeds or the node stops. A
//! payee the contract holds otherwise is reported, never retried: only its payee can change it.

use std::time::Duration;

use alloy_primitives::Address;
use std::collections::HashMap;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio_util::sync::CancellationToken;

use super::submit::{submit, Admin, BillingOutcome, PayeesOutcome, Submitted};
use crate::config::schema::feeds::FeedConfig;
use crate::config::Config;
use crate::keys::SharedSecret;
use crate::node::contract::oracle_set::OracleSet;
use crate::node::evm::AggregatorContract;
use crate::telemetry::register;

pub struct ContractConfigurator {
    pub config: Config,
    pub set: OracleSet,
    pub secret: SharedSecret,
    pub admin: Admin,
    /// Delay before another attempt at a feed whose submission failed.
    pub retry_after: Duration,
    pub metrics: ConfiguratorMetrics,
}

pub struct ConfiguratorMetrics {
    pub submissions: IntCounterVec,
    pub payee_conflicts: IntGaugeVec,
}

/// `enclave_chain_contract_configurations_total{feed, result}` and
/// `enclave_chain_contract_payee_conflicts{feed}`.
pub fn metrics(registry: &Registry) -> Result<ConfiguratorMetrics, prometheus::Error> {
    let submissions = register(registry, IntCounterVec::new(
        Opts::new(
            "enclave_chain_contract_configurations_total",
            "Contract configuration checks by node 1 (chain.configureContracts), by feed and result: submitted, up_to_date, failed, billing_failed.",
        ),
        &["feed", "result"],
    )?)?;
    let payee_conflicts = register(registry, IntGaugeVec::new(
        Opts::new(
            "enclave_chain_contract_payee_conflicts",
            "Oracles whose payee on the feed's contract is not the configured one (the contract lets only the current payee hand over), at node 1's last check.",
        ),
        &["feed"],
    )?)?;
    Ok(ConfiguratorMetrics {
        submissions,
        payee_conflicts,
    })
}

/// How one attempt at a feed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Done,
    /// Worth another attempt later (RPC trouble, a refused configuration or billing).
    Retry,
}

impl ContractConfigurator {
    pub async fn run(self, stop: CancellationToken) {
        let mut pending: Vec<FeedConfig> = self.config.feeds.clone();
        let mut last_problem: HashMap<String, String> = HashMap::new();
        loop {
            let mut failed = Vec::new();
            for feed in pending {
                if self.configure(&feed, &mut last_problem).await == Attempt::Retry {
                    failed.push(feed);
                }
            }
            pending = failed;
            if pending.is_empty() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.retry_after) => {}
                _ = stop.cancelled() => return,
            }
        }
        tracing::info!("every feed's contract holds this enclave's configuration");
    }

    /// One attempt at `feed`'s contract. A problem that repeats unchanged is logged once.
    async fn configure(
        &self,
        feed: &FeedConfig,
        last_problem: &mut HashMap<String, String>,
    ) -> Attempt {
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
        let retry_in_ms = self.retry_after.as_millis() as u64;
        let mut problem = |text: String| -> bool {
            let new = last_problem.get(&feed.name) != Some(&text);
            last_problem.insert(feed.name.clone(), text);
            new
        };
        let submission = match outcome {
            Ok(submission) => submission,
            Err(e) => {
                if problem(e.to_string()) {
                    tracing::warn!(feed = %feed.name, error = %e, retry_in_ms,
                        "cannot put the configuration on the contract; retrying");
                }
                self.count(feed, "failed");
                return Attempt::Retry;
            }
        };
        match &submission.configuration {
            Submitted::UpToDate { digest } => {
                tracing::info!(feed = %feed.name, config_digest = %digest, "contract configuration up to date");
                self.count(feed, "up_to_date");
            }
            Submitted::Sent {
                transactions,
                digest,
            } => {
                let transactions: Vec<String> =
                    transactions.iter().map(ToString::to_string).collect();
                tracing::info!(feed = %feed.name, config_digest = %digest, ?transactions, "contract configuration submitted");
                self.count(feed, "submitted");
            }
        }
        self.report_payees(feed, &submission.payees);
        match (&submission.billing, submission.billing_problem()) {
            (BillingOutcome::Set { transaction }, _) => {
                tracing::info!(feed = %feed.name, tx = %transaction, "billing parameters set")
            }
            (BillingOutcome::Failed(_), Some(text)) => {
                if problem(text.clone()) {
                    tracing::warn!(feed = %feed.name, error = %text, retry_in_ms,
                        "cannot put chain.billing on the contract; retrying");
                }
                self.count(feed, "billing_failed");
                return Attempt::Retry;
            }
            (_, Some(text)) => {
                // Retrying cannot help: the contract has no billing.
                tracing::error!(feed = %feed.name, error = %text, "chain.billing not applied");
                self.count(feed, "billing_failed");
            }
            _ => {}
        }
        Attempt::Done
    }

    fn report_payees(&self, feed: &FeedConfig, payees: &PayeesOutcome) {
        let PayeesOutcome::Checked {
            set,
            transaction,
            conflicts,
        } = payees
        else {
            return;
        };
        if let Some(tx) = transaction {
            let set: Vec<String> = set.iter().map(|(t, p)| format!("{t}→{p}")).collect();
            tracing::info!(feed = %feed.name, %tx, payees = ?set, "payees set");
        }
        self.metrics
            .payee_conflicts
            .with_label_values(&[&feed.name])
            .set(conflicts.len() as i64);
        for (transmitter, wanted) in conflicts {
            tracing::warn!(feed = %feed.name, %transmitter, configured = %wanted,
                "the contract holds another payee for this transmitter and refuses to change it (payee already set): the current payee must call transferPayeeship, then the configured one acceptPayeeship");
        }
    }

    fn count(&self, feed: &FeedConfig, result: &str) {
        self.metrics
            .submissions
            .with_label_values(&[&feed.name, result])
            .inc();
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
