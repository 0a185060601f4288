//! The DON as real processes: one bootstrap and four (or seven) oracles over real TCP with mutual
//! TLS, each with its own PostgreSQL database, observing through the real price aggregator.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::don::{heartbeat_every, Don, Feed, BTC_USD, T};
use common::harness::wait_until;
use serde_json::{json, Value};

const FEEDS: &[Feed<'static>] = &[
    ("BTC-USD", "BTCUSDT", "BTC", "USDT", "67123.45"),
    ("ETH-USD", "ETHUSDT", "ETH", "USDT", "3456.78"),
    ("SOL-USD", "SOLUSDT", "SOL", "USDT", "150.5"),
];

fn signer_addresses(don: &Don) -> HashSet<String> {
    don.keys()["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["role"] == "oracle")
        .map(|n| {
            n["onchainSigningAddress"]
                .as_str()
                .expect("address")
                .to_owned()
        })
        .collect()
}

/// Every report carries more than f distinct configured signers and more than 2f sorted
/// observations.
fn check_report(report: &Value, signers: &HashSet<String>, f: usize) {
    let sigs: Vec<&str> = report["signers"]
        .as_array()
        .expect("signers")
        .iter()
        .map(|s| s.as_str().expect("recovered"))
        .collect();
    let distinct: HashSet<&str> = sigs.iter().copied().collect();
    assert!(distinct.len() > f, "{report}");
    assert_eq!(distinct.len(), sigs.len(), "duplicate signer: {report}");
    assert!(
        sigs.iter().all(|s| signers.contains(*s)),
        "unknown signer: {report}"
    );
    let values: Vec<i128> = report["observations"]
        .as_array()
        .expect("observations")
        .iter()
        .map(|o| {
            o["valueInt192"]
                .as_str()
                .expect("value")
                .parse()
                .expect("integer")
        })
        .collect();
    assert!(values.len() > 2 * f, "{report}");
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "unsorted: {report}"
    );
    let report_hex = report["report"].as_str().expect("report hex");
    assert_eq!(report_hex.len(), 2 + 2 * (128 + 32 * values.len()));
}

fn epoch_round(v: &Value) -> (u64, u64) {
    (
        v["epoch"].as_u64().expect("epoch"),
        v["round"].as_u64().expect("round"),
    )
}

/// The (epoch, round) of `node`'s latest BTC-USD report; (0, 0) before its first.
fn latest_position(don: &Don, node: u32) -> (u64, u64) {
    don.latest(node, "BTC-USD")
        .map(|v| epoch_round(&v))
        .unwrap_or((0, 0))
}

#[test]
fn a_bootstrap_and_four_oracles_finalize_signed_reports_for_three_feeds_and_agree() {
    let don = Don::start(5, FEEDS, &[], |s| heartbeat_every(s, 10_000));
    let signers = signer_addresses(&don);
    assert_eq!(signers.len(), 4);
    for feed in &don.feeds {
        for node in don.oracles() {
            let report = don.wait_latest(node, feed, "a finalized report", |_| true);
            check_report(&report, &signers, 1);
        }
    }
    // Safety: whatever (epoch, round) several oracles finalized, they finalized the same report.
    let mut by_round: BTreeMap<(String, u64, u64), (u32, String)> = BTreeMap::new();
    for node in don.oracles() {
        for row in don.query(
            node,
            "SELECT feed, epoch, round, encode(report, 'hex') FROM ocr_finalized_reports",
        ) {
            let key = (
                row[0].clone(),
                row[1].parse().expect("epoch"),
                row[2].parse().expect("round"),
            );
            if let Some((other, report)) = by_round.get(&key) {
                assert_eq!(
                    report, &row[3],
                    "nodes {other} and {node} finalized different reports for {key:?}"
                );
            } else {
                by_round.insert(key, (node, row[3].clone()));
            }
        }
    }
    assert!(by_round.len() >= 3);
    let btc = don.latest(2, "BTC-USD").expect("report");
    assert_eq!(btc["answer"], "67123.45", "{btc}");
    assert_eq!(btc["answerInt192"], "6712345000000");

    // The API around it.
    for node in don.oracles() {
        wait_until(T, "ready", || {
            don.json(node, "/health")
                .is_some_and(|(code, h)| code == 200 && h["ready"] == true)
        });
    }
    let (code, health) = don.json(1, "/health").expect("bootstrap health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["role"], "bootstrap");
    let (code, body) = don.json(1, "/v1/feeds").expect("answer");
    assert_eq!(code, 404, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("bootstrap"));
    let (code, feeds) = don.json(3, "/v1/feeds").expect("feeds");
    assert_eq!(code, 200);
    assert_eq!(feeds["feeds"].as_array().map(Vec::len), Some(3));
    let (code, rounds) = don
        .json(3, "/v1/rounds?feed=ETH-USD&limit=5")
        .expect("rounds");
    assert_eq!(code, 200, "{rounds}");
    let rounds = rounds["rounds"].as_array().expect("list");
    assert!(!rounds.is_empty() && rounds.len() <= 5);
    assert!(rounds.iter().all(|r| r["feed"] == "ETH-USD"));
    for (path, field) in [
        ("/v1/rounds?limit=0", "limit"),
        ("/v1/rounds?limit=x", "limit"),
    ] {
        let (code, body) = don.json(2, path).expect("answer");
        assert_eq!(code, 400, "{path}: {body}");
        assert_eq!(body["field"], field);
    }
    let (code, body) = don.json(2, "/v1/feeds/NOPE/latest").expect("answer");
    assert_eq!(code, 404, "{body}");
    let (code, _) = don.json(2, "/v1/rounds?feed=NOPE").expect("answer");
    assert_eq!(code, 404);
    let metrics = don.api(2, "/metrics").expect("metrics").1;
    for name in [
        "enclave_node_rounds_started_total",
        "enclave_node_rounds_finalized_total",
        "enclave_node_peers_connected 3",
        "enclave_node_oracle_health_score",
        "enclave_node_observation_latency_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
}

#[test]
fn a_flat_price_waits_for_the_heartbeat_and_a_move_beyond_alpha_reports_at_once() {
    const HEARTBEAT_MS: u64 = 20_000;
    let don = Don::start(5, &FEEDS[..1], &[], |s| {
        s["feeds"][0]["heartbeatMs"] = json!(HEARTBEAT_MS);
    });
    let finalized_at = |v: &Value| v["finalizedAtMs"].as_u64().expect("finalizedAtMs");
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    };
    let first = don.wait_latest(2, "BTC-USD", "the initial report", |_| true);
    // 0.1% is below alphaPPB (0.5%): no report for the first half of the heartbeat, measured on
    // the node's own clock so a slow test machine cannot make this pass or fail by accident.
    don.prices.set("BTCUSDT", "67190.57");
    let quiet_until = finalized_at(&first) + HEARTBEAT_MS / 2;
    while now_ms() < quiet_until {
        if let Some(v) = don.latest(2, "BTC-USD") {
            if epoch_round(&v) != epoch_round(&first) {
                assert!(
                    finalized_at(&v) >= quiet_until,
                    "reported without deviation or heartbeat: {v}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // 1% up: reported within a few rounds.
    don.prices.set("BTCUSDT", "67794.68");
    let moved = don.wait_latest(2, "BTC-USD", "a report of the move", |v| {
        v["answer"] == "67794.68"
    });
    assert!(epoch_round(&moved) > epoch_round(&first));
    // Flat again: the next report is the heartbeat, a heartbeat after the last report.
    let beat = don.wait_latest(2, "BTC-USD", "a heartbeat report", |v| {
        epoch_round(v) > epoch_round(&moved)
    });
    let gap = finalized_at(&beat) - finalized_at(&moved);
    assert!(
        gap >= HEARTBEAT_MS - 1_000,
        "the heartbeat report came {gap} ms after the last report"
    );
    assert_eq!(beat["answer"], "67794.68");
}

/// Moves the price a little more than alpha every call, so that every round reports.
fn nudge(don: &Don, step: &mut u32) {
    *step += 1;
    let price = 1000.0 * (1.0 + 0.01 * f64::from(*step % 50));
    don.prices.set("BTCUSDT", &format!("{price:.2}"));
}

fn wait_for_new_report(don: &Don, node: u32, after: (u64, u64), step: &mut u32) -> Value {
    let deadline = Instant::now() + T;
    loop {
        nudge(don, step);
        if let Some(v) = don.latest(node, "BTC-USD") {
            if epoch_round(&v) > after {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new report on node {node} after {after:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn reports_continue_through_a_crashed_oracle_and_a_killed_leader_and_a_restarted_oracle_never_double_signs(
) {
    let mut don = Don::start(5, BTC_USD, &[], |_| {});
    let signers = signer_addresses(&don);
    let mut step = 0;
    let first = don.wait_latest(2, "BTC-USD", "a first report", |_| true);

    // One oracle (f = 1) crashes: reports go on.
    let (_, feeds) = don.json(2, "/v1/feeds").expect("feeds");
    let leader = feeds["feeds"][0]["leader"].as_u64().expect("leader") as u32;
    let victim = don
        .oracles()
        .into_iter()
        .find(|&n| n != leader)
        .expect("a follower");
    don.crash(victim);
    let watcher = don
        .oracles()
        .into_iter()
        .find(|&n| n != victim && n != leader)
        .expect("another");
    let after_crash = wait_for_new_report(&don, watcher, epoch_round(&first), &mut step);
    check_report(&after_crash, &signers, 1);

    // Bring it back, then kill the leader: a new epoch with a new leader within ΔProgress.
    don.spawn(victim);
    let (_, feeds) = don.json(watcher, "/v1/feeds").expect("feeds");
    let leader = feeds["feeds"][0]["leader"].as_u64().expect("leader") as u32;
    let epoch_before = feeds["feeds"][0]["epoch"].as_u64().expect("epoch");
    don.crash(leader);
    let killed_at = Instant::now();
    let survivor = don
        .oracles()
        .into_iter()
        .find(|&n| n != leader && n != victim)
        .expect("survivor");
    wait_until(T, "a new epoch with another leader", || {
        don.json(survivor, "/v1/feeds").is_some_and(|(_, f)| {
            f["feeds"][0]["epoch"].as_u64() > Some(epoch_before)
                && f["feeds"][0]["leader"].as_u64() != Some(u64::from(leader))
        })
    });
    // ΔProgress (3 s) + ΔResend rounds of votes, with slack for a loaded machine.
    assert!(
        killed_at.elapsed() < Duration::from_secs(20),
        "leader change took {:?}",
        killed_at.elapsed()
    );
    let mark = latest_position(&don, survivor);
    let after_leader = wait_for_new_report(&don, survivor, mark, &mut step);
    check_report(&after_leader, &signers, 1);

    // The killed leader restarts, rejoins and reports again.
    don.spawn(leader);
    let mark = latest_position(&don, survivor);
    let rejoined = wait_for_new_report(&don, leader, mark, &mut step);
    check_report(&rejoined, &signers, 1);

    // Its database shows one signed report per (epoch, round), and whatever it signed for a
    // finalized round is exactly that round's report.
    let rows = signed_rounds(&don, leader);
    assert!(!rows.is_empty());
    let finalized = finalized_hashes(&don, leader);
    for ((epoch, round), hash) in &finalized {
        if let Some(signed) = rows.get(&(*epoch, *round)) {
            assert_eq!(
                signed, hash,
                "node {leader} signed another report for ({epoch}, {round})"
            );
        }
    }
    for node in don.oracles() {
        assert!(
            don.is_running(node),
            "node {node} died:\n{}",
            don.logs(node)
        );
    }
}

#[test]
fn seven_oracles_with_two_crashed_still_finalize_reports() {
    let don = Don::start(8, &FEEDS[..1], &[3, 6], |s| {
        s["consensus"]["f"] = json!(2);
        heartbeat_every(s, 10_000);
    });
    let signers = signer_addresses(&don);
    for node in [2, 4, 5, 7, 8] {
        let report = don.wait_latest(node, "BTC-USD", "a report with two oracles down", |_| true);
        check_report(&report, &signers, 2);
    }
}

fn signed_rounds(don: &Don, node: u32) -> BTreeMap<(u64, u64), String> {
    let rows = don.query(
        node,
        "SELECT epoch, round, encode(report_hash, 'hex') FROM ocr_signed_rounds",
    );
    let mut out = BTreeMap::new();
    for r in rows {
        let key = (r[0].parse().expect("epoch"), r[1].parse().expect("round"));
        assert!(
            out.insert(key, r[2].clone()).is_none(),
            "two signatures for {key:?}"
        );
    }
    out
}

fn finalized_hashes(don: &Don, node: u32) -> BTreeMap<(u64, u64), String> {
    don.query(
        node,
        "SELECT epoch, round, encode(report, 'hex') FROM ocr_finalized_reports",
    )
    .into_iter()
    .map(|r| {
        let report = hex::decode(&r[2]).expect("hex");
        let hash = hex::encode(alloy_primitives::keccak256(&report));
        (
            (r[0].parse().expect("epoch"), r[1].parse().expect("round")),
            hash,
        )
    })
    .collect()
}
