//! One task in the enclave (on node 1) watches every oracle's transmitter balance and, when a
//! faucet key is configured, tops a transmitter up whenever it is below `faucetMinWei` — with as
//! many transfers of `faucetTopupWei` as it takes to get above it (the reference sent one, which
//! left a near-empty wallet below the threshold).

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, Bytes, U256};
use tokio_util::sync::CancellationToken;

use super::OnchainMetrics;
use crate::node::evm::{RpcClient, TxSender, TxStatus};

/// Transfers per transmitter per check at most, so a misconfigured amount cannot drain the faucet.
const MAX_TOPUPS_PER_CHECK: u32 = 10;

pub struct Faucet {
    pub rpc: Arc<RpcClient>,
    /// `None`: balances are only watched (no faucet key).
    pub sender: Option<TxSender>,
    /// (node number, transmitter address).
    pub targets: Vec<(u32, Address)>,
    pub min_wei: u128,
    pub topup_wei: u128,
    pub interval: Duration,
    pub receipt_timeout: Duration,
    pub rebroadcast_after: Duration,
    pub metrics: Arc<OnchainMetrics>,
}

impl Faucet {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            for &(node, address) in &self.targets {
                self.check(node, address).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    async fn check(&self, node: u32, address: Address) {
        for _ in 0..=MAX_TOPUPS_PER_CHECK {
            let balance = match self.rpc.balance(address).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(node, %address, error = %e, "cannot read the transmitter balance");
                    return;
                }
            };
            self.metrics
                .balances
                .with_label_values(&[&node.to_string(), &address.to_string()])
                .set(u256_f64(balance));
            if balance >= U256::from(self.min_wei) {
                return;
            }
            let Some(sender) = &self.sender else {
                tracing::warn!(node, %address, balance = %balance, min = self.min_wei, "transmitter balance low and no faucet key configured");
                return;
            };
            if !self.top_up(sender, node, address).await {
                return;
            }
        }
        tracing::warn!(node, %address, "still below faucetMinWei after the maximum number of top-ups");
    }

    async fn top_up(&self, sender: &TxSender, node: u32, address: Address) -> bool {
        let sent = sender
            .send_and_wait(
                address,
                Bytes::new(),
                U256::from(self.topup_wei),
                self.receipt_timeout,
                self.rebroadcast_after,
            )
            .await;
        match sent {
            Ok(o) if o.status == TxStatus::Success => {
                tracing::info!(node, %address, amount = self.topup_wei, tx = %o.tx_hash, "transmitter topped up");
                self.metrics.topups.with_label_values(&["success"]).inc();
                true
            }
            Ok(o) => {
                tracing::warn!(node, %address, tx = %o.tx_hash, "top-up reverted");
                self.metrics.topups.with_label_values(&["reverted"]).inc();
                false
            }
            Err(e) => {
                tracing::warn!(node, %address, error = %e, "top-up failed");
                self.metrics.topups.with_label_values(&["error"]).inc();
                false
            }
        }
    }
}

fn u256_f64(v: U256) -> f64 {
    v.to_string().parse().unwrap_or(f64::MAX)
}
