//! Per-feed status on each oracle: `/health` says which feeds report and, for one that does
//! not, why; the node logs it once when a feed stops reporting and once when it recovers.

use crate::common;
use crate::common::assert_contains;

use common::don::{Don, Feed, T};
use common::harness::wait_until;
use serde_json::Value;

const FEEDS: &[Feed<'static>] = &[("BTC-USD", "BTCUSDT", "BTC", "USDT", "67123.45")];

fn feed_status(don: &Don, node: u32) -> Option<Value> {
    let (_, health) = don.json(node, "/health")?;
    Some(health["feeds"]["BTC-USD"].clone())
}

#[test]
fn a_feed_whose_sources_all_fail_is_reported_stale_with_the_reason_and_recovers() {
    let don = Don::start(5, FEEDS, &[], |_| {});
    don.wait_latest(2, "BTC-USD", "a first report", |_| true);
    let oracles = don.oracles();
    wait_until(T, "every oracle says BTC-USD is ok", || {
        oracles
            .iter()
            .all(|&n| feed_status(&don, n).is_some_and(|f| f["status"] == "ok"))
    });
    let (code, health) = don.json(2, "/health").expect("health");
    assert_eq!(code, 200, "{health}");
    assert!(
        health["feeds"]["BTC-USD"]["lastReportMsAgo"].is_u64(),
        "{health}"
    );
    assert!(
        health["feeds"]["BTC-USD"].get("reason").is_none(),
        "{health}"
    );

    // A slow start may already have logged a stop and a recovery: count from here.
    let before: Vec<usize> = oracles.iter().map(|&n| don.logs(n).len()).collect();
    don.prices.set_down(true);
    let mut stale = Value::Null;
    wait_until(T, "node 2 says BTC-USD is stale", || {
        stale = feed_status(&don, 2).unwrap_or(Value::Null);
        stale["status"] == "stale"
    });
    let reason = stale["reason"].as_str().expect("reason").to_owned();
    assert!(reason.starts_with("no report for "), "{reason}");
    assert_contains(&reason, "price unavailable from every source (binance: ");
    // Readiness is about the node; the feed's trouble is outside it.
    let (code, health) = don.json(2, "/health").expect("health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["ready"], true, "{health}");

    don.prices.set_down(false);
    wait_until(T, "every oracle says BTC-USD is ok again", || {
        oracles
            .iter()
            .all(|&n| feed_status(&don, n).is_some_and(|f| f["status"] == "ok"))
    });
    for (node, from) in oracles.into_iter().zip(before) {
        let logs = don.logs(node)[from..].to_owned();
        let stopped = logs.matches("feed stopped reporting").count();
        let recovered = logs.matches("feed reporting again").count();
        assert_eq!((stopped, recovered), (1, 1), "node {node}:\n{logs}");
        let line = logs
            .lines()
            .find(|l| l.contains("feed stopped reporting"))
            .expect("line");
        assert!(
            line.contains("BTC-USD") && line.contains("no report for"),
            "{line}"
        );
    }
}
