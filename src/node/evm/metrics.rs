//! Prometheus handles for the chain client. Register once per process and share the `Arc` with
//! every [`RpcClient`](super::rpc::RpcClient) and [`TxSender`](super::sender::TxSender): a
//! second registration of the same names fails.

use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::telemetry::register;

/// Round trips to public RPC endpoints range from a few ms to the 20 s timeouts.
const RPC_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

/// What happened to a transaction, the `outcome` label of `enclave_chain_transactions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEvent {
    /// Accepted by the node for the first time (one per nonce).
    Sent,
    /// Mined with status 1.
    Landed,
    /// Mined with status 0.
    Reverted,
    /// Re-sent with the same nonce and higher fees.
    Replaced,
    /// Gone from the node's pool without a receipt (re-sent, or its nonce given up).
    Dropped,
}

impl TxEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            TxEvent::Sent => "sent",
            TxEvent::Landed => "landed",
            TxEvent::Reverted => "reverted",
            TxEvent::Replaced => "replaced",
            TxEvent::Dropped => "dropped",
        }
    }
}

pub struct ChainMetrics {
    /// `enclave_chain_rpc_requests_total{method, outcome}`; outcome is `ok` or
    /// [`ChainError::kind`](super::error::ChainError::kind).
    pub rpc_requests: IntCounterVec,
    /// `enclave_chain_rpc_duration_seconds{method}`.
    pub rpc_duration: HistogramVec,
    /// `enclave_chain_transactions_total{outcome}`: sent, landed, reverted, replaced, dropped.
    pub transactions: IntCounterVec,
    /// `enclave_chain_gas_used_total`: gas of mined transactions (landed and reverted).
    pub gas_used: IntCounter,
    /// `enclave_chain_gas_price_wei`: effective gas price of the latest mined transaction.
    pub gas_price_wei: Gauge,
}

impl ChainMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            rpc_requests: register(registry, IntCounterVec::new(
                Opts::new(
                    "enclave_chain_rpc_requests_total",
                    "JSON-RPC requests to the EVM node, by method and outcome (ok or the error kind).",
                ),
                &["method", "outcome"],
            )?)?,
            rpc_duration: register(registry, HistogramVec::new(
                HistogramOpts::new(
                    "enclave_chain_rpc_duration_seconds",
                    "Duration of JSON-RPC requests to the EVM node, by method.",
                )
                .buckets(RPC_BUCKETS.to_vec()),
                &["method"],
            )?)?,
            transactions: register(registry, IntCounterVec::new(
                Opts::new(
                    "enclave_chain_transactions_total",
                    "Transactions by outcome: sent, landed, reverted, replaced, dropped.",
                ),
                &["outcome"],
            )?)?,
            gas_used: register(registry, IntCounter::new(
                "enclave_chain_gas_used_total",
                "Gas used by this node's mined transactions (successful and reverted).",
            )?)?,
            gas_price_wei: register(registry, Gauge::new(
                "enclave_chain_gas_price_wei",
                "Effective gas price, in wei, of this node's latest mined transaction.",
            )?)?,
        };
        Ok(m)
    }

    pub(crate) fn rpc(&self, method: &str, outcome: &str, seconds: f64) {
        self.rpc_requests
            .with_label_values(&[method, outcome])
            .inc();
        self.rpc_duration
            .with_label_values(&[method])
            .observe(seconds);
    }

    pub(crate) fn tx(&self, event: TxEvent) {
        self.transactions.with_label_values(&[event.as_str()]).inc();
    }

    pub(crate) fn mined(&self, gas_used: u64, effective_gas_price: u128) {
        self.gas_used.inc_by(gas_used);
        // f64 keeps 53 bits: exact up to ~9·10^15 wei (9 million gwei), plenty for a gauge.
        self.gas_price_wei.set(effective_gas_price as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_under_the_documented_names() {
        let registry = Registry::new();
        let m = ChainMetrics::register(&registry).expect("register");
        m.rpc("eth_chainId", "ok", 0.01);
        m.tx(TxEvent::Sent);
        m.mined(21_000, 1);
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .expect("encode");
        for name in [
            "enclave_chain_rpc_requests_total",
            "enclave_chain_rpc_duration_seconds",
            "enclave_chain_transactions_total",
            "enclave_chain_gas_used_total",
            "enclave_chain_gas_price_wei",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
        assert!(ChainMetrics::register(&registry).is_err());
    }
}
