//! The DON under load: 1 bootstrap + 4 oracles, 300 feeds reporting every round (alphaPPB 0),
//! ΔRound 1 s, each oracle with its own PostgreSQL database and the real price aggregator.
//! Prints rounds per second, round latency (OBSERVE-REQ → finalized report) and each node's CPU
//! and RSS. Run with `scripts/bench-consensus.sh` (release build).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::don::Don;
use serde_json::json;

const FEEDS: usize = 300;
const WARM_UP: Duration = Duration::from_secs(15);
const MEASURE: Duration = Duration::from_secs(30);

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let names: Vec<(String, String, String)> = (0..FEEDS)
        .map(|i| {
            (
                format!("F{i:03}-USD"),
                format!("F{i:03}USDT"),
                format!("F{i:03}"),
            )
        })
        .collect();
    let feeds: Vec<common::don::Feed<'_>> = names
        .iter()
        .map(|(name, symbol, base)| {
            (
                name.as_str(),
                symbol.as_str(),
                base.as_str(),
                "USDT",
                "100.00",
            )
        })
        .collect();
    let don = Don::start(5, &feeds, &[], |s| {
        s["consensus"] = json!({"deltaProgressMs": 5000, "deltaResendMs": 2000, "deltaRoundMs": 1000,
                                "deltaGraceMs": 200, "deltaStageMs": 1000, "rMax": 6});
        for feed in s["feeds"].as_array_mut().expect("feeds") {
            feed["alphaPPB"] = json!(0);
        }
        s["priceAggregatorConfig"]["maxPairsPerRequest"] = json!(300);
    });
    let started = Instant::now();
    for node in 2..=5 {
        don.wait_latest(node, "F000-USD", "a first report", |_| true);
    }
    println!(
        "consensus bench: 4 oracles, {FEEDS} feeds, ΔRound 1 s; first reports after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(WARM_UP);
    let pids: Vec<(u32, u32)> = (1..=5).filter_map(|n| Some((n, don.pid(n)?))).collect();
    let cpu0: Vec<f64> = pids.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let finalized = |node| don.metric(node, "enclave_node_rounds_finalized_total{");
    let started_rounds = |node| don.metric(node, "enclave_node_rounds_started_total{");
    let (f0, s0) = (finalized(2), started_rounds(2));
    let t0 = Instant::now();
    std::thread::sleep(MEASURE);
    let elapsed = t0.elapsed().as_secs_f64();
    let (f1, s1) = (finalized(2), started_rounds(2));
    println!(
        "rounds started:   {:.1}/s (node 2's view)",
        (s1 - s0) / elapsed
    );
    println!("rounds finalized: {:.1}/s", (f1 - f0) / elapsed);
    let mut durations: Vec<u64> = Vec::new();
    for feed in names.iter().take(FEEDS) {
        if let Some((200, v)) = don.json(2, &format!("/v1/rounds?feed={}&limit=50", feed.0)) {
            for r in v["rounds"].as_array().into_iter().flatten() {
                if r["outcome"] == "finalized" {
                    durations.extend(r["durationMs"].as_u64());
                }
            }
        }
    }
    durations.sort_unstable();
    println!(
        "round latency (OBSERVE-REQ → finalized, node 2, {} rounds): p50 {} ms, p99 {} ms",
        durations.len(),
        percentile(&durations, 0.5),
        percentile(&durations, 0.99)
    );
    for ((node, pid), c0) in pids.iter().zip(cpu0) {
        let cpu = (cpu_seconds(*pid) - c0) / elapsed * 100.0;
        let role = if *node == 1 { "bootstrap" } else { "oracle" };
        println!(
            "node {node} ({role}): CPU {cpu:.1}% of a core, RSS {:.1} MB",
            rss_mb(*pid)
        );
    }
}
