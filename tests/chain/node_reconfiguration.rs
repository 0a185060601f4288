//! A running DON on the dev chain whose contract changes under it: a new configuration on a feed's
//! contract restarts that feed's protocol instance inside each running oracle (same process,
//! counted), and an RPC endpoint serving another chain stops a node through its normal shutdown
//! with exit code 78.

use crate::common;

use common::devchain::{self, Contract, DevChain};
use common::don::{Don, T};
use common::harness::wait_until;
use serde_json::json;

const FEED: &str = "BTC-USD";
const RECONFIGURED: &str = "enclave_node_feed_reconfigurations_total{feed=\"BTC-USD\"}";

/// The contract's `latestConfigDetails()` digest, as `0x` and 32 hex digits.
fn contract_digest(chain: &DevChain, contract: &str) -> String {
    let out = chain
        .call(None, contract, &devchain::selector("latestConfigDetails()"))
        .expect("latestConfigDetails");
    // (uint32 configCount, uint32 blockNumber, bytes16 configDigest): the third word, left-aligned.
    format!("0x{}", hex::encode(&out[64..80]))
}

/// The same DON configuration put on the contract once more (a fresh dealer key): the contract
/// counts a new configuration, so its digest changes while the oracles' own configuration does
/// not.
fn configure_again(don: &Don, chain: &DevChain, contract: &str) {
    let (code, printed, stderr) = don.don_config(false);
    assert_eq!(code, 0, "{stderr}");
    let feed = &printed["feeds"][0];
    let addresses = |field: &str| -> Vec<alloy_primitives::Address> {
        feed[field]
            .as_array()
            .expect(field)
            .iter()
            .map(|a| a.as_str().expect("address").parse().expect("address"))
            .collect()
    };
    let encoded = hex::decode(
        feed["encoded"]
            .as_str()
            .expect("encoded")
            .trim_start_matches("0x"),
    )
    .expect("hex");
    let calldata = enclave::node::evm::aggregator_contract::set_config_calldata(
        &addresses("signers"),
        &addresses("transmitters"),
        u8::try_from(feed["threshold"].as_u64().expect("threshold")).expect("small"),
        feed["encodedConfigVersion"].as_u64().expect("version"),
        &encoded,
    );
    chain.owner_send(contract, &calldata);
}

#[test]
fn a_new_contract_configuration_restarts_the_feed_inside_the_running_oracles() {
    let Some(chain) = devchain::start_or_skip("a_new_contract_configuration_restarts…") else {
        return;
    };
    let contract = chain.deploy_feed_contract(Contract::Model, 8, "BTC / USD", 1, 10i128.pow(20));
    let mut don = Don::start(
        5,
        &[(FEED, "BTCUSDT", "BTC", "USDT", "67123.45")],
        &[],
        chain.configure_for(&contract, json!({})),
    );
    chain.fund_transmitters(&don.keys());
    let (code, submitted, stderr) = don.don_config(true);
    assert_eq!(code, 0, "{submitted}\n{stderr}");
    let first = contract_digest(&chain, &contract);
    let landed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(T, "the first answer on chain", || {
            chain.latest_answer(&contract) == 6_712_345_000_000
        })
    }));
    if landed.is_err() {
        panic!("no first answer; node 2 said:\n{}", don.logs(2));
    }
    let pids: Vec<Option<u32>> = don.oracles().iter().map(|&n| don.pid(n)).collect();
    for n in don.oracles() {
        assert_eq!(don.metric(n, RECONFIGURED), 0.0, "node {n}");
    }

    configure_again(&don, &chain, &contract);
    let second = contract_digest(&chain, &contract);
    assert_ne!(first, second);

    // Every oracle joins the new configuration without leaving its process.
    for n in don.oracles() {
        wait_until(T, &format!("node {n} reporting under {second}"), || {
            don.json(n, "/v1/feeds").is_some_and(|(_, feeds)| {
                feeds.to_string().contains(&second) && !feeds.to_string().contains(&first)
            })
        });
        assert_eq!(don.metric(n, RECONFIGURED), 1.0, "node {n}");
        let logs = don.logs(n);
        assert!(
            logs.contains(
                "the contract's configuration changed; restarting the feed's protocol instance"
            ),
            "node {n}: {logs}"
        );
    }
    let still: Vec<Option<u32>> = don.oracles().iter().map(|&n| don.pid(n)).collect();
    assert_eq!(pids, still);
    for n in don.oracles() {
        assert!(don.is_running(n), "node {n} exited");
    }

    // A move beyond alphaPPB lands on chain: the contract accepts only reports signed under its
    // current digest.
    don.prices.set("BTCUSDT", "68000.00");
    wait_until(T, "the moved answer on chain", || {
        chain.latest_answer(&contract) == 6_800_000_000_000
    });

    // Stopping an oracle cancels and joins every task it started.
    let node = don.oracles()[0];
    assert_eq!(don.stop(node), Some(0));
    let logs = don.logs(node);
    assert!(logs.contains("every task stopped"), "{logs}");
}

#[test]
fn an_rpc_endpoint_of_another_chain_stops_the_node_normally_with_exit_code_78() {
    let Some(chain) = devchain::start_or_skip("an_rpc_endpoint_of_another_chain…") else {
        return;
    };
    let contract = chain.deploy_feed_contract(Contract::Model, 8, "BTC / USD", 1, 10i128.pow(20));
    // The dev chain is 1337; the configuration names another private chain.
    let mut don = Don::start(
        5,
        &[(FEED, "BTCUSDT", "BTC", "USDT", "67123.45")],
        &[3, 4, 5],
        |s| {
            chain.configure_for(&contract, json!({}))(s);
            s["chainlinkChainId"] = json!(7418);
        },
    );
    for node in [1, 2] {
        wait_until(T, &format!("node {node} exited"), || !don.is_running(node));
        assert_eq!(don.stop(node), Some(78), "node {node}: {}", don.logs(node));
        let logs = don.logs(node);
        assert!(logs.contains("serves chain 1337"), "node {node}: {logs}");
        assert!(logs.contains("every task stopped"), "node {node}: {logs}");
    }
}
