//! The DON on a real EVM: the dev chain (py-evm) runs an OCR1 aggregator that verifies every
//! report with ecrecover — the project's Vyper model or the real upstream
//! `AccessControlledOffchainAggregator` 4.0.0 (libocr's bytecode, with LINK billing). `enclave
//! don-config --submit` (or node 1 itself) configures it, the oracles read the configuration from
//! it, finalize reports, and the scheduled transmitter lands them.

use crate::common;

use std::time::Instant;

use common::devchain::{self, Contract, DevChain, Upstream, TEST_BILLING};
use common::don::{Don, T};
use common::harness::wait_until;
use serde_json::{json, Value};

/// `requestNewRound()` from the contract's owner, through the enclave's own transaction sender.
fn request_new_round(chain: &DevChain, contract: &str) {
    chain.owner_send(contract, &hex::decode("98e5b12a").expect("selector"));
}

#[test]
fn the_don_configures_the_model_contract_and_lands_reports_on_a_real_evm() {
    the_don_configures_its_contract_and_lands_reports(Contract::Model);
}

#[test]
fn the_don_configures_the_upstream_contract_and_lands_reports_on_a_real_evm() {
    the_don_configures_its_contract_and_lands_reports(Contract::Upstream);
}

fn the_don_configures_its_contract_and_lands_reports(kind: Contract) {
    let Some(chain) =
        devchain::start_or_skip(&format!("the_don_configures_its_contract… ({kind:?})"))
    else {
        return;
    };
    let contract = chain.deploy_feed_contract(kind, 8, "BTC / USD", 1, 1_000_000_000_000_000_000);
    // Oracle node 3 is paid elsewhere than the others (who default to the admin).
    let node_3_payee = chain.accounts[5].0.clone();
    let don = Don::start(
        5,
        &[("BTC-USD", "BTCUSDT", "BTC", "USDT", "67123.45")],
        &[],
        chain.configure_for(&contract, json!({"payees": {"3": node_3_payee}})),
    );
    let keys = don.keys();
    chain.fund_transmitters(&keys);
    let transmitters = common::oracle_transmitters(&keys);
    if kind == Contract::Upstream {
        // Someone already made another address node 5's payee: the contract will not let the
        // enclave change it, which is reported, and the configuration goes on regardless.
        let t5: alloy_primitives::Address = transmitters[3].parse().expect("address");
        let other: alloy_primitives::Address = chain.accounts[6].0.parse().expect("address");
        let data = enclave::node::evm::aggregator_contract::set_payees_calldata(&[t5], &[other]);
        chain.owner_send(&contract, &data);
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

    let (code, submitted, stderr) = don.don_config(true);
    assert_eq!(code, 0, "{submitted}\n{stderr}");
    assert_eq!(submitted["feeds"][0]["result"], "submitted", "{submitted}");
    let digest = submitted["feeds"][0]["configDigest"]
        .as_str()
        .expect("digest");
    assert!(digest.starts_with("0x") && digest.len() == 34, "{digest}");
    let pair = |transmitter: &str, payee: &str| json!({"transmitter": transmitter, "payee": payee});
    let owner = chain.owner.0.as_str();
    match kind {
        // The real contract refuses a configuration without payees: the missing ones were set
        // first (the admin by default, node 3's its own); node 5's other payee is reported.
        Contract::Upstream => {
            let payees = &submitted["feeds"][0]["payees"];
            assert_eq!(
                payees["set"],
                json!([
                    pair(&transmitters[0], owner),
                    pair(&transmitters[1], &node_3_payee),
                    pair(&transmitters[2], owner)
                ]),
                "{payees}"
            );
            assert_eq!(
                payees["conflicts"],
                json!([pair(&transmitters[3], owner)]),
                "{payees}"
            );
            assert!(
                stderr.contains("warning") && stderr.contains(&transmitters[3]),
                "{stderr}"
            );
        }
        Contract::Model => assert_eq!(submitted["feeds"][0]["payees"], "not-managed"),
    }
    assert_eq!(submitted["feeds"][0]["billing"], "not-configured");
    let (code, again, _) = don.don_config(true);
    assert_eq!(code, 0);
    assert_eq!(
        again["feeds"][0]["result"], "up-to-date",
        "a second submit changes nothing: {again}"
    );
    if kind == Contract::Upstream {
        assert_eq!(again["feeds"][0]["payees"]["set"], json!([]), "{again}");
        assert_eq!(again["feeds"][0]["payees"]["transaction"], Value::Null);
        assert_eq!(
            again["feeds"][0]["payees"]["conflicts"],
            json!([pair(&transmitters[3], owner)])
        );
    }

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
    let Some(chain) = devchain::start_or_skip("the_faucet_funds…") else {
        return;
    };
    let contract = chain.deploy_aggregator(8, "ETH / USD", 1, 1_000_000_000_000_000_000);
    let configure = chain.configure_for(&contract, json!({"setConfigFunction": "superprotocol"}));
    let faucet = chain.accounts[0].1.clone();
    // Oracle node 4 is down the whole time: with f = 1 the others carry on, and when it would
    // have been the first transmitter, the next stage sends instead.
    let don = Don::start(
        5,
        &[("ETH-USD", "ETHUSDT", "ETH", "USDT", "3456.78")],
        &[4],
        |s| {
            configure(s);
            s["faucetPrivateKey"] = json!(faucet);
            s["faucetMinWei"] = json!("100000000000000000");
            s["faucetTopupWei"] = json!("60000000000000000");
            s["balanceTopupCheckIntervalMs"] = json!(5000);
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
    let (code, submitted, stderr) = don.don_config(true);
    assert_eq!(code, 0, "{submitted}\n{stderr}");
    assert_eq!(submitted["feeds"][0]["result"], "submitted", "{submitted}");
    wait_until(T, "the answer on chain", || {
        chain.latest_answer(&contract) == 345_678_000_000
    });
    assert!(don.metric(1, "enclave_chain_transmitter_balance_wei{") > 0.0);
}

#[test]
fn an_rpc_outage_and_a_dropped_transaction_do_not_freeze_the_feed_on_the_model() {
    an_rpc_outage_and_a_dropped_transaction_do_not_freeze_the_feed(Contract::Model);
}

#[test]
fn an_rpc_outage_and_a_dropped_transaction_do_not_freeze_the_feed_on_the_upstream_contract() {
    an_rpc_outage_and_a_dropped_transaction_do_not_freeze_the_feed(Contract::Upstream);
}

fn an_rpc_outage_and_a_dropped_transaction_do_not_freeze_the_feed(kind: Contract) {
    let Some(chain) = devchain::start_or_skip(&format!("an_rpc_outage… ({kind:?})")) else {
        return;
    };
    let contract = chain.deploy_feed_contract(kind, 8, "SOL / USD", 1, 1_000_000_000_000_000_000);
    let upstream = chain
        .rpc
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = common::tcp_proxy::TcpProxy::start(upstream);
    let rpc = format!("http://127.0.0.1:{}", proxy.port);
    let configure = chain.configure_for(
        &contract,
        json!({"receiptTimeoutMs": 20000, "rebroadcastAfterMs": 2000, "rpcTimeoutMs": 2000}),
    );
    let don = Don::start(
        5,
        &[("SOL-USD", "SOLUSDT", "SOL", "USDT", "150.00")],
        &[],
        |s| {
            configure(s);
            // Through the proxy, which the test can cut.
            s["chainlinkRpcHttpUrl"] = json!(rpc);
        },
    );
    chain.fund_transmitters(&don.keys());
    let (code, submitted, stderr) = don.don_config(true);
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
    let Some(chain) = devchain::start_or_skip("with_configure_contracts…") else {
        return;
    };
    let contract = chain.deploy_aggregator(8, "LINK / USD", 1, 1_000_000_000_000_000_000);
    let mut don = Don::start(
        5,
        &[("LINK-USD", "LINKUSDT", "LINK", "USDT", "18.25")],
        &[],
        chain.configure_for(
            &contract,
            json!({"setConfigFunction": "superprotocol", "configureContracts": true}),
        ),
    );
    chain.fund_transmitters(&don.keys());
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
    let (code, again, stderr) = don.don_config(true);
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

/// The upstream contract as an operator deploys it: LINK token and bounds in the constructor,
/// billing left at zero (the enclave's `chain.billing` sets it), funded with 1000 LINK.
fn deploy_fresh_upstream(chain: &DevChain, description: &str, max: i128) -> (String, String) {
    let link = chain.deploy_link_token();
    let contract = chain.deploy_upstream_aggregator(&Upstream {
        decimals: 8,
        description: description.into(),
        min: 1,
        max,
        link: Some(link.clone()),
        billing: None,
        link_funding: 1000 * 10u128.pow(18),
    });
    (contract, link)
}

/// Moves the price across alphaPPB and waits for the new round on chain; returns the round.
fn one_more_report(don: &Don, chain: &DevChain, contract: &str, symbol: &str, i: usize) -> u128 {
    let before = chain.latest_round_id(contract);
    let (price, answer) = if i.is_multiple_of(2) {
        ("101.00", 10_100_000_000)
    } else {
        ("100.00", 10_000_000_000)
    };
    don.prices.set(symbol, price);
    let mut round = before;
    wait_until(T, &format!("report {i} ({price}) on chain"), || {
        round = chain.latest_round_id(contract);
        round > before && chain.latest_answer(contract) == answer
    });
    round
}

fn error_lines(don: &Don, node: u32) -> Vec<String> {
    don.logs(node)
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn node_1_configures_a_fresh_upstream_contract_with_billing_and_its_oracles_get_paid() {
    let Some(chain) = devchain::start_or_skip("node_1_configures_a_fresh_upstream_contract…")
    else {
        return;
    };
    let (contract, link) = deploy_fresh_upstream(&chain, "DOT / USD", 10i128.pow(20));
    assert_eq!(chain.billing_of(&contract), [0; 5]);
    let billing = json!({"maximumGasPrice": TEST_BILLING[0], "reasonableGasPrice": TEST_BILLING[1],
        "microLinkPerEth": TEST_BILLING[2], "linkGweiPerObservation": TEST_BILLING[3],
        "linkGweiPerTransmission": TEST_BILLING[4]});
    // Node 1 starts once the scene is set.
    let mut don = Don::start(
        5,
        &[("DOT-USD", "DOTUSDT", "DOT", "USDT", "100.00")],
        &[1],
        chain.configure_for(
            &contract,
            json!({"configureContracts": true, "billing": billing}),
        ),
    );
    chain.fund_transmitters(&don.keys());
    // Someone made another address node 5's payee before: reported, not fought over.
    let transmitters = common::oracle_transmitters(&don.keys());
    let t5: alloy_primitives::Address = transmitters[3].parse().expect("address");
    let other: alloy_primitives::Address = chain.accounts[6].0.parse().expect("address");
    chain.owner_send(
        &contract,
        &enclave::node::evm::aggregator_contract::set_payees_calldata(&[t5], &[other]),
    );
    don.spawn(1);

    // Nothing done by hand: node 1 sets the payees, the configuration and the billing.
    wait_until(T, "the first answer on chain", || {
        chain.latest_answer(&contract) == 10_000_000_000
    });
    assert_eq!(chain.billing_of(&contract), TEST_BILLING);
    assert_eq!(
        don.metric(
            1,
            "enclave_chain_contract_payee_conflicts{feed=\"DOT-USD\"}"
        ),
        1.0
    );
    assert_eq!(
        don.metric(
            1,
            "enclave_chain_contract_configurations_total{feed=\"DOT-USD\",result=\"submitted\"}"
        ),
        1.0
    );
    // A normal boot: the oracles said at info what they waited for, and nothing at ERROR.
    for node in 1..=5 {
        assert_eq!(error_lines(&don, node), Vec::<String>::new(), "node {node}");
    }
    let started = don.logs(2);
    assert!(
        started.contains("feed not started yet") || started.contains("protocol instance started"),
        "{started}"
    );
    assert!(
        started
            .lines()
            .any(|l| l.contains("protocol instance started") && l.contains("digest=0x")),
        "the config digest is printed with 0x: {started}"
    );

    // Ten more reports, with oracle 3 killed after three of them and back for the rest.
    let first_round = chain.latest_round_id(&contract);
    for i in 0..12 {
        if i == 3 {
            don.crash(3);
        }
        if i == 7 {
            don.spawn(3);
        }
        one_more_report(&don, &chain, &contract, "DOTUSDT", i);
    }
    let rounds = chain.latest_round_id(&contract) - first_round;
    assert!(rounds >= 12, "{rounds} rounds");
    assert_eq!(error_lines(&don, 2), Vec::<String>::new());

    // Every oracle observed and was paid for it; node 1 exports what each is owed and what the
    // contract has.
    for t in &transmitters {
        assert!(chain.owed_payment(&contract, t) > 0, "{t} is owed nothing");
    }
    wait_until(T, "node 1's billing metrics", || {
        (2..=5).all(|node| {
            don.metric(
                1,
                &format!(
                    "enclave_chain_oracle_owed_payment_juels{{feed=\"DOT-USD\",node=\"{node}\"}}"
                ),
            ) > 0.0
        }) && don.metric(
            1,
            "enclave_chain_contract_link_balance_juels{feed=\"DOT-USD\"}",
        ) == 1e21
            && don.metric(
                1,
                "enclave_chain_contract_link_available_juels{feed=\"DOT-USD\"}",
            ) > 0.0
    });
    // The payee (the admin, by default) withdraws what oracle 2 earned.
    let owed = chain.owed_payment(&contract, &transmitters[0]);
    let before = chain.token_balance(&link, &chain.owner.0);
    let mut withdraw = common::devchain::selector("withdrawPayment(address)").to_vec();
    withdraw.extend([0u8; 12]);
    withdraw.extend(hex::decode(transmitters[0].trim_start_matches("0x")).expect("hex"));
    chain.owner_send(&contract, &withdraw);
    let paid = chain.token_balance(&link, &chain.owner.0) - before;
    assert!(paid >= owed, "paid {paid}, owed {owed} before");
    assert!(chain.token_balance(&link, &contract) < 1000 * 10u128.pow(18));

    // Restarted, node 1 finds everything in place and sends nothing.
    let (code, again, stderr) = don.don_config(true);
    assert_eq!(code, 0, "{again}\n{stderr}");
    assert_eq!(again["feeds"][0]["result"], "up-to-date", "{again}");
    assert_eq!(again["feeds"][0]["billing"], "up-to-date", "{again}");
    assert_eq!(again["feeds"][0]["payees"]["set"], json!([]), "{again}");
}

#[test]
fn with_one_oracle_down_the_second_stage_rarely_races_into_a_stale_report() {
    let Some(chain) = devchain::start_or_skip("with_one_oracle_down…") else {
        return;
    };
    let contract =
        chain.deploy_feed_contract(Contract::Upstream, 8, "ADA / USD", 1, 10i128.pow(20));
    // Oracle node 4 is down throughout: when it is a round's first-stage transmitter, the two
    // oracles of the second stage ([1,2,2,2]) are the ones to send.
    let don = Don::start(
        5,
        &[("ADA-USD", "ADAUSDT", "ADA", "USDT", "100.00")],
        &[4],
        chain.configure_for(&contract, json!({"configureContracts": true})),
    );
    chain.fund_transmitters(&don.keys());
    wait_until(T, "the first answer on chain", || {
        chain.latest_answer(&contract) == 10_000_000_000
    });
    let from_block = chain.block_number() + 1;
    let first_round = chain.latest_round_id(&contract);
    const REPORTS: usize = 24;
    for i in 0..REPORTS {
        one_more_report(&don, &chain, &contract, "ADAUSDT", i);
    }
    let reports = chain.latest_round_id(&contract) - first_round;
    // Every transaction to the contract since: landed transmits and reverted ones.
    let receipts = chain.receipts_to(&contract, from_block);
    let gas = |r: &Value| devchain::quantity(&r["gasUsed"]);
    let (landed, reverted): (Vec<&Value>, Vec<&Value>) =
        receipts.iter().partition(|r| r["status"] == "0x1");
    let average =
        |list: &[&Value]| list.iter().map(|r| gas(r)).sum::<u64>() / list.len().max(1) as u64;
    let stale: f64 = don
        .oracles()
        .iter()
        .map(|&n| don.metric(n, "enclave_node_transmissions_total{outcome=\"stale\"}"))
        .sum();
    eprintln!(
        "FIGURE: {reports} reports, {} landed transmits (avg gas {}), {} reverted (avg gas {}), {stale} counted stale",
        landed.len(),
        average(&landed),
        reverted.len(),
        average(&reverted)
    );
    assert!(reports >= REPORTS as u128, "{reports} reports");
    // The figure: at most one wasted transmission per 20 reports.
    assert!(
        reverted.len() as u128 * 20 <= reports,
        "{} reverted transmits for {reports} reports",
        reverted.len()
    );
}

#[test]
fn a_median_outside_the_contracts_bounds_is_never_transmitted_and_is_counted() {
    let Some(chain) = devchain::start_or_skip("a_median_outside_the_contracts_bounds…") else {
        return;
    };
    // maxAnswer 150.00: a price of 200.00 cannot land.
    let (contract, _) = deploy_fresh_upstream(&chain, "XRP / USD", 15_000_000_000);
    let don = Don::start(
        5,
        &[("XRP-USD", "XRPUSDT", "XRP", "USDT", "200.00")],
        &[],
        chain.configure_for(&contract, json!({"configureContracts": true})),
    );
    chain.fund_transmitters(&don.keys());
    wait_until(T, "node 1 configured the contract", || {
        don.metric(
            1,
            "enclave_chain_contract_configurations_total{feed=\"XRP-USD\",result=\"submitted\"}",
        ) == 1.0
    });
    let configured_at = chain.block_number();
    let counted = |node: u32| {
        don.metric(
            node,
            "enclave_node_reports_out_of_bounds_total{feed=\"XRP-USD\"}",
        )
    };
    // Every round reports (the contract has no answer yet); every report is held back.
    wait_until(T, "several out-of-bounds reports on every oracle", || {
        don.oracles().iter().all(|&n| counted(n) >= 3.0)
    });
    assert_eq!(chain.latest_round_id(&contract), 0);
    assert_eq!(
        chain.receipts_to(&contract, configured_at + 1),
        Vec::<Value>::new(),
        "no transmit was sent"
    );
    for node in don.oracles() {
        let logged = don
            .logs(node)
            .matches("outside the contract's minAnswer/maxAnswer")
            .count();
        assert_eq!(
            logged, 1,
            "node {node}: logged once an hour, not per report"
        );
        assert!(
            don.metric(
                node,
                "enclave_node_transmissions_total{outcome=\"out_of_bounds\"}"
            ) >= 3.0
        );
    }
    // Back within bounds, the report lands.
    don.prices.set("XRPUSDT", "120.00");
    wait_until(T, "the answer within bounds on chain", || {
        chain.latest_answer(&contract) == 12_000_000_000
    });
}
