//! The feeds' aggregator contracts as the oracles need them: the DON configuration this
//! enclave's oracles should have ([`oracle_set`], [`don_config`]) and putting it on the contracts
//! ([`submit`], [`configurator`], [`payees`]); what the contracts say their configuration is
//! ([`config_tracker`]) and what they last accepted ([`contract_reader`], [`contract_state`]);
//! and keeping the transmitters paid and funded ([`billing_watch`], [`faucet`]). The on-chain
//! metrics ([`OnchainMetrics`]) live here too; the transmitter counts its outcomes in them.

pub mod billing_watch;
pub mod config_tracker;
pub mod configurator;
pub mod contract_reader;
pub mod contract_state;
pub mod don_config;
pub mod faucet;
pub mod oracle_set;
pub mod payees;
pub mod submit;

use prometheus::{GaugeVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::telemetry::register;

pub struct OnchainMetrics {
    pub transmissions: IntCounterVec,
    pub out_of_bounds: IntCounterVec,
    pub gas_used: IntCounter,
    pub answer_age: GaugeVec,
    pub balances: GaugeVec,
    pub topups: IntCounterVec,
}

impl OnchainMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            transmissions: register(registry, IntCounterVec::new(
                Opts::new("enclave_node_transmissions_total", "Finalized reports handled by this oracle's transmitter, by outcome (landed, stale, reverted, error, and the reasons not to send: contract_has_newer, already_on_chain, pending_without_deviation, out_of_bounds, not_scheduled, …)."),
                &["outcome"],
            )?)?,
            out_of_bounds: register(registry, IntCounterVec::new(
                Opts::new("enclave_node_reports_out_of_bounds_total", "Finalized reports not transmitted because their median is outside the contract's minAnswer/maxAnswer (the contract would revert), by feed."),
                &["feed"],
            )?)?,
            gas_used: register(registry, IntCounter::new("enclave_node_transmit_gas_used_total", "Gas used by this oracle's transmit transactions.")?)?,
            answer_age: register(registry, GaugeVec::new(
                Opts::new("enclave_chain_contract_answer_age_seconds", "Age of each feed contract's latest answer when last read."),
                &["feed"],
            )?)?,
            balances: register(registry, GaugeVec::new(
                Opts::new("enclave_chain_transmitter_balance_wei", "Balance of each oracle's transmitter account (read by node 1)."),
                &["node", "address"],
            )?)?,
            topups: register(registry, IntCounterVec::new(
                Opts::new("enclave_chain_faucet_topups_total", "Transmitter top-ups sent from the faucet key, by result."),
                &["result"],
            )?)?,
        };
        Ok(m)
    }
}
