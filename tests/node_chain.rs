//! The DON on a real EVM: the dev chain (py-evm) runs the tests' OCR1 aggregator contract, which
//! verifies every report with ecrecover. `enclave don-config --submit` configures it, the oracles
//! read the configuration from it, finalize reports, and the scheduled transmitter lands them.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::devchain::{self, DevChain};
use common::don::{Don, T};
use common::harness::wait_until;
use serde_json::{json, Value};

/// `requestNewRound()` from the contract's owner, through the enclave's own transaction sender.
fn request_new_round(chain: &DevChain, contract: &str) {
    use enclave::node::chain::{GasPolicy, RpcClient, TxSender, TxStatus};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let rpc = RpcClient::new(chain.rpc.parse().expect("url"), Duration::from_secs(5))
            .expect("client");
        let key_hex = chain.owner.1.trim_start_matches("0x");
        let key =
            k256::ecdsa::SigningKey::from_slice(&hex::decode(key_hex).expect("hex")).expect("key");
        let sender = TxSender::new(
            std::sync::Arc::new(rpc),
            chain.chain_id,
            key,
            GasPolicy::default(),
        )
        .expect("sender");
        let to: alloy_primitives::Address = contract.parse().expect("address");
        let data = alloy_primitives::Bytes::from(hex::decode("98e5b12a").expect("selector"));
        let outcome = sender
            .send_and_wait(
                to,
                data,
                alloy_primitives::U256::ZERO,
                Duration::from_secs(20),
                Duration::from_secs(5),
            )
            .await
            .expect("requestNewRound mined");
        assert_eq!(outcome.status, TxStatus::Success);
    });
}

fn don_config(don: &Don, submit: bool) -> (i32, Value, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_enclave"));
    command
        .arg("--root")
        .arg(&don.enclave.root)
        .arg("don-config");
    if submit {
        command.arg("--submit");
    }
    let out = command
        .env_remove("CONFIGURATION_PATH")
        .env_remove("ENCLAVE_ROOT")
        .output()
        .expect("don-config runs");
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        value,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_don_configures_its_contract_and_lands_reports_on_a_real_evm() {
    if let Some(reason) = devchain::skip_reason() {
        eprintln!("SKIPPED the_don_configures_its_contract…: {reason}");
        return;
    }
    let chain = DevChain::start();
    let contract = chain.deploy_aggregator(8, "BTC / USD", 1, 1_000_000_000_000_000_000);
    let rpc = chain.rpc.clone();
    let admin = chain.owner.1.clone();
    let address = contract.to_lowercase();
    let don = Don::start(
        5,
        &[("BTC-USD", "BTCUSDT", "BTC", "USDT", "67123.45")],
        &[],
        |s| {
            s["chainlinkRpcHttpUrl"] = json!(rpc);
            s["chainlinkChainId"] = json!(1337);
            s["chain"] = json!({"enabled": true, "contractPollIntervalMs": 1000, "receiptTimeoutMs": 30000,
                            "rebroadcastAfterMs": 5000, "setConfigFunction": "standard", "adminPrivateKey": admin});
            s["feeds"][0]["contractAddress"] = json!(address);
        },
    );
    // Fund every oracle's transmitter.
    let keys = don.keys();
    for node in keys["nodes"].as_array().expect("nodes") {
        chain.fund(
            node["transmitterAddress"].as_str().expect("address"),
            10u128.pow(18),
        );
    }
    // Without a configuration on the contract no feed starts, and /health says why.
    wait_until(
        T,
        "health naming the missing contract configuration",
        || {
            don.json(2, "/health").is_some_and(|(code, health)| {
                code == 503
                    && health["reasons"]
                        .to_string()
                        .contains("waiting for its contract configuration")
            })
        },
    );

    let (code, submitted, stderr) = don_config(&don, true);
    assert_eq!(code, 0, "{submitted}\n{stderr}");
    assert_eq!(submitted["feeds"][0]["result"], "submitted", "{submitted}");
    let (code, again, _) = don_config(&don, true);
    assert_eq!(code, 0);
    assert_eq!(
        again["feeds"][0]["result"], "up-to-date",
        "a second submit changes nothing: {again}"
    );

    // The median lands on chain.
    let started = Instant::now();
    wait_until(T, "the answer on chain", || {
        chain.latest_answer(&contract) == 6_712_345_000_000
    });
    eprintln!("first answer on chain after {:?}", started.elapsed());
    let landed = |outcome: &str| -> f64 {
        don.oracles()
            .iter()
            .map(|&n| {
                don.metric(
                    n,
                    &format!("enclave_node_transmissions_total{{outcome=\"{outcome}\"}}"),
                )
            })
            .sum()
    };
    wait_until(T, "a landed transmission counted", || {
        landed("landed") >= 1.0
    });
    // The oracles of later stages found the report on chain and did not send it again (or, if
    // they raced, were told "stale report" and took it quietly).
    wait_until(T, "later stages stood down", || {
        landed("already_on_chain") + landed("stale") >= 1.0
    });
    assert_eq!(landed("error"), 0.0);

    // With a flat price and a 60 s heartbeat, only requestNewRound can bring a new round: an
    // unfulfilled RoundRequested makes the oracles report.
    let round_before = chain.latest_round_id(&contract);
    request_new_round(&chain, &contract);
    wait_until(T, "the requested round answered on chain", || {
        chain.latest_round_id(&contract) > round_before
    });

    // A move beyond alphaPPB reaches the chain.
    don.prices.set("BTCUSDT", "68000.00");
    wait_until(T, "the moved answer on chain", || {
        chain.latest_answer(&contract) == 6_800_000_000_000
    });
    let report = don.latest(2, "BTC-USD").expect("latest report");
    assert_eq!(report["answer"], "68000");
}

#[test]
fn the_faucet_funds_empty_transmitters_and_reports_land_without_a_crashed_oracle() {
    if let Some(reason) = devchain::skip_reason() {
        eprintln!("SKIPPED the_faucet_funds…: {reason}");
        return;
    }
    let chain = DevChain::start();
    let contract = chain.deploy_aggregator(8, "ETH / USD", 1, 1_000_000_000_000_000_000);
    let rpc = chain.rpc.clone();
    let admin = chain.owner.1.clone();
    let faucet = chain.accounts[0].1.clone();
    let address = contract.to_lowercase();
    // Oracle node 4 is down the whole time: with f = 1 the others carry on, and when it would
    // have been the first transmitter, the next stage sends instead.
    let don = Don::start(
        5,
        &[("ETH-USD", "ETHUSDT", "ETH", "USDT", "3456.78")],
        &[4],
        |s| {
            s["chainlinkRpcHttpUrl"] = json!(rpc);
            s["chainlinkChainId"] = json!(1337);
            s["faucetPrivateKey"] = json!(faucet);
            s["faucetMinWei"] = json!("100000000000000000");
            s["faucetTopupWei"] = json!("60000000000000000");
            s["balanceTopupCheckIntervalMs"] = json!(5000);
            s["chain"] = json!({"enabled": true, "contractPollIntervalMs": 1000, "receiptTimeoutMs": 30000,
                            "rebroadcastAfterMs": 5000, "setConfigFunction": "superprotocol",
                            "adminPrivateKey": admin});
            s["feeds"][0]["contractAddress"] = json!(address);
        },
    );
    let keys = don.keys();
    let transmitters = common::oracle_transmitters(&keys);
    // Each empty transmitter needs two top-ups of 0.06 to pass 0.1: all get there.
    wait_until(T, "every transmitter topped up above faucetMinWei", || {
        transmitters
            .iter()
            .all(|t| chain.balance(t) >= 100_000_000_000_000_000)
    });
    wait_until(T, "the top-ups counted", || {
        don.metric(1, "enclave_chain_faucet_topups_total{result=\"success\"}") >= 8.0
    });
    let (code, submitted, stderr) = don_config(&don, true);
    assert_eq!(code, 0, "{submitted}\n{stderr}");
    assert_eq!(submitted["feeds"][0]["result"], "submitted", "{submitted}");
    wait_until(T, "the answer on chain", || {
        chain.latest_answer(&contract) == 345_678_000_000
    });
    assert!(don.metric(1, "enclave_chain_transmitter_balance_wei{") > 0.0);
}

#[test]
fn an_rpc_outage_and_a_dropped_transaction_do_not_freeze_the_feed() {
    if let Some(reason) = devchain::skip_reason() {
        eprintln!("SKIPPED an_rpc_outage…: {reason}");
        return;
    }
    let chain = DevChain::start();
    let contract = chain.deploy_aggregator(8, "SOL / USD", 1, 1_000_000_000_000_000_000);
    let upstream = chain
        .rpc
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = common::tcp_proxy::TcpProxy::start(upstream);
    let rpc = format!("http://127.0.0.1:{}", proxy.port);
    let admin = chain.owner.1.clone();
    let address = contract.to_lowercase();
    let don = Don::start(
        5,
        &[("SOL-USD", "SOLUSDT", "SOL", "USDT", "150.00")],
        &[],
        |s| {
            s["chainlinkRpcHttpUrl"] = json!(rpc);
            s["chainlinkChainId"] = json!(1337);
            s["chain"] = json!({"enabled": true, "contractPollIntervalMs": 1000, "receiptTimeoutMs": 20000,
                            "rebroadcastAfterMs": 2000, "setConfigFunction": "standard",
                            "adminPrivateKey": admin, "rpcTimeoutMs": 2000});
            s["feeds"][0]["contractAddress"] = json!(address);
        },
    );
    for node in don.keys()["nodes"].as_array().expect("nodes") {
        chain.fund(
            node["transmitterAddress"].as_str().expect("address"),
            10u128.pow(18),
        );
    }
    let (code, submitted, stderr) = don_config(&don, true);
    assert_eq!(code, 0, "{submitted}\n{stderr}");
    wait_until(T, "the first answer on chain", || {
        chain.latest_answer(&contract) == 15_000_000_000
    });

    // The RPC goes away for a while: the oracles keep running, and once it is back a move lands.
    proxy.set_up(false);
    don.prices.set("SOLUSDT", "153.00");
    wait_until(T, "RPC errors seen by the oracles", || {
        don.oracles().iter().any(|&n| {
            don.metric(
                n,
                "enclave_chain_rpc_requests_total{method=\"eth_call\",outcome=\"transport\"}",
            ) > 0.0
        })
    });
    proxy.set_up(true);
    wait_until(T, "the move on chain after the outage", || {
        chain.latest_answer(&contract) == 15_300_000_000
    });
    for node in 1..=5 {
        assert!(
            don.json(node, "/health").is_some(),
            "node {node} stopped answering"
        );
    }

    // A transmission the chain drops: mining stops, pending transactions vanish, mining resumes;
    // the oracles re-send (or send the next report), and the feed moves on.
    chain.set_automine(false);
    don.prices.set("SOLUSDT", "156.00");
    // Whatever a transmitter sends while mining is off stays pending, and is dropped here.
    wait_until(T, "a pending transmit dropped", || {
        !chain.drop_pending().is_empty()
    });
    chain.set_automine(true);
    wait_until(T, "the move on chain after the drop", || {
        chain.mine();
        chain.latest_answer(&contract) == 15_600_000_000
    });
}

#[test]
fn with_configure_contracts_node_1_configures_every_contract_itself() {
    if let Some(reason) = devchain::skip_reason() {
        eprintln!("SKIPPED with_configure_contracts…: {reason}");
        return;
    }
    let chain = DevChain::start();
    let contract = chain.deploy_aggregator(8, "LINK / USD", 1, 1_000_000_000_000_000_000);
    let rpc = chain.rpc.clone();
    let admin = chain.owner.1.clone();
    let address = contract.to_lowercase();
    let mut don = Don::start(
        5,
        &[("LINK-USD", "LINKUSDT", "LINK", "USDT", "18.25")],
        &[],
        |s| {
            s["chainlinkRpcHttpUrl"] = json!(rpc);
            s["chainlinkChainId"] = json!(1337);
            s["chain"] = json!({"enabled": true, "contractPollIntervalMs": 1000, "receiptTimeoutMs": 30000,
                            "rebroadcastAfterMs": 5000, "setConfigFunction": "superprotocol",
                            "adminPrivateKey": admin, "configureContracts": true});
            s["feeds"][0]["contractAddress"] = json!(address);
        },
    );
    for node in don.keys()["nodes"].as_array().expect("nodes") {
        chain.fund(
            node["transmitterAddress"].as_str().expect("address"),
            10u128.pow(18),
        );
    }
    // Nobody runs don-config: node 1 submits, the oracles join, the median lands.
    wait_until(T, "the answer on chain", || {
        chain.latest_answer(&contract) == 1_825_000_000
    });
    assert_eq!(
        don.metric(
            1,
            "enclave_chain_contract_configurations_total{feed=\"LINK-USD\",result=\"submitted\"}"
        ),
        1.0
    );
    let (code, again, stderr) = don_config(&don, true);
    assert_eq!(code, 0, "{again}\n{stderr}");
    assert_eq!(again["feeds"][0]["result"], "up-to-date", "{again}");
    // Restarted, node 1 finds the contract configured and sends nothing.
    don.stop(1);
    don.spawn(1);
    wait_until(T, "node 1 found the contract up to date", || {
        don.metric(
            1,
            "enclave_chain_contract_configurations_total{feed=\"LINK-USD\",result=\"up_to_date\"}",
        ) == 1.0
    });
}
