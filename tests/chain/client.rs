//! The EVM client (`enclave::node::evm`) against a real EVM: the dev chain of
//! `scripts/devchain/devchain.py` (py-evm behind a geth-like JSON-RPC, with a test
//! `OffchainAggregator` that has the OCR1 contract's selectors, checks and revert strings).
//!
//! Covers what unit tests against scripted answers cannot prove: that the node accepts our
//! signed legacy and EIP-1559 transactions, that `setConfig`/`transmit` calldata is what the
//! contract executes, that reads decode real return data, that a losing `transmit` reverts with
//! "stale report" and the reason is recovered, and that replacement, re-sending after a drop,
//! `nonce too low` and `insufficient funds` behave against a real pool.
//!
//! The dev chain is started by tests/common/devchain.rs (its Python environment made by
//! `scripts/devchain/ensure.sh`); where python3 or its venv module is missing the tests print
//! `SKIPPED` and pass.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::aliases::I192;
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolCall;
use enclave::node::evm::aggregator_contract::{
    set_config_calldata, transmit_calldata, IOffchainAggregator,
};
use enclave::node::evm::{
    AggregatorContract, ChainError, ChainMetrics, GasKind, GasPolicy, Outcome, RpcClient, TxSender,
    TxStatus,
};
use enclave::node::ocr1::config_digest::{
    encode_offchain_config, OffchainConfig, SharedSecretEncryptions, ENCODED_CONFIG_VERSION,
};
use enclave::node::ocr1::report::{encode_report, AttributedObservation};
use enclave::node::ocr1::signature::{address_of, sign_report};
use enclave::node::ocr1::types::{EpochRound, OracleId};
use k256::ecdsa::SigningKey;
use prometheus::Registry;
use serde_json::{json, Value};

const CHAIN_ID: u64 = 204;
/// One transmitter account per oracle of the 4-oracle configuration the tests set.
const ACCOUNTS: usize = 4;

/// The shared dev chain (tests/common/devchain.rs) with its keys parsed for the client.
struct DevChain {
    rpc: url::Url,
    owner: SigningKey,
    accounts: Vec<SigningKey>,
    _chain: common::devchain::DevChain,
}

fn key(hex_key: &str) -> SigningKey {
    let bytes = hex::decode(hex_key.trim_start_matches("0x")).expect("hex key");
    SigningKey::from_slice(&bytes).expect("key")
}

/// Starts a dev chain, or `None` (after printing why) when this machine cannot run one.
fn start() -> Option<DevChain> {
    if let Some(reason) = common::devchain::skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return None;
    }
    let chain = common::devchain::DevChain::start_with_chain_id(CHAIN_ID);
    Some(DevChain {
        rpc: chain.rpc.parse().expect("url"),
        owner: key(&chain.owner.1),
        accounts: chain
            .accounts
            .iter()
            .take(ACCOUNTS)
            .map(|(_, k)| key(k))
            .collect(),
        _chain: chain,
    })
}

/// A registry, the chain metrics in it, and a client of `chain` that counts in them.
fn client(chain: &DevChain) -> (Registry, Arc<ChainMetrics>, Arc<RpcClient>) {
    let registry = Registry::new();
    let metrics = Arc::new(ChainMetrics::register(&registry).expect("metrics"));
    // py-evm is slow on a cold call; the default 20 s of the node config is not enough here.
    let rpc = Arc::new(
        RpcClient::new(chain.rpc.clone(), Duration::from_secs(60))
            .expect("client")
            .with_metrics(metrics.clone()),
    );
    (registry, metrics, rpc)
}

fn legacy() -> GasPolicy {
    GasPolicy {
        kind: GasKind::Legacy {
            gas_price_wei: None,
        },
        gas_limit: 1_000_000,
        max_gas_price_wei: 1_000_000_000_000,
        bump_percent: 10,
    }
}

fn eip1559() -> GasPolicy {
    GasPolicy {
        kind: GasKind::Eip1559 {
            max_fee_per_gas_wei: None,
            max_priority_fee_per_gas_wei: None,
        },
        ..legacy()
    }
}

fn sender(
    rpc: &Arc<RpcClient>,
    key: &SigningKey,
    policy: GasPolicy,
    metrics: &Arc<ChainMetrics>,
) -> Arc<TxSender> {
    Arc::new(
        TxSender::new(rpc.clone(), CHAIN_ID, key.clone(), policy)
            .expect("sender")
            .with_metrics(metrics.clone())
            .with_receipt_polling(Duration::from_millis(50), Duration::from_millis(300)),
    )
}

/// Sends `data` to `to` with no value and waits for it to be mined: within 60 s, re-sent after
/// 10 s (the dev chain mines at once; these only bound a hang).
async fn mined(sender: &TxSender, to: Address, data: Bytes, what: &str) -> Outcome {
    sender
        .send_and_wait(
            to,
            data,
            U256::ZERO,
            Duration::from_secs(60),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("{what} not mined: {e:?}"))
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

fn offchain_config(n: u8) -> OffchainConfig {
    let s = 1_000_000_000;
    OffchainConfig {
        delta_progress_ns: 35 * s,
        delta_resend_ns: 17 * s,
        delta_round_ns: 30 * s,
        delta_grace_ns: 12 * s,
        delta_c_ns: 86_400 * s,
        alpha_ppb: 5_000_000,
        delta_stage_ns: 60 * s,
        r_max: 6,
        s: vec![1, 2, 2, 2],
        offchain_public_keys: (0..n).map(|i| [0xa0 + i; 32]).collect(),
        peer_ids: (0..n).map(|i| format!("12D3KooWpeer{i}")).collect(),
        shared_secret_encryptions: SharedSecretEncryptions {
            diffie_hellman_point: [0xd1; 32],
            shared_secret_hash: [0x55; 32],
            encryptions: (0..n).map(|i| [0xe0 + i; 16]).collect(),
        },
    }
}

#[tokio::test]
async fn configure_transmit_read_and_recover_revert_reasons() {
    let Some(chain) = start() else { return };
    let (registry, metrics, rpc) = client(&chain);
    rpc.check_chain_id(CHAIN_ID).await.expect("chain id");
    let e = rpc.check_chain_id(5611).await.expect_err("wrong chain");
    assert!(matches!(
        e,
        ChainError::WrongChain {
            expected: 5611,
            got: 204
        }
    ));

    let contract_address: Address = rpc
        .request(
            "dev_deployAggregator",
            json!([{"decimals": 8, "description": "BTC / USD"}]),
        )
        .await
        .expect("deploy");
    let contract = AggregatorContract::new(rpc.clone(), contract_address);

    // setConfig from the owner (legacy EIP-155 transaction).
    let signer_keys: Vec<SigningKey> = (0..4u8)
        .map(|i| key(&hex::encode([0x31 + i; 32])))
        .collect();
    let signers: Vec<Address> = signer_keys
        .iter()
        .map(|k| address_of(k.verifying_key()))
        .collect();
    let transmitters: Vec<Address> = chain
        .accounts
        .iter()
        .map(|k| address_of(k.verifying_key()))
        .collect();
    let encoded = encode_offchain_config(&offchain_config(4)).expect("encoded");
    let owner = sender(&rpc, &chain.owner, legacy(), &metrics);
    let configured = mined(
        &owner,
        contract_address,
        set_config_calldata(&signers, &transmitters, 1, ENCODED_CONFIG_VERSION, &encoded),
        "setConfig",
    )
    .await;
    assert_eq!(configured.status, TxStatus::Success);

    let details = contract
        .latest_config_details()
        .await
        .expect("config details");
    assert_eq!(details.config_count, 1);
    assert_eq!(u64::from(details.block_number), configured.block_number);
    let event = contract
        .config_set_at(configured.block_number)
        .await
        .expect("logs")
        .expect("ConfigSet");
    assert_eq!(event.signers, signers);
    assert_eq!(event.transmitters, transmitters);
    assert_eq!(event.encoded.as_ref(), encoded.as_slice());
    assert_eq!(event.digest(contract_address), details.digest);
    assert_eq!(event.offchain_config().expect("decode"), offchain_config(4));
    assert_eq!(
        contract.transmitters().await.expect("transmitters"),
        transmitters
    );

    // A report for epoch 1 round 1, signed by two oracles (f = 1), transmitted by oracle 0 in
    // an EIP-1559 transaction.
    let observations: Vec<AttributedObservation> = [(2u8, 100i64), (0, 105), (1, 110)]
        .iter()
        .map(|&(o, v)| AttributedObservation {
            value: I192::try_from(v * 100_000_000).expect("i192"),
            observer: OracleId(o),
        })
        .collect();
    let report =
        encode_report(details.digest, EpochRound::new(1, 1), &observations).expect("report");
    let signatures: Vec<_> = signer_keys[..2]
        .iter()
        .map(|k| sign_report(k, &report).expect("sign"))
        .collect();
    let calldata = transmit_calldata(&report, &signatures).expect("calldata");
    let transmitter = sender(&rpc, &chain.accounts[0], eip1559(), &metrics);
    let landed = mined(&transmitter, contract_address, calldata.clone(), "transmit").await;
    assert_eq!(landed.status, TxStatus::Success);
    assert!(landed.gas_used > 21_000);

    let latest = contract
        .latest_transmission_details(transmitter.address())
        .await
        .expect("transmission details");
    assert_eq!(latest.digest, details.digest);
    assert_eq!(latest.epoch_round(), EpochRound::new(1, 1));
    assert_eq!(latest.latest_answer, observations[1].value);
    let round = contract.latest_round_data().await.expect("round data");
    assert_eq!(round.round_id, 1);
    assert_eq!(round.updated_at, latest.latest_timestamp);

    // Oracle 1 transmits the same report late: mined, reverted, reason recovered by replay.
    let late = mined(
        &sender(&rpc, &chain.accounts[1], legacy(), &metrics),
        contract_address,
        calldata,
        "late transmit",
    )
    .await;
    assert_eq!(
        late.status,
        TxStatus::Reverted {
            reason: Some("stale report".into())
        }
    );
    // eth_call reverts are decoded too.
    let wrong_digest =
        encode_report(Default::default(), EpochRound::new(2, 1), &observations).expect("report");
    let sigs: Vec<_> = signer_keys[..2]
        .iter()
        .map(|k| sign_report(k, &wrong_digest).expect("sign"))
        .collect();
    let e = rpc
        .call(
            Some(transmitter.address()),
            contract_address,
            transmit_calldata(&wrong_digest, &sigs).expect("calldata"),
        )
        .await
        .expect_err("reverts");
    match e {
        ChainError::Reverted { reason, .. } => {
            assert_eq!(reason.as_deref(), Some("configDigest mismatch"))
        }
        other => panic!("{other:?}"),
    }

    // requestNewRound → RoundRequested, found by a paged scan over a range wider than the
    // node's 10,000-block limit (the 20,000-block chunks are halved).
    let requested = mined(
        &owner,
        contract_address,
        IOffchainAggregator::requestNewRoundCall {}
            .abi_encode()
            .into(),
        "requestNewRound",
    )
    .await;
    assert_eq!(requested.status, TxStatus::Success);
    let wide = AggregatorContract::new(rpc.clone(), contract_address).with_max_log_range(20_000);
    let events = wide
        .round_requested_between(0, 25_000)
        .await
        .expect("paged scan");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].digest, details.digest);
    assert_eq!((events[0].epoch, events[0].round), (1, 1));
    assert_eq!(events[0].requester, owner.address());
    let scan = contract.round_requested_since(0).await.expect("scan");
    assert_eq!(scan.events, events);

    assert_eq!(tx_count(&registry, "sent"), 4);
    assert_eq!(tx_count(&registry, "landed"), 3);
    assert_eq!(tx_count(&registry, "reverted"), 1);
}

/// Mines every 200 ms until `task` finishes (automine is off).
/// `sender` sends `wei` to `to` in the background and waits for the receipt (rebroadcasting
/// after 400 ms), while the test drives the pool.
fn spawn_transfer(
    sender: &Arc<TxSender>,
    to: Address,
    wei: u64,
) -> tokio::task::JoinHandle<Result<Outcome, ChainError>> {
    let sender = sender.clone();
    tokio::spawn(async move {
        sender
            .send_and_wait(
                to,
                Bytes::new(),
                U256::from(wei),
                Duration::from_secs(60),
                Duration::from_millis(400),
            )
            .await
    })
}

async fn mine_until_done<T>(rpc: &RpcClient, task: tokio::task::JoinHandle<T>) -> T {
    let started = Instant::now();
    while !task.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sender never finished"
        );
        let _: Value = rpc.request("dev_mine", json!([])).await.expect("mine");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    task.await.expect("task")
}

async fn wait_for(registry: &Registry, outcome: &str, at_least: u64) {
    let started = Instant::now();
    while tx_count(registry, outcome) < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no '{outcome}' transaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn replacement_drop_nonce_conflicts_and_missing_funds_against_a_real_pool() {
    let Some(chain) = start() else { return };
    let (registry, metrics, rpc) = client(&chain);
    let to = Address::repeat_byte(0x42);
    let a = sender(&rpc, &chain.accounts[0], legacy(), &metrics);

    // Not mined for a while: replaced with a 10 % higher price, then mined.
    let _: bool = rpc
        .request("dev_setAutomine", json!([false]))
        .await
        .expect("automine off");
    let node_price = rpc.gas_price().await.expect("gas price");
    let task = spawn_transfer(&a, to, 1);
    wait_for(&registry, "replaced", 1).await;
    let replaced = mine_until_done(&rpc, task).await.expect("mined");
    assert_eq!(replaced.status, TxStatus::Success);
    assert!(
        replaced.effective_gas_price > node_price,
        "{} ≤ {node_price}",
        replaced.effective_gas_price
    );

    // Dropped from the pool: re-sent as is, then mined.
    let task = spawn_transfer(&a, to, 2);
    wait_for(&registry, "sent", 2).await;
    let dropped: Vec<String> = rpc
        .request("dev_dropPending", json!([]))
        .await
        .expect("drop");
    assert_eq!(dropped.len(), 1);
    wait_for(&registry, "dropped", 1).await;
    let resent = mine_until_done(&rpc, task).await.expect("mined");
    assert_eq!(resent.status, TxStatus::Success);
    assert_eq!(resent.nonce, replaced.nonce + 1);
    let _: bool = rpc
        .request("dev_setAutomine", json!([true]))
        .await
        .expect("automine on");

    // Another sender with the same key (as after a restart with a stale counter): its nonce is
    // taken, it re-reads the chain and sends with the next one.
    let stale = sender(&rpc, &chain.accounts[0], legacy(), &metrics);
    drop(stale.nonces().lease().await.expect("lease")); // counter read now, not advanced
    let first = a.send(to, Bytes::new(), U256::from(3)).await.expect("sent");
    let second = stale
        .send(to, Bytes::new(), U256::from(4))
        .await
        .expect("resynced");
    assert_eq!(second.nonce, first.nonce + 1);

    // A key without funds.
    let poor = sender(&rpc, &key(&hex::encode([0x99; 32])), legacy(), &metrics);
    let e = poor
        .send(to, Bytes::new(), U256::ZERO)
        .await
        .expect_err("no funds");
    assert!(matches!(e, ChainError::InsufficientFunds { .. }), "{e:?}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn payees_billing_bounds_and_payments_are_read_from_the_upstream_contract_and_the_model() {
    use enclave::node::contract::payees::{plan, PayeeError, PayeePlan};
    use enclave::node::evm::aggregator_contract::set_payees_calldata;
    let Some(chain) = start() else { return };
    let (_, _, rpc) = client(&chain);
    let link: Address = rpc
        .request("dev_deployLinkToken", json!([]))
        .await
        .expect("LINK");
    let deployed: Value = rpc
        .request(
            "dev_deployUpstreamAggregator",
            json!([{"decimals": 8, "description": "BTC / USD", "minAnswer": "-7",
                    "maxAnswer": "1000000000000", "link": link,
                    "billing": {"maximumGasPrice": 100, "reasonableGasPrice": 5,
                                "microLinkPerEth": 1, "linkGweiPerObservation": 2,
                                "linkGweiPerTransmission": 3},
                    "linkFunding": "5000000000000000000"}]),
        )
        .await
        .expect("deploy");
    let address: Address = deployed["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("address");
    let upstream = AggregatorContract::new(rpc.clone(), address);
    assert_eq!(
        upstream.answer_bounds().await.expect("bounds"),
        (
            I192::try_from(-7).expect("fits"),
            I192::try_from(1_000_000_000_000i64).expect("fits")
        )
    );
    assert_eq!(
        upstream.billing().await.expect("billing"),
        [100, 5, 1, 2, 3]
    );
    assert_eq!(upstream.link_token().await.expect("token"), link);
    let five_link = U256::from(5_000_000_000_000_000_000u128);
    assert_eq!(
        upstream.token_balance(link).await.expect("balance"),
        five_link
    );
    assert_eq!(
        upstream
            .link_available_for_payment()
            .await
            .expect("available"),
        alloy_primitives::I256::try_from(5_000_000_000_000_000_000i128).expect("fits")
    );

    let owner = address_of(chain.owner.verifying_key());
    let t: Vec<Address> = chain
        .accounts
        .iter()
        .map(|k| address_of(k.verifying_key()))
        .collect();
    assert_eq!(upstream.owed_payment(t[0]).await.expect("owed"), U256::ZERO);
    let other = t[3];
    // Nothing set yet: both are to be set.
    let wanted = [(t[0], owner), (t[1], owner)];
    assert_eq!(
        plan(&upstream, owner, &wanted).await.expect("plan"),
        PayeePlan {
            to_set: wanted.to_vec(),
            ..PayeePlan::default()
        }
    );
    // t0's payee set to the wanted one, t1's to another: nothing to set, one conflict.
    owner_sends(
        &rpc,
        &chain,
        address,
        set_payees_calldata(&[t[0], t[1]], &[owner, other]),
    )
    .await;
    assert_eq!(
        plan(&upstream, owner, &wanted).await.expect("plan"),
        PayeePlan {
            to_set: vec![],
            conflicts: vec![(t[1], owner)],
            unsupported: false,
        }
    );
    // Not the owner: refused with the contract's reason.
    match plan(&upstream, t[2], &wanted).await {
        Err(PayeeError::Refused(reason)) => assert_eq!(reason, "Only callable by owner"),
        other => panic!("{other:?}"),
    }

    // The model has bounds, but no payees and no billing.
    let model_address: Address = rpc
        .request(
            "dev_deployAggregator",
            json!([{"decimals": 8, "description": "BTC / USD", "minAnswer": "1", "maxAnswer": "99"}]),
        )
        .await
        .expect("deploy");
    let model = AggregatorContract::new(rpc.clone(), model_address);
    assert_eq!(
        model.answer_bounds().await.expect("bounds"),
        (I192::ONE, I192::try_from(99).expect("fits"))
    );
    assert_eq!(
        plan(&model, owner, &wanted).await.expect("plan"),
        PayeePlan {
            unsupported: true,
            ..PayeePlan::default()
        }
    );
    for e in [
        model.billing().await.expect_err("no billing"),
        model.link_token().await.expect_err("no token"),
    ] {
        assert!(e.is_bare_revert(), "{e:?}");
    }
}

async fn owner_sends(rpc: &Arc<RpcClient>, chain: &DevChain, to: Address, data: Bytes) {
    let metrics = Arc::new(ChainMetrics::register(&Registry::new()).expect("metrics"));
    let outcome = mined(
        &sender(rpc, &chain.owner, legacy(), &metrics),
        to,
        data,
        "owner's transaction",
    )
    .await;
    assert_eq!(outcome.status, TxStatus::Success);
}
