//! The whole enclave as `enclave init` runs it from the repository's service definitions: keys,
//! PostgreSQL, aggregator and the `node@` template's five nodes, reporting and stopping cleanly.

use crate::common;

use common::don::{btc_usd_feed, configure_nodes, free_ranges, heartbeat_every, T};
use common::harness::{free_port, wait_until, Enclave};
use common::price_server::PriceServer;
use enclave::service::state::Status;
use serde_json::{json, Value};

#[test]
fn enclave_init_runs_five_nodes_that_report_and_stop_cleanly() {
    let prices = PriceServer::start();
    prices.set("BTCUSDT", "67123.45");
    let mut e = Enclave::new();
    e.use_repo_services();
    let [api_base, p2p_base] = free_ranges(5);
    let aggregator = free_port();
    let base_url = prices.base.clone();
    e.configure(|s| {
        configure_nodes(s, free_port(), api_base, p2p_base);
        s["priceAggregatorConfig"] = json!({
            "port": aggregator,
            "sources": {"binance": {"baseUrl": base_url, "rps": null}},
        });
        s["feeds"] = btc_usd_feed();
        // Node 2's first report is awaited: a heartbeat soon after, should it miss the first.
        heartbeat_every(s, 10_000);
    });
    e.start(&[]);
    for node in 1..=5 {
        e.wait_status(&format!("node-{node}"), Status::Up, T);
    }
    let mut report = Value::Null;
    wait_until(T, "a finalized report on node 2", || {
        Enclave::http_get(api_base + 2, "/v1/feeds/BTC-USD/latest").is_some_and(|(code, body)| {
            report = serde_json::from_str(&body).unwrap_or(Value::Null);
            code == 200
        })
    });
    assert_eq!(report["answer"], "67123.45", "{report}");
    let (code, _) = Enclave::http_get(api_base + 1, "/health").expect("bootstrap answers");
    assert_eq!(code, 200);
    e.stop_cleanly(T);
    let logs = e.logs();
    assert!(
        logs.contains("[node-3]"),
        "node logs are prefixed on stdout"
    );
}
