//! The dev chain (scripts/devchain/devchain.py) through its JSON-RPC from Rust: chain id,
//! funding, the tests' aggregator, and transactions built, signed and encoded by alloy + k256
//! (not by the chain's own Python tooling), so a standard-signed transaction is what it accepts.

use crate::common;

use std::time::Duration;

use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, Signature, TxKind, U256};
use alloy_sol_types::SolType;
use common::devchain::{self, quantity, DevChain};
use k256::ecdsa::SigningKey;
use serde_json::{json, Value};

const GWEI: u128 = 1_000_000_000;
const T: Duration = Duration::from_secs(30);

/// A started chain, or None (with `SKIPPED: <reason>` printed) when Python cannot run here.
fn chain() -> Option<DevChain> {
    if let Some(reason) = devchain::skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return None;
    }
    Some(DevChain::start())
}

/// Signs `tx` (secp256k1 over its EIP-155 / EIP-2718 signing hash) and returns the raw
/// transaction as `0x…`.
fn sign<T>(tx: T, private_key: &str) -> String
where
    T: SignableTransaction<Signature>,
    Signed<T>: Encodable2718,
{
    let key = SigningKey::from_slice(&hex::decode(private_key.trim_start_matches("0x")).unwrap())
        .expect("private key");
    let (signature, recovery) = key
        .sign_prehash_recoverable(tx.signature_hash().as_slice())
        .expect("sign");
    let (r, s) = signature.split_bytes();
    let signature = Signature::new(
        U256::from_be_slice(&r),
        U256::from_be_slice(&s),
        recovery.is_y_odd(),
    );
    format!(
        "0x{}",
        hex::encode(tx.into_signed(signature).encoded_2718())
    )
}

fn address(text: &str) -> Address {
    text.parse().expect("address")
}

fn nonce(chain: &DevChain, who: &str, tag: &str) -> u64 {
    quantity(&chain.rpc_call("eth_getTransactionCount", json!([who, tag])))
}

fn legacy_transfer(chain: &DevChain, nonce: u64, to: &str, value: u128) -> TxLegacy {
    TxLegacy {
        chain_id: Some(chain.chain_id),
        nonce,
        gas_price: quantity(&chain.rpc_call("eth_gasPrice", json!([]))).into(),
        gas_limit: 21_000,
        to: TxKind::Call(address(to)),
        value: U256::from(value),
        input: Bytes::new(),
    }
}

fn dynamic_transfer(chain: &DevChain, nonce: u64, to: &str, value: u128, tip: u128) -> TxEip1559 {
    let base_fee: u128 = quantity(
        &chain.rpc_call("eth_getBlockByNumber", json!(["latest", false]))["baseFeePerGas"],
    )
    .into();
    TxEip1559 {
        chain_id: chain.chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 2 * base_fee + tip,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(address(to)),
        value: U256::from(value),
        access_list: Default::default(),
        input: Bytes::new(),
    }
}

fn send(chain: &DevChain, raw: &str) -> String {
    chain
        .rpc_call("eth_sendRawTransaction", json!([raw]))
        .as_str()
        .expect("hash")
        .to_owned()
}

#[test]
fn chain_id_funding_and_the_aggregator() {
    let Some(chain) = chain() else { return };
    assert_eq!(chain.chain_id, 1337);
    assert_eq!(chain.rpc_call("eth_chainId", json!([])), "0x539");
    assert_eq!(chain.rpc_call("net_version", json!([])), "1337");
    assert_eq!(chain.accounts.len(), 10);
    assert!(!chain.accounts.iter().any(|a| a.0 == chain.owner.0));

    let fresh = "0x1111111111111111111111111111111111111111";
    assert_eq!(chain.balance(fresh), 0);
    chain.fund(fresh, 12_345 * GWEI);
    assert_eq!(chain.balance(fresh), 12_345 * GWEI);

    let feed = chain.deploy_aggregator(8, "ETH / USD", 1, 10i128.pow(20));
    let type_and_version = chain.call(None, &feed, &hex::decode("181f5a77").unwrap());
    assert_eq!(
        alloy_sol_types::sol_data::String::abi_decode(&type_and_version.unwrap()).unwrap(),
        "OffchainAggregator 4.0.0 (enclave tests)"
    );
    let decimals = chain.call(None, &feed, &hex::decode("313ce567").unwrap());
    assert_eq!(U256::from_be_slice(&decimals.unwrap()), U256::from(8));
    // latestRoundData: five zero words before the first report.
    let round = chain.call(None, &feed, &hex::decode("feaf968c").unwrap());
    assert_eq!(round.unwrap(), vec![0u8; 5 * 32]);
    // latestTransmissionDetails answers an EOA (eth_call with `from`).
    let details = chain.call(
        Some(&chain.accounts[0].0),
        &feed,
        &hex::decode("e5fe4577").unwrap(),
    );
    assert_eq!(details.unwrap().len(), 5 * 32);
    // An owner-only method from someone else: geth's revert error, with the revert data.
    let denied = chain
        .call(
            Some(&chain.accounts[0].0),
            &feed,
            &hex::decode("98e5b12a").unwrap(),
        )
        .unwrap_err();
    assert_eq!(denied.code, 3);
    assert_eq!(
        denied.message,
        "execution reverted: Only owner&requester can call"
    );
    assert!(denied.data.unwrap().starts_with("0x08c379a0"));
}

#[test]
fn standard_signed_legacy_and_eip1559_transfers_are_mined() {
    let Some(chain) = chain() else { return };
    let (sender, key) = chain.accounts[0].clone();
    let sink = "0x000000000000000000000000000000000000dEaD";
    let before = chain.balance(sink);

    // Legacy, EIP-155 replay-protected (v = 35 + 2·chainId + parity).
    let legacy = legacy_transfer(&chain, nonce(&chain, &sender, "pending"), sink, 5);
    let gas_price = legacy.gas_price;
    let hash = send(&chain, &sign(legacy, &key));
    let receipt = chain.wait_receipt(&hash, T);
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["gasUsed"], "0x5208");
    assert_eq!(receipt["type"], "0x0");
    assert_eq!(quantity(&receipt["effectiveGasPrice"]) as u128, gas_price);
    assert_eq!(receipt["from"].as_str().unwrap(), sender);
    let tx = chain.rpc_call("eth_getTransactionByHash", json!([hash]));
    assert!([2 * 1337 + 35, 2 * 1337 + 36].contains(&quantity(&tx["v"])));

    // EIP-1559 (type 2): pays base fee + tip.
    let dynamic = dynamic_transfer(&chain, nonce(&chain, &sender, "pending"), sink, 7, GWEI);
    let hash = send(&chain, &sign(dynamic, &key));
    let receipt = chain.wait_receipt(&hash, T);
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["type"], "0x2");
    let block = chain.rpc_call(
        "eth_getBlockByNumber",
        json!([receipt["blockNumber"], false]),
    );
    assert_eq!(
        quantity(&receipt["effectiveGasPrice"]),
        quantity(&block["baseFeePerGas"]) + GWEI as u64
    );
    assert_eq!(chain.balance(sink), before + 12);
    assert_eq!(nonce(&chain, &sender, "latest"), 2);
}

#[test]
fn txpool_rules_and_errors() {
    let Some(chain) = chain() else { return };
    let (sender, key) = chain.accounts[1].clone();
    let sink = "0x000000000000000000000000000000000000dEaD";

    // Signed for another chain.
    let mut foreign = dynamic_transfer(&chain, 0, sink, 1, GWEI);
    foreign.chain_id = 5611;
    let error = chain
        .try_rpc_call("eth_sendRawTransaction", json!([sign(foreign, &key)]))
        .unwrap_err();
    assert_eq!(
        error.message,
        "invalid sender: invalid chain id for signer: have 5611 want 1337"
    );

    let hash = send(
        &chain,
        &sign(dynamic_transfer(&chain, 0, sink, 1, GWEI), &key),
    );
    chain.wait_receipt(&hash, T);
    let stale = chain
        .try_rpc_call(
            "eth_sendRawTransaction",
            json!([sign(dynamic_transfer(&chain, 0, sink, 2, GWEI), &key)]),
        )
        .unwrap_err();
    assert_eq!(stale.message, "nonce too low: next nonce 1, tx nonce 0");

    // Not enough for gas * price + value.
    chain.fund(&sender, 1000);
    let poor = chain
        .try_rpc_call(
            "eth_sendRawTransaction",
            json!([sign(dynamic_transfer(&chain, 1, sink, 1, GWEI), &key)]),
        )
        .unwrap_err();
    assert!(
        poor.message
            .starts_with("insufficient funds for gas * price + value: balance 1000"),
        "{poor}"
    );
    chain.fund(&sender, 10u128.pow(21));

    // A replacement must pay 10% more.
    chain.set_automine(false);
    let first = send(
        &chain,
        &sign(dynamic_transfer(&chain, 1, sink, 1, GWEI), &key),
    );
    let underpriced = chain
        .try_rpc_call(
            "eth_sendRawTransaction",
            json!([sign(dynamic_transfer(&chain, 1, sink, 2, GWEI + 1), &key)]),
        )
        .unwrap_err();
    assert_eq!(underpriced.message, "replacement transaction underpriced");
    let mut bumped = dynamic_transfer(&chain, 1, sink, 2, 2 * GWEI);
    bumped.max_fee_per_gas *= 2;
    let second = send(&chain, &sign(bumped, &key));
    chain.mine();
    assert!(chain
        .rpc_call("eth_getTransactionReceipt", json!([first]))
        .is_null());
    assert_eq!(chain.wait_receipt(&second, T)["status"], "0x1");
}

#[test]
fn pending_and_dropped_transactions() {
    let Some(chain) = chain() else { return };
    let (sender, key) = chain.accounts[2].clone();
    let sink = "0x000000000000000000000000000000000000dEaD";
    chain.set_automine(false);
    let head = chain.block_number();

    let hash = send(
        &chain,
        &sign(dynamic_transfer(&chain, 0, sink, 1, GWEI), &key),
    );
    assert!(chain
        .rpc_call("eth_getTransactionReceipt", json!([hash]))
        .is_null());
    let pending = chain.rpc_call("eth_getTransactionByHash", json!([hash]));
    assert!(pending["blockNumber"].is_null());
    assert_eq!(nonce(&chain, &sender, "pending"), 1);
    assert_eq!(nonce(&chain, &sender, "latest"), 0);
    assert_eq!(chain.block_number(), head);

    // Dropped: never mined, and its nonce is free again.
    assert_eq!(chain.drop_pending(), vec![hash.clone()]);
    assert_eq!(chain.mine(), head + 1);
    assert!(chain
        .rpc_call("eth_getTransactionReceipt", json!([hash]))
        .is_null());
    assert!(chain
        .rpc_call("eth_getTransactionByHash", json!([hash]))
        .is_null());
    assert_eq!(nonce(&chain, &sender, "pending"), 0);

    let again = send(
        &chain,
        &sign(dynamic_transfer(&chain, 0, sink, 3, GWEI), &key),
    );
    chain.set_automine(true); // mines what waits
    assert_eq!(chain.wait_receipt(&again, T)["status"], "0x1");

    // Time moves for the following blocks: the next one is at least two hours from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    chain.increase_time(7200);
    chain.mine();
    let block = chain.rpc_call("eth_getBlockByNumber", json!(["latest", false]));
    let timestamp = quantity(&block["timestamp"]);
    assert!(timestamp >= now + 7200, "{now} + 2 h > {timestamp}");
}

#[test]
fn logs_fees_and_protocol_errors() {
    let Some(chain) = chain() else { return };
    // eth_getLogs refuses more than 10,000 blocks at once: clients page.
    let wide = chain
        .try_rpc_call(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "0x2710"}]),
        )
        .unwrap_err();
    assert_eq!(wide.message, "exceed maximum block range: 10000");
    let narrow = chain.rpc_call(
        "eth_getLogs",
        json!([{"fromBlock": "0x0", "toBlock": "0x270f"}]),
    );
    assert_eq!(narrow, json!([]));

    let history = chain.rpc_call("eth_feeHistory", json!(["0x1", "latest", [50]]));
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 2);
    assert_eq!(history["reward"], json!([["0x0"]]));
    assert_eq!(
        chain.rpc_call("eth_maxPriorityFeePerGas", json!([])),
        json!(format!("{GWEI:#x}"))
    );

    // Bad JSON, an unknown method, bad params: proper JSON-RPC errors, and the server lives.
    let (status, body) = chain.post("{not json").unwrap();
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], -32700);
    let unknown = chain.try_rpc_call("eth_mining", json!([])).unwrap_err();
    assert_eq!(unknown.code, -32601);
    let bad = chain
        .try_rpc_call("eth_getBalance", json!(["0x12"]))
        .unwrap_err();
    assert_eq!(bad.code, -32602);
    let (_, batch) = chain
        .post(r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"nope"}]"#)
        .unwrap();
    let batch: Value = serde_json::from_str(&batch).unwrap();
    assert_eq!(batch[0]["result"], "0x539");
    assert_eq!(batch[1]["error"]["code"], -32601);
    assert_eq!(chain.rpc_call("eth_chainId", json!([])), "0x539");
}

#[test]
fn another_chain_id() {
    if let Some(reason) = devchain::skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let chain = DevChain::start_with_chain_id(5611);
    assert_eq!(chain.rpc_call("eth_chainId", json!([])), "0x15eb");
    let (_, key) = chain.accounts[0].clone();
    let tx = legacy_transfer(&chain, 0, "0x000000000000000000000000000000000000dEaD", 1);
    let hash = send(&chain, &sign(tx, &key));
    assert_eq!(chain.wait_receipt(&hash, T)["status"], "0x1");
}
