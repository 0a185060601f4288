//! Sending transactions from one key and seeing them mined.
//!
//! [`TxSender::send`] prices, numbers, signs and submits one transaction.
//! [`TxSender::send_and_wait`] also polls for its receipt (backing off); when none comes within
//! `rebroadcast_after` it either re-sends the same bytes (the node no longer knows the
//! transaction: dropped from its pool) or replaces it with the same nonce and bumped fees, and
//! finally reports the receipt, with the revert reason recovered by replaying the call at the
//! block it was mined in. These are the stalls Chainlink's transaction manager is known for
//! (out-of-funds keys, stuck nonces, gas bumping: ocr-and-sources.md A.4 item 7).
//!
//! Share one `TxSender` (in an `Arc`) among all feeds using the same key: its nonce manager is
//! what keeps them from colliding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes, B256, U256};
use k256::ecdsa::SigningKey;

use super::error::{ChainError, ErrorClass};
use super::gas::{Fees, GasPolicy};
use super::metrics::{ChainMetrics, TxEvent};
use super::nonce::NonceManager;
use super::rpc::{CallRequest, RpcClient};
use super::signing::{sign_transaction, SignedTx, TxRequest};
use super::types::{BlockTag, Receipt};
use crate::node::ocr1::signature::address_of;

/// First wait between receipt polls; each poll waits 1.5× longer, up to [`MAX_POLL`]. opBNB
/// makes a block every second or less, so the first polls are short.
const FIRST_POLL: Duration = Duration::from_millis(500);
const MAX_POLL: Duration = Duration::from_secs(4);

/// A transaction the node accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub tx_hash: B256,
    pub nonce: u64,
    pub fees: Fees,
    /// The signed bytes, kept to re-send them if the node drops the transaction.
    pub raw: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    Success,
    /// Mined with status 0. `reason` comes from replaying the call at the block it was mined
    /// in; `None` when the replay does not revert (state-dependent) or gives no reason.
    Reverted {
        reason: Option<String>,
    },
}

/// A mined transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The version that was mined (after replacements, not necessarily the first hash).
    pub tx_hash: B256,
    pub nonce: u64,
    pub status: TxStatus,
    pub gas_used: u64,
    pub effective_gas_price: u128,
    pub block_number: u64,
}

pub struct TxSender {
    rpc: Arc<RpcClient>,
    chain_id: u64,
    key: SigningKey,
    address: Address,
    policy: GasPolicy,
    nonces: NonceManager,
    metrics: Option<Arc<ChainMetrics>>,
    first_poll: Duration,
    max_poll: Duration,
}

/// No key material: only who sends, where, and how it prices.
impl std::fmt::Debug for TxSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxSender")
            .field("address", &self.address)
            .field("chain_id", &self.chain_id)
            .field("endpoint", &self.rpc.endpoint())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// One version of the transaction for a nonce (the first, or a replacement).
#[derive(Debug, Clone)]
struct Version {
    hash: B256,
    fees: Fees,
    raw: Bytes,
}

enum Step {
    Continue,
    /// The node says the nonce is used, but none of our versions had a receipt yet.
    NonceUsed,
}

impl TxSender {
    /// A sender for `key` on `chain_id`. Does not contact the node: call
    /// [`RpcClient::check_chain_id`] first to refuse a wrong endpoint.
    pub fn new(
        rpc: Arc<RpcClient>,
        chain_id: u64,
        key: SigningKey,
        policy: GasPolicy,
    ) -> Result<Self, ChainError> {
        policy.validate()?;
        let address = address_of(key.verifying_key());
        Ok(Self {
            nonces: NonceManager::new(rpc.clone(), address),
            rpc,
            chain_id,
            key,
            address,
            policy,
            metrics: None,
            first_poll: FIRST_POLL,
            max_poll: MAX_POLL,
        })
    }

    pub fn with_metrics(mut self, metrics: Arc<ChainMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Receipt polling: the first wait and the longest one (defaults 500 ms and 4 s).
    pub fn with_receipt_polling(mut self, first: Duration, max: Duration) -> Self {
        self.first_poll = first.max(Duration::from_millis(1));
        self.max_poll = max.max(self.first_poll);
        self
    }

    /// The account that sends (and pays for) the transactions.
    pub fn address(&self) -> Address {
        self.address
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub fn policy(&self) -> &GasPolicy {
        &self.policy
    }

    pub fn rpc(&self) -> &Arc<RpcClient> {
        &self.rpc
    }

    pub fn nonces(&self) -> &NonceManager {
        &self.nonces
    }

    /// Prices, numbers, signs and submits one transaction calling `to`.
    ///
    /// If the node says the nonce is used (another sender with this key, or transactions
    /// pending from before a restart), the nonce is re-read from the chain and the send
    /// retried once. A refused transaction does not consume its nonce.
    pub async fn send(&self, to: Address, data: Bytes, value: U256) -> Result<Sent, ChainError> {
        let fees = self.policy.initial_fees(&self.rpc).await?;
        let mut resynced = false;
        loop {
            let lease = self.nonces.lease().await?;
            let nonce = lease.nonce();
            let signed = self.sign(nonce, to, &data, value, fees)?;
            match self.broadcast(&signed.raw, signed.hash).await {
                Ok(()) => {
                    lease.commit();
                    self.count(TxEvent::Sent);
                    tracing::info!(tx = %signed.hash, nonce, %to, price = fees.max_price(), "transaction sent");
                    return Ok(Sent {
                        tx_hash: signed.hash,
                        nonce,
                        fees,
                        raw: signed.raw,
                    });
                }
                Err(e) if counter_behind(&e) => {
                    lease.forget();
                    if resynced {
                        return Err(e);
                    }
                    resynced = true;
                    tracing::warn!(nonce, error = %e, "nonce already used on chain; re-reading it");
                }
                Err(e) => {
                    tracing::warn!(nonce, %to, error = %e, "transaction refused");
                    return Err(e);
                }
            }
        }
    }

    /// [`send`](Self::send), then waits for the receipt.
    ///
    /// Every `rebroadcast_after` without a receipt: if the node no longer knows the
    /// transaction it is re-sent as is (dropped); otherwise it is replaced (same nonce, fees
    /// bumped by the policy, never above its cap). Gives up after `receipt_timeout` with
    /// [`ChainError::ReceiptTimeout`] (the transaction may still be mined later), or with
    /// [`ChainError::NonceTooLow`] when another transaction took the nonce.
    pub async fn send_and_wait(
        &self,
        to: Address,
        data: Bytes,
        value: U256,
        receipt_timeout: Duration,
        rebroadcast_after: Duration,
    ) -> Result<Outcome, ChainError> {
        let deadline = Instant::now() + receipt_timeout;
        let sent = self.send(to, data.clone(), value).await?;
        let nonce = sent.nonce;
        let mut versions = vec![Version {
            hash: sent.tx_hash,
            fees: sent.fees,
            raw: sent.raw,
        }];
        // The highest fees offered, even if refused: the next replacement must beat them.
        let mut floor = sent.fees;
        let mut last_broadcast = Instant::now();
        let mut nonce_used_at: Option<Instant> = None;
        let mut poll = self.first_poll;
        let mut poll_errors = 0u32;
        loop {
            match self.find_receipt(&versions).await {
                Ok(Some((hash, receipt))) => {
                    let fees = versions
                        .iter()
                        .find(|v| v.hash == hash)
                        .map_or(floor, |v| v.fees);
                    return Ok(self.outcome(nonce, fees, receipt, to, &data, value).await);
                }
                Ok(None) => poll_errors = 0,
                Err(e) => {
                    poll_errors += 1;
                    if poll_errors == 1 || poll_errors.is_multiple_of(10) {
                        tracing::warn!(nonce, error = %e, failures = poll_errors, "cannot poll for the receipt");
                    }
                }
            }
            let latest = versions.last().map_or(B256::ZERO, |v| v.hash);
            let now = Instant::now();
            if let Some(since) = nonce_used_at {
                // Receipts can lag the nonce on load-balanced endpoints: give them a moment.
                if now.duration_since(since) >= self.max_poll * 3 {
                    self.count(TxEvent::Dropped);
                    self.nonces.resync().await;
                    tracing::error!(nonce, tx = %latest, "the nonce was used by a transaction not sent by this process");
                    return Err(ChainError::NonceTooLow {
                        message: format!(
                            "nonce {nonce} was taken by another transaction; {latest} was never mined"
                        ),
                    });
                }
            }
            if now >= deadline {
                if let Ok(false) = self.rpc.transaction_known(latest).await {
                    // Given up and gone: its nonce is a gap that would stall every later
                    // transaction, so the next send re-reads the nonce from the chain.
                    self.count(TxEvent::Dropped);
                    self.nonces.resync().await;
                }
                tracing::warn!(nonce, tx = %latest, ?receipt_timeout, "no receipt in time");
                return Err(ChainError::ReceiptTimeout {
                    tx_hash: latest,
                    nonce,
                    after: receipt_timeout,
                });
            }
            if nonce_used_at.is_none() && now.duration_since(last_broadcast) >= rebroadcast_after {
                if let Step::NonceUsed = self
                    .rebroadcast(nonce, to, &data, value, &mut versions, &mut floor)
                    .await
                {
                    nonce_used_at = Some(Instant::now());
                }
                last_broadcast = Instant::now();
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(poll.min(remaining).max(Duration::from_millis(1))).await;
            poll = (poll * 3 / 2).min(self.max_poll);
        }
    }

    fn sign(
        &self,
        nonce: u64,
        to: Address,
        data: &Bytes,
        value: U256,
        fees: Fees,
    ) -> Result<SignedTx, ChainError> {
        sign_transaction(
            &self.key,
            &TxRequest {
                chain_id: self.chain_id,
                nonce,
                to,
                value,
                data: data.clone(),
                gas_limit: self.policy.gas_limit,
                fees,
            },
        )
    }

    /// Submits signed bytes. "Already known" is success. After a transport failure the send
    /// may or may not have reached the node, so the node is asked whether it has the hash.
    async fn broadcast(&self, raw: &Bytes, hash: B256) -> Result<(), ChainError> {
        match self.rpc.send_raw(raw).await {
            Ok(node_hash) => {
                if node_hash != hash {
                    tracing::warn!(ours = %hash, node = %node_hash, "the node reports another transaction hash");
                }
                Ok(())
            }
            Err(ChainError::AlreadyKnown) => Ok(()),
            Err(e) if e.class() == ErrorClass::Transient => {
                match self.rpc.transaction_known(hash).await {
                    Ok(true) => {
                        tracing::info!(tx = %hash, error = %e, "the send failed but the node has the transaction");
                        Ok(())
                    }
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The newest version first: after a replacement it is the likeliest to be mined.
    async fn find_receipt(
        &self,
        versions: &[Version],
    ) -> Result<Option<(B256, Receipt)>, ChainError> {
        let mut last_error = None;
        for version in versions.iter().rev() {
            match self.rpc.receipt(version.hash).await {
                Ok(Some(receipt)) => return Ok(Some((version.hash, receipt))),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
        }
        last_error.map_or(Ok(None), Err)
    }

    async fn rebroadcast(
        &self,
        nonce: u64,
        to: Address,
        data: &Bytes,
        value: U256,
        versions: &mut Vec<Version>,
        floor: &mut Fees,
    ) -> Step {
        let Some(latest) = versions.last().cloned() else {
            return Step::Continue;
        };
        let known = match self.rpc.transaction_known(latest.hash).await {
            Ok(known) => known,
            Err(e) => {
                tracing::debug!(nonce, error = %e, "cannot ask the node about the transaction");
                return Step::Continue;
            }
        };
        if !known {
            self.count(TxEvent::Dropped);
            tracing::warn!(nonce, tx = %latest.hash, "the node dropped the transaction; re-sending it");
            match self.broadcast(&latest.raw, latest.hash).await {
                Ok(()) => return Step::Continue,
                Err(ChainError::NonceTooLow { .. }) => return Step::NonceUsed,
                // Prices went up since: fall through to a replacement.
                Err(ChainError::Underpriced { .. } | ChainError::ReplacementUnderpriced { .. }) => {
                }
                Err(e) => {
                    tracing::warn!(nonce, error = %e, "re-sending the dropped transaction failed");
                    return Step::Continue;
                }
            }
        }
        let network = match self.policy.initial_fees(&self.rpc).await {
            Ok(fees) => Some(fees),
            Err(e) => {
                tracing::debug!(error = %e, "no current gas price; bumping the previous one");
                None
            }
        };
        let Some(fees) = self.policy.replacement_fees(*floor, network) else {
            tracing::warn!(nonce, tx = %latest.hash, cap = self.policy.max_gas_price_wei, "still pending at the gas price cap; waiting");
            return Step::Continue;
        };
        let signed = match self.sign(nonce, to, data, value, fees) {
            Ok(signed) => signed,
            Err(e) => {
                tracing::error!(nonce, error = %e, "cannot sign the replacement");
                return Step::Continue;
            }
        };
        match self.broadcast(&signed.raw, signed.hash).await {
            Ok(()) => {
                self.count(TxEvent::Replaced);
                tracing::info!(nonce, old = %latest.hash, new = %signed.hash, price = fees.max_price(), "transaction replaced with higher fees");
                versions.push(Version {
                    hash: signed.hash,
                    fees,
                    raw: signed.raw,
                });
                *floor = fees;
                Step::Continue
            }
            Err(ChainError::NonceTooLow { .. }) => Step::NonceUsed,
            Err(
                e @ (ChainError::ReplacementUnderpriced { .. } | ChainError::Underpriced { .. }),
            ) => {
                tracing::info!(nonce, price = fees.max_price(), error = %e, "replacement refused; the next one bids higher");
                *floor = fees;
                Step::Continue
            }
            Err(e) => {
                tracing::warn!(nonce, error = %e, "replacement not sent");
                Step::Continue
            }
        }
    }

    async fn outcome(
        &self,
        nonce: u64,
        fees: Fees,
        receipt: Receipt,
        to: Address,
        data: &Bytes,
        value: U256,
    ) -> Outcome {
        let effective_gas_price = receipt.effective_gas_price.unwrap_or(fees.max_price());
        let status = if receipt.status {
            self.count(TxEvent::Landed);
            tracing::info!(tx = %receipt.transaction_hash, nonce, block = receipt.block_number, gas_used = receipt.gas_used, "transaction mined");
            TxStatus::Success
        } else {
            self.count(TxEvent::Reverted);
            let reason = self
                .revert_reason(to, data, value, receipt.block_number)
                .await;
            tracing::warn!(tx = %receipt.transaction_hash, nonce, block = receipt.block_number, reason = reason.as_deref().unwrap_or("unknown"), "transaction reverted");
            TxStatus::Reverted { reason }
        };
        if let Some(m) = &self.metrics {
            m.mined(receipt.gas_used, effective_gas_price);
        }
        Outcome {
            tx_hash: receipt.transaction_hash,
            nonce,
            status,
            gas_used: receipt.gas_used,
            effective_gas_price,
            block_number: receipt.block_number,
        }
    }

    /// Replays the call as the sender at the block the transaction was mined in. The state
    /// there already includes the competing transaction that made ours fail (for OCR:
    /// another oracle's transmit → "stale report").
    async fn revert_reason(
        &self,
        to: Address,
        data: &Bytes,
        value: U256,
        block: u64,
    ) -> Option<String> {
        let call = CallRequest {
            from: Some(self.address),
            to,
            data: data.clone(),
            value: Some(value),
            gas: Some(self.policy.gas_limit),
        };
        match self.rpc.call_at(&call, BlockTag::Number(block)).await {
            Err(ChainError::Reverted { reason, data }) => reason.or_else(|| {
                (data.len() >= 4).then(|| format!("custom error 0x{}", hex::encode(&data[..4])))
            }),
            // e.g. "out of gas", which geth reports as a plain error.
            Err(ChainError::Rpc { message, .. }) => Some(message),
            Err(e) => {
                tracing::debug!(error = %e, "cannot replay the reverted transaction");
                None
            }
            Ok(_) => None,
        }
    }

    fn count(&self, event: TxEvent) {
        if let Some(m) = &self.metrics {
            m.tx(event);
        }
    }
}

/// Errors meaning the local nonce counter is behind the chain or the pool.
fn counter_behind(e: &ChainError) -> bool {
    matches!(
        e,
        ChainError::NonceTooLow { .. } | ChainError::ReplacementUnderpriced { .. }
    )
}

#[cfg(test)]
mod tests;
