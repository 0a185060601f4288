//! `enclave aggregator` as the supervisor runs it (the repository's `price-aggregator`
//! definition): ready once it serves, answering the batch API from a local Binance-format server.

use crate::common;
use crate::support::Supervised;

use std::time::Duration;

use common::harness::{wait_until, Enclave};

const T: Duration = Duration::from_secs(60);

#[test]
fn the_supervised_aggregator_becomes_ready_and_serves_the_batch_api() {
    let Supervised {
        enclave: mut e,
        prices: _prices,
        port,
    } = Supervised::start("67123.45000000", &[], T);
    let mut answer = None;
    wait_until(T, "a priced batch", || {
        answer = Enclave::http_get(port, "/quotes/batch?pairs=BTC-USDT");
        answer
            .as_ref()
            .is_some_and(|(code, body)| *code == 200 && body.contains("\"status\":\"ok\""))
    });
    let (_, body) = answer.expect("answer");
    assert!(body.contains("\"price\":\"67123.45\""), "{body}");
    let (code, body) = Enclave::http_get(port, "/quotes/batch?pairs=x").expect("answer");
    assert_eq!(code, 400, "{body}");
    // Measured by route template, upstream outcome and tracked pairs (the refresher updates the
    // gauges every batchInterval).
    wait_until(T, "aggregator metrics", || {
        Enclave::http_get(port, "/metrics").is_some_and(|(_, m)| {
            m.contains("enclave_aggregator_http_requests_total{method=\"GET\",route=\"/quotes/batch\",status=\"200\"}")
                && m.contains("enclave_aggregator_http_requests_total{method=\"GET\",route=\"/quotes/batch\",status=\"400\"}")
                && m.contains("enclave_aggregator_source_requests_total{kind=\"single\",outcome=\"ok\",source=\"binance\"}")
                && m.contains("enclave_aggregator_cache_misses_total{source=\"binance\"}")
                && m.contains("enclave_aggregator_tracked_pairs{source=\"binance\"} 1")
                && m.contains("enclave_aggregator_quote_age_seconds{pair=\"BTC/USDT\",source=\"binance\"}")
        })
    });
    e.stop_cleanly(T);
}
