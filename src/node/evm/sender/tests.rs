//! The sender against a scripted node that decodes the raw transactions it gets, keeps a pool,
//! and mines, drops, reverts or refuses as each test needs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::keccak256;
use alloy_sol_types::{Revert, SolError};
use prometheus::Registry;
use serde_json::{json, Value};

use super::*;
use crate::node::evm::gas::GasKind;
use crate::node::evm::test_support::MockNode;

const CHAIN_ID: u64 = 204;

#[derive(Default)]
struct FakeChain {
    /// What eth_getTransactionCount(pending) answers.
    pending_count: u64,
    /// Nonces below this are used (mined).
    mined_nonce: u64,
    /// Pool: hash → (nonce, price).
    pool: HashMap<B256, (u64, u128)>,
    known: HashSet<B256>,
    receipts: HashMap<B256, Value>,
    /// Mine pool transactions paying at least this much (per gas).
    min_price_to_mine: u128,
    /// Receipt polls before anything is mined.
    polls_before_mining: u32,
    /// Forget the next accepted transaction right away (as if evicted).
    drop_next: bool,
    /// Mined transactions revert; eth_call reverts with this reason.
    revert_reason: Option<String>,
    insufficient_funds: bool,
    /// Another sender takes nonces below this, without us seeing receipts.
    foreign_nonce_floor: u64,
    block: u64,
    sends: Vec<(u64, u128)>,
    calls: Vec<Value>,
}

impl FakeChain {
    fn handle(&mut self, method: &str, params: &Value) -> Value {
        match method {
            "eth_gasPrice" => json!({"result": "0x1"}),
            "eth_getTransactionCount" => json!({"result": format!("{:#x}", self.pending_count)}),
            "eth_sendRawTransaction" => self.send(params),
            "eth_getTransactionReceipt" => {
                self.mine();
                let hash: B256 = serde_json::from_value(params[0].clone()).expect("hash");
                json!({"result": self.receipts.get(&hash).cloned()})
            }
            "eth_getTransactionByHash" => {
                let hash: B256 = serde_json::from_value(params[0].clone()).expect("hash");
                let known = self.known.contains(&hash) || self.receipts.contains_key(&hash);
                json!({"result": if known { json!({"hash": hash}) } else { Value::Null }})
            }
            "eth_call" => {
                self.calls.push(params.clone());
                let reason = self.revert_reason.clone().unwrap_or_default();
                let data = format!(
                    "0x{}",
                    hex::encode(Revert::from(reason.as_str()).abi_encode())
                );
                json!({"error": {"code": 3, "message": format!("execution reverted: {reason}"), "data": data}})
            }
            other => {
                json!({"error": {"code": -32601, "message": format!("the method {other} does not exist/is not available")}})
            }
        }
    }

    fn send(&mut self, params: &Value) -> Value {
        let raw = hex::decode(
            params[0]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("0x"),
        )
        .expect("hex");
        let tx = TxEnvelope::decode_2718(&mut raw.as_slice()).expect("a valid EIP-2718 tx");
        assert_eq!(tx.chain_id(), Some(CHAIN_ID));
        let hash = keccak256(&raw);
        assert_eq!(hash, *tx.tx_hash());
        let (nonce, price) = (tx.nonce(), tx.max_fee_per_gas());
        self.sends.push((nonce, price));
        let error = |message: &str| json!({"error": {"code": -32000, "message": message}});
        if self.insufficient_funds {
            return error("insufficient funds for gas * price + value: address 0x6229D55b8F463A17Ba891dBC917a0B86acd3Bc1a have 0 want 500000");
        }
        if nonce < self.mined_nonce.max(self.foreign_nonce_floor) {
            return error(&format!("nonce too low: address 0x6229D55b8F463A17Ba891dBC917a0B86acd3Bc1a, tx: {nonce} state: {}", self.mined_nonce.max(self.foreign_nonce_floor)));
        }
        if self.known.contains(&hash) {
            return error("already known");
        }
        if let Some((&old_hash, &(_, old_price))) = self.pool.iter().find(|(_, (n, _))| *n == nonce)
        {
            if price < old_price * 110 / 100 || price <= old_price {
                return error("replacement transaction underpriced");
            }
            self.pool.remove(&old_hash);
            self.known.remove(&old_hash);
        }
        self.pool.insert(hash, (nonce, price));
        self.known.insert(hash);
        self.pending_count = self.pending_count.max(nonce + 1);
        if std::mem::take(&mut self.drop_next) {
            self.pool.remove(&hash);
            self.known.remove(&hash);
        }
        json!({"result": hash})
    }

    fn mine(&mut self) {
        if self.polls_before_mining > 0 {
            self.polls_before_mining -= 1;
            return;
        }
        let ready: Vec<(B256, u64, u128)> = self
            .pool
            .iter()
            .filter(|(_, (_, price))| *price >= self.min_price_to_mine)
            .map(|(h, (n, p))| (*h, *n, *p))
            .collect();
        for (hash, nonce, price) in ready {
            self.pool.remove(&hash);
            self.block += 1;
            self.mined_nonce = self.mined_nonce.max(nonce + 1);
            self.receipts.insert(
                hash,
                json!({
                    "transactionHash": hash,
                    "blockHash": B256::repeat_byte(0xbb),
                    "blockNumber": format!("{:#x}", self.block),
                    "status": if self.revert_reason.is_some() { "0x0" } else { "0x1" },
                    "gasUsed": "0x1d4c0",
                    "effectiveGasPrice": format!("{price:#x}"),
                    "logs": [],
                }),
            );
        }
    }
}

struct Harness {
    _node: MockNode,
    chain: Arc<Mutex<FakeChain>>,
    sender: TxSender,
    registry: Registry,
}

async fn harness(chain: FakeChain, policy: GasPolicy) -> Harness {
    let chain = Arc::new(Mutex::new(chain));
    let handle = chain.clone();
    let node = MockNode::start(move |method, params| {
        handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .handle(method, params)
    })
    .await;
    let registry = Registry::new();
    let metrics = Arc::new(ChainMetrics::register(&registry).expect("metrics"));
    let rpc = Arc::new(
        RpcClient::new(node.url(), Duration::from_secs(5))
            .expect("client")
            .with_metrics(metrics.clone()),
    );
    let key = SigningKey::from_slice(
        &hex::decode("4c0883a69102937d6231471b5dc0e2b3dd68d6a1ce7e1f2a9da8c94a7c3f5b5e")
            .expect("hex"),
    )
    .expect("key");
    let sender = TxSender::new(rpc, CHAIN_ID, key, policy)
        .expect("sender")
        .with_metrics(metrics)
        .with_receipt_polling(Duration::from_millis(10), Duration::from_millis(30));
    Harness {
        _node: node,
        chain,
        sender,
        registry,
    }
}

fn policy(gas_price: Option<u128>) -> GasPolicy {
    GasPolicy {
        kind: GasKind::Legacy {
            gas_price_wei: gas_price,
        },
        gas_limit: 500_000,
        max_gas_price_wei: 1_000,
        bump_percent: 10,
    }
}

fn tx_count(registry: &Registry, outcome: &str) -> u64 {
    let mut text = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&registry.gather(), &mut text)
        .expect("encode");
    let prefix = format!("enclave_chain_transactions_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("count"))
}

fn target() -> Address {
    "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf"
        .parse()
        .expect("addr")
}

fn transmit_data() -> Bytes {
    Bytes::from(vec![0xc9, 0x80, 0x75, 0x39, 1, 2, 3])
}

async fn send_and_wait(h: &Harness) -> Result<Outcome, ChainError> {
    h.sender
        .send_and_wait(
            target(),
            transmit_data(),
            U256::ZERO,
            Duration::from_secs(3),
            Duration::from_millis(100),
        )
        .await
}

#[tokio::test]
async fn a_transaction_is_sent_with_the_pending_nonce_and_mined() {
    let h = harness(
        FakeChain {
            pending_count: 7,
            mined_nonce: 7,
            polls_before_mining: 2,
            ..FakeChain::default()
        },
        policy(None),
    )
    .await;
    assert_eq!(
        h.sender.address().to_string(),
        "0x6229D55b8F463A17Ba891dBC917a0B86acd3Bc1a"
    );
    let outcome = send_and_wait(&h).await.expect("mined");
    assert_eq!(outcome.nonce, 7);
    assert_eq!(outcome.status, TxStatus::Success);
    assert_eq!(outcome.gas_used, 120_000);
    assert_eq!(outcome.effective_gas_price, 1);
    // The next transaction takes the next nonce without asking the chain.
    let sent = h
        .sender
        .send(target(), transmit_data(), U256::ZERO)
        .await
        .expect("sent");
    assert_eq!(sent.nonce, 8);
    assert_eq!(tx_count(&h.registry, "sent"), 2);
    assert_eq!(tx_count(&h.registry, "landed"), 1);
    assert!(!format!("{:?}", h.sender).contains("4c0883a6"));
}

#[tokio::test]
async fn a_stuck_transaction_is_replaced_with_bumped_fees() {
    // The chain mines only transactions paying 3 wei or more; the node suggests 1 wei.
    let h = harness(
        FakeChain {
            min_price_to_mine: 3,
            ..FakeChain::default()
        },
        policy(None),
    )
    .await;
    let outcome = send_and_wait(&h).await.expect("mined");
    let sends = h.chain.lock().expect("lock").sends.clone();
    // 1 wei, then +10 % rounded up but at least +1 wei each time: 2, 3.
    assert_eq!(sends, vec![(0, 1), (0, 2), (0, 3)]);
    assert_eq!(outcome.effective_gas_price, 3);
    assert_eq!(outcome.status, TxStatus::Success);
    assert_eq!(tx_count(&h.registry, "replaced"), 2);
}

#[tokio::test]
async fn a_dropped_transaction_is_resent_as_is() {
    let h = harness(
        FakeChain {
            drop_next: true,
            ..FakeChain::default()
        },
        policy(Some(5)),
    )
    .await;
    let outcome = send_and_wait(&h).await.expect("mined");
    let sends = h.chain.lock().expect("lock").sends.clone();
    assert_eq!(sends, vec![(0, 5), (0, 5)], "same bytes re-sent");
    assert_eq!(outcome.effective_gas_price, 5);
    assert_eq!(tx_count(&h.registry, "dropped"), 1);
    assert_eq!(tx_count(&h.registry, "replaced"), 0);
}

#[tokio::test]
async fn a_reverted_transaction_reports_the_replayed_reason() {
    let h = harness(
        FakeChain {
            revert_reason: Some("stale report".into()),
            ..FakeChain::default()
        },
        policy(None),
    )
    .await;
    let outcome = send_and_wait(&h).await.expect("mined");
    assert_eq!(
        outcome.status,
        TxStatus::Reverted {
            reason: Some("stale report".into())
        }
    );
    let calls = h.chain.lock().expect("lock").calls.clone();
    assert_eq!(calls.len(), 1);
    // Replayed as the sender, at the block the transaction was mined in, with its gas.
    assert_eq!(
        calls[0][0]["from"],
        json!("0x6229d55b8f463a17ba891dbc917a0b86acd3bc1a")
    );
    assert_eq!(calls[0][0]["gas"], json!("0x7a120"));
    assert_eq!(calls[0][1], json!(format!("{:#x}", outcome.block_number)));
    assert_eq!(tx_count(&h.registry, "reverted"), 1);
}

#[tokio::test]
async fn nonce_too_low_resyncs_and_retries_once() {
    // The pending count says 2, but another sender already used up to 4.
    let h = harness(
        FakeChain {
            pending_count: 2,
            foreign_nonce_floor: 5,
            ..FakeChain::default()
        },
        policy(Some(1)),
    )
    .await;
    h.sender.nonces().lease().await.expect("lease").commit(); // local counter: 3
    h.chain.lock().expect("lock").pending_count = 5;
    let sent = h
        .sender
        .send(target(), transmit_data(), U256::ZERO)
        .await
        .expect("sent after resync");
    assert_eq!(sent.nonce, 5);
    let sends = h.chain.lock().expect("lock").sends.clone();
    assert_eq!(sends, vec![(3, 1), (5, 1)]);
}

#[tokio::test]
async fn refusals_do_not_consume_the_nonce() {
    let h = harness(
        FakeChain {
            pending_count: 4,
            insufficient_funds: true,
            ..FakeChain::default()
        },
        policy(Some(1)),
    )
    .await;
    let e = h
        .sender
        .send(target(), transmit_data(), U256::ZERO)
        .await
        .expect_err("no funds");
    assert!(matches!(e, ChainError::InsufficientFunds { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Outcome);
    h.chain.lock().expect("lock").insufficient_funds = false;
    let sent = h
        .sender
        .send(target(), transmit_data(), U256::ZERO)
        .await
        .expect("funded");
    assert_eq!(sent.nonce, 4);
}

#[tokio::test]
async fn no_receipt_in_time_is_a_receipt_timeout() {
    let h = harness(
        FakeChain {
            min_price_to_mine: u128::MAX,
            ..FakeChain::default()
        },
        policy(Some(1_000)), // already at the cap: no replacement possible
    )
    .await;
    let e = h
        .sender
        .send_and_wait(
            target(),
            transmit_data(),
            U256::ZERO,
            Duration::from_millis(400),
            Duration::from_millis(100),
        )
        .await
        .expect_err("never mined");
    assert!(
        matches!(e, ChainError::ReceiptTimeout { nonce: 0, .. }),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert_eq!(
        h.chain.lock().expect("lock").sends.len(),
        1,
        "nothing to bump at the cap"
    );
}

#[tokio::test]
async fn a_nonce_taken_by_someone_else_ends_the_wait() {
    let h = harness(
        FakeChain {
            min_price_to_mine: u128::MAX,
            ..FakeChain::default()
        },
        policy(Some(1)),
    )
    .await;
    let chain = h.chain.clone();
    let wait = send_and_wait(&h);
    let meddle = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut chain = chain.lock().expect("lock");
        // Another transaction with nonce 0 was mined; ours left the pool.
        chain.foreign_nonce_floor = 1;
        chain.pool.clear();
        chain.known.clear();
        chain.pending_count = 1;
    };
    let (result, ()) = tokio::join!(wait, meddle);
    let e = result.expect_err("nonce taken");
    assert!(matches!(e, ChainError::NonceTooLow { .. }), "{e:?}");
    assert_eq!(
        tx_count(&h.registry, "dropped"),
        2,
        "seen gone, then given up"
    );
    // The counter was dropped: the next send reads the chain again.
    assert_eq!(h.sender.nonces().peek().await, None);
}
