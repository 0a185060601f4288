//! Node 1 watches what each feed's contract owes the oracles and whether it can pay: every
//! oracle's `owedPayment`, the contract's `linkAvailableForPayment` (its LINK balance minus all
//! it owes; negative means it cannot pay everyone) and its LINK balance. One task for the
//! enclave. A contract without billing (no `getLinkToken`, such as the project's Vyper model)
//! is noted once and left out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, I256, U256};
use prometheus::{GaugeVec, Opts, Registry};
use tokio_util::sync::CancellationToken;

use crate::node::evm::{AggregatorContract, ChainError};
use crate::telemetry::register;

pub struct BillingMetrics {
    pub owed: GaugeVec,
    pub available: GaugeVec,
    pub balance: GaugeVec,
}

impl BillingMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            owed: register(registry, GaugeVec::new(
                Opts::new(
                    "enclave_chain_oracle_owed_payment_juels",
                    "LINK (in juels, 1e-18 LINK) each feed's contract owes each oracle (owedPayment of its transmitter), read by node 1.",
                ),
                &["feed", "node"],
            )?)?,
            available: register(registry, GaugeVec::new(
                Opts::new(
                    "enclave_chain_contract_link_available_juels",
                    "Each feed contract's linkAvailableForPayment: its LINK balance minus everything it owes the oracles (juels); negative: it cannot pay them all. Read by node 1.",
                ),
                &["feed"],
            )?)?,
            balance: register(registry, GaugeVec::new(
                Opts::new(
                    "enclave_chain_contract_link_balance_juels",
                    "Each feed contract's balance of its LINK token (juels), read by node 1.",
                ),
                &["feed"],
            )?)?,
        };
        Ok(m)
    }
}

pub struct BillingWatch {
    /// `(feed name, contract)`.
    pub contracts: Vec<(String, AggregatorContract)>,
    /// `(node number, transmitter address)` of every oracle.
    pub oracles: Vec<(u32, Address)>,
    pub interval: Duration,
    pub metrics: Arc<BillingMetrics>,
}

/// What node 1 knows of a contract's billing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Unknown,
    Link(Address),
    /// The contract has no billing: not read again.
    NoBilling,
}

impl BillingWatch {
    pub async fn run(self, stop: CancellationToken) {
        let mut tokens: HashMap<String, Token> = HashMap::new();
        let mut last_error: HashMap<String, String> = HashMap::new();
        loop {
            for (feed, contract) in &self.contracts {
                let token = tokens.entry(feed.clone()).or_insert(Token::Unknown);
                match self.check(feed, contract, token).await {
                    Ok(()) => {
                        last_error.remove(feed);
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if last_error.get(feed) != Some(&text) {
                            tracing::warn!(%feed, error = %text, "cannot read the contract's LINK balance and payments");
                            last_error.insert(feed.clone(), text);
                        }
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    async fn check(
        &self,
        feed: &str,
        contract: &AggregatorContract,
        token: &mut Token,
    ) -> Result<(), ChainError> {
        if *token == Token::Unknown {
            *token = match contract.link_token().await {
                Ok(address) => Token::Link(address),
                Err(e) if e.is_bare_revert() => {
                    tracing::info!(feed, contract = %contract.address(), "the contract has no LINK billing: payments not watched");
                    Token::NoBilling
                }
                Err(e) => return Err(e),
            };
        }
        let Token::Link(link) = *token else {
            return Ok(());
        };
        for &(node, transmitter) in &self.oracles {
            let owed = contract.owed_payment(transmitter).await?;
            self.metrics
                .owed
                .with_label_values(&[feed, &node.to_string()])
                .set(u256_f64(owed));
        }
        // Without a token (address 0) the contract cannot even say what it has: its
        // linkAvailableForPayment reverts. What it owes is still known.
        if link == Address::ZERO {
            return Ok(());
        }
        let available = contract.link_available_for_payment().await?;
        self.metrics
            .available
            .with_label_values(&[feed])
            .set(i256_f64(available));
        let balance = contract.token_balance(link).await?;
        self.metrics
            .balance
            .with_label_values(&[feed])
            .set(u256_f64(balance));
        Ok(())
    }
}

pub fn u256_f64(v: U256) -> f64 {
    v.to_string().parse().unwrap_or(f64::MAX)
}

pub fn i256_f64(v: I256) -> f64 {
    v.to_string().parse().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_become_gauge_values_with_their_sign() {
        assert_eq!(u256_f64(U256::from(10u64).pow(U256::from(21))), 1e21);
        assert_eq!(
            i256_f64(I256::try_from(-5_000_000_000i64).expect("fits")),
            -5e9
        );
        assert_eq!(i256_f64(I256::ZERO), 0.0);
    }
}
