//! Nonces of one sending key. Several feeds transmit with the same key; each transaction needs
//! the next nonce, with no two transactions sharing one and no gap left behind (a gap stalls
//! every later transaction of the key).
//!
//! A [`NonceLease`] holds the key's lock from choosing the nonce until the node accepted (or
//! refused) the transaction; only an accepted transaction consumes the nonce (`commit`). The
//! counter starts from `eth_getTransactionCount(pending)` and is re-read from the chain after a
//! `nonce too low` or when a transaction was dropped and given up (`resync`).

use std::sync::Arc;

use alloy_primitives::Address;
use tokio::sync::{Mutex, MutexGuard};

use super::error::ChainError;
use super::rpc::RpcClient;

pub struct NonceManager {
    rpc: Arc<RpcClient>,
    address: Address,
    /// The next nonce to give out; `None` until read from the chain.
    next: Mutex<Option<u64>>,
}

/// The right to use one nonce. Dropping it without [`NonceLease::commit`] leaves the nonce to
/// the next transaction.
pub struct NonceLease<'a> {
    guard: MutexGuard<'a, Option<u64>>,
    nonce: u64,
}

impl NonceManager {
    pub fn new(rpc: Arc<RpcClient>, address: Address) -> Self {
        Self {
            rpc,
            address,
            next: Mutex::new(None),
        }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// Waits for the key's lock and returns the next nonce, reading it from the chain first
    /// if it is not known (start, or after a resync).
    pub async fn lease(&self) -> Result<NonceLease<'_>, ChainError> {
        let mut guard = self.next.lock().await;
        let nonce = match *guard {
            Some(nonce) => nonce,
            None => {
                let nonce = self.rpc.nonce(self.address, true).await?;
                tracing::info!(address = %self.address, nonce, "nonce read from the chain");
                *guard = Some(nonce);
                nonce
            }
        };
        Ok(NonceLease { guard, nonce })
    }

    /// Forgets the local counter: the next lease re-reads the pending count from the chain.
    pub async fn resync(&self) {
        let mut guard = self.next.lock().await;
        if guard.take().is_some() {
            tracing::info!(address = %self.address, "nonce will be re-read from the chain");
        }
    }

    /// The next nonce as currently known, without locking out senders for long.
    pub async fn peek(&self) -> Option<u64> {
        *self.next.lock().await
    }
}

impl NonceLease<'_> {
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The transaction was accepted: later transactions use the following nonce.
    pub fn commit(mut self) {
        *self.guard = Some(self.nonce + 1);
    }

    /// The chain disagrees with the counter (`nonce too low`): drop it, so the next lease
    /// re-reads the pending count.
    pub fn forget(mut self) {
        *self.guard = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::node::evm::test_support::MockNode;

    async fn manager(chain_nonce: Arc<AtomicU64>) -> (MockNode, Arc<NonceManager>) {
        let node = MockNode::start(move |method, params| {
            assert_eq!(method, "eth_getTransactionCount");
            assert_eq!(params[1], "pending");
            json!({"result": format!("{:#x}", chain_nonce.load(Ordering::SeqCst))})
        })
        .await;
        let rpc = Arc::new(RpcClient::new(node.url(), Duration::from_secs(5)).expect("client"));
        let address = Address::repeat_byte(7);
        (node, Arc::new(NonceManager::new(rpc, address)))
    }

    #[tokio::test]
    async fn nonces_start_from_the_pending_count_and_advance_on_commit_only() {
        let chain = Arc::new(AtomicU64::new(5));
        let (_node, nonces) = manager(chain.clone()).await;
        let lease = nonces.lease().await.expect("lease");
        assert_eq!(lease.nonce(), 5);
        lease.commit();
        let lease = nonces.lease().await.expect("lease");
        assert_eq!(lease.nonce(), 6);
        drop(lease); // refused by the node: nonce 6 stays free
        let lease = nonces.lease().await.expect("lease");
        assert_eq!(lease.nonce(), 6);
        lease.commit();
        assert_eq!(nonces.peek().await, Some(7));
    }

    #[tokio::test]
    async fn resync_rereads_the_chain() {
        let chain = Arc::new(AtomicU64::new(0));
        let (_node, nonces) = manager(chain.clone()).await;
        nonces.lease().await.expect("lease").commit();
        // Another sender used the key meanwhile.
        chain.store(9, Ordering::SeqCst);
        let lease = nonces.lease().await.expect("lease");
        assert_eq!(lease.nonce(), 1);
        lease.forget(); // the node said "nonce too low"
        assert_eq!(nonces.lease().await.expect("lease").nonce(), 9);
        // After a dropped transaction the pending count may go down: the gap is reused.
        chain.store(4, Ordering::SeqCst);
        nonces.resync().await;
        assert_eq!(nonces.lease().await.expect("lease").nonce(), 4);
    }

    #[tokio::test]
    async fn concurrent_senders_get_distinct_consecutive_nonces() {
        let chain = Arc::new(AtomicU64::new(100));
        let (_node, nonces) = manager(chain).await;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let nonces = nonces.clone();
            tasks.push(tokio::spawn(async move {
                let lease = nonces.lease().await.expect("lease");
                let n = lease.nonce();
                // The "send" takes a while; the lease keeps others out meanwhile.
                tokio::time::sleep(Duration::from_millis(2)).await;
                lease.commit();
                n
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.expect("task"));
        }
        got.sort_unstable();
        assert_eq!(got, (100..120).collect::<Vec<_>>());
    }
}
