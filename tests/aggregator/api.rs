//! The aggregator's API in front of local servers that speak Binance's and OKX's documented
//! formats: single flight, TTL caching under many pollers, cross-source aggregation, the
//! reference's route shapes, and input validation that registers nothing.

use crate::support::{aggregator_config, serve};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use enclave::aggregator::api::{router, Api};
use enclave::aggregator::cache::Cache;
use enclave::aggregator::registry;
use serde_json::{json, Value};

/// A Binance-format server: `/api/v3/ticker/price?symbol=S` → `{"symbol":S,"price":P}`, unknown
/// symbols → 400 `{"code":-1121,"msg":"Invalid symbol."}`; counts requests; answers after `delay`.
async fn binance(
    prices: &'static [(&'static str, &'static str)],
    delay: Duration,
    hits: Arc<AtomicUsize>,
) -> String {
    let handler = move |Query(q): Query<BTreeMap<String, String>>| {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            let symbol = q.get("symbol").cloned().unwrap_or_default();
            match prices.iter().find(|(s, _)| *s == symbol) {
                Some((s, p)) => (
                    axum::http::StatusCode::OK,
                    axum::Json(json!({"symbol": s, "price": p})),
                ),
                None => (
                    axum::http::StatusCode::BAD_REQUEST,
                    axum::Json(json!({"code": -1121, "msg": "Invalid symbol."})),
                ),
            }
        }
    };
    serve(Router::new().route("/api/v3/ticker/price", get(handler))).await
}

/// An OKX-format server for `/api/v5/market/ticker?instId=BTC-USDT`.
async fn okx(price: &'static str) -> String {
    let handler = move |Query(q): Query<BTreeMap<String, String>>| async move {
        let inst = q.get("instId").cloned().unwrap_or_default();
        axum::Json(
            json!({"code": "0", "msg": "", "data": [{"instType": "SPOT", "instId": inst, "last": price, "ts": "1729766400000"}]}),
        )
    };
    serve(Router::new().route("/api/v5/market/ticker", get(handler))).await
}

/// The aggregator's API for the `priceAggregatorConfig` object `json`, served in this process:
/// its base URL.
async fn start(json: Value) -> String {
    let config = Arc::new(aggregator_config(json));
    let sources = Arc::new(registry::build(&config).expect("sources"));
    let api = Api {
        cache: Cache::new(
            config.max_tracked_pairs,
            config.refetch.failed_pairs_retry.retry_delay,
        ),
        sources,
        config: config.clone(),
        feeds: Arc::new(BTreeMap::new()),
        registry: prometheus::Registry::new(),
        metrics: None,
        market_data: enclave::aggregator::market_data::MarketData::disabled(),
    };
    serve(router(api)).await
}

async fn get_json(url: String) -> (u16, Value) {
    let response = reqwest::get(&url).await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn fifty_concurrent_requests_for_a_cold_pair_make_one_upstream_request() {
    let hits = Arc::new(AtomicUsize::new(0));
    let upstream = binance(
        &[("BTCUSDT", "67123.45000000")],
        Duration::from_millis(300),
        hits.clone(),
    )
    .await;
    let base = start(
        json!({"sources": {"binance": {"baseUrl": upstream, "ttl": 10000, "maxRetries": 0}}}),
    )
    .await;
    let requests = (0..50).map(|_| get_json(format!("{base}/quote/binance/BTC/USDT")));
    let answers = futures_util::future::join_all(requests).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["price"], "67123.45");
        assert_eq!(body["pair"], json!(["BTC", "USDT"]));
        assert_eq!(body["source"], "binance");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "single flight");
}

#[tokio::test]
async fn many_pollers_cost_the_same_upstream_requests_as_one() {
    let mut counts = Vec::new();
    for nodes in [1usize, 8] {
        let hits = Arc::new(AtomicUsize::new(0));
        let upstream = binance(&[("BTCUSDT", "67123.45")], Duration::ZERO, hits.clone()).await;
        let base = start(
            json!({"sources": {"binance": {"baseUrl": upstream, "ttl": 1000, "maxRetries": 0}}}),
        )
        .await;
        let started = tokio::time::Instant::now();
        let pollers = (0..nodes).map(|_| {
            let url = format!("{base}/quotes/batch?pairs=BTC-USDT");
            async move {
                while started.elapsed() < Duration::from_millis(4500) {
                    let (status, body) = get_json(url.clone()).await;
                    assert_eq!(status, 200);
                    assert_eq!(body["quotes"]["BTC-USDT"]["status"], "ok", "{body}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        futures_util::future::join_all(pollers).await;
        counts.push((nodes, hits.load(Ordering::SeqCst)));
    }
    println!("upstream requests in 4.5 s with a 1 s TTL, by number of polling nodes: {counts:?}");
    for (nodes, hits) in &counts {
        assert!(
            (4..=6).contains(hits),
            "{nodes} nodes made {hits} upstream requests"
        );
    }
}

#[tokio::test]
async fn the_batch_price_is_the_median_of_the_sources_with_each_one_shown() {
    let hits = Arc::new(AtomicUsize::new(0));
    let b = binance(&[("BTCUSDT", "100.00")], Duration::ZERO, hits).await;
    let o = okx("102.00").await;
    let base = start(json!({"sources": {
        "binance": {"baseUrl": b, "maxRetries": 0},
        "okx": {"baseUrl": o, "maxRetries": 0}
    }}))
    .await;
    let (status, body) = get_json(format!("{base}/quotes/batch?pairs=BTC-USDT")).await;
    assert_eq!(status, 200);
    let quote = &body["quotes"]["BTC-USDT"];
    assert_eq!(quote["status"], "ok", "{body}");
    assert_eq!(quote["price"], "101");
    let sources = quote["sources"].as_array().expect("sources");
    assert_eq!(sources.len(), 2);
    assert!(sources
        .iter()
        .all(|s| s["used"] == true && s["ageMs"].is_u64()));
}

#[tokio::test]
async fn a_pair_no_source_knows_is_unavailable_with_reasons_never_guessed() {
    let hits = Arc::new(AtomicUsize::new(0));
    let b = binance(&[("BTCUSDT", "100")], Duration::ZERO, hits).await;
    let base = start(json!({"sources": {"binance": {"baseUrl": b, "maxRetries": 0}}})).await;
    let (status, body) = get_json(format!("{base}/quotes/batch?pairs=NOPE-USDT")).await;
    assert_eq!(status, 200);
    let quote = &body["quotes"]["NOPE-USDT"];
    assert_eq!(quote["status"], "unavailable");
    assert!(quote.get("price").is_none());
    assert_eq!(quote["sources"][0]["reason"], "not_found");
    let (status, body) = get_json(format!("{base}/quote/binance/NOPE/USDT")).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "No price found for NOPE/USDT from binance");
}

#[tokio::test]
async fn bad_requests_get_a_400_naming_the_field_and_register_nothing() {
    let hits = Arc::new(AtomicUsize::new(0));
    let b = binance(&[("BTCUSDT", "100")], Duration::ZERO, hits.clone()).await;
    let base =
        start(json!({"maxPairsPerRequest": 3, "sources": {"binance": {"baseUrl": b}}})).await;
    let cases = [
        ("/quotes/batch", "pairs"),
        ("/quotes/batch?pairs=", "pairs"),
        ("/quotes/batch?pairs=BTC-USDT,ETH-USDT,A-B,C-D", "pairs"),
        ("/quotes/batch?pairs=BTCUSDT", "pairs"),
        ("/quotes/batch?pairs=BTC-USDT,%3Cscript%3E-USD", "pairs"),
        ("/quotes/batch?pairs=BTC-USDT&sources=nasdaq", "sources"),
        ("/quotes/batch?pairs=BTC-USDT&sources=okx", "sources"),
        ("/quote/binance/BT%20C/USDT", "pair"),
    ];
    for (path, field) in cases {
        let (status, body) = get_json(format!("{base}{path}")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
        assert!(body["message"].is_string());
    }
    let (status, body) = get_json(format!("{base}/quote/nasdaq/BTC/USDT")).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Adapter not found for source: nasdaq");
    let (status, body) = get_json(format!("{base}/quote/okx/BTC/USDT")).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Adapter okx is disabled");
    let (_, body) = get_json(format!("{base}/quote/pairs/all")).await;
    assert_eq!(
        body["pairs"],
        json!([]),
        "a bad request registered something"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let (status, body) = get_json(format!("{base}/no/such/route")).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Cannot GET /no/such/route");
}

#[tokio::test]
async fn the_reference_routes_keep_their_shapes() {
    let hits = Arc::new(AtomicUsize::new(0));
    let b = binance(&[("BTCUSDT", "67123.45000000")], Duration::ZERO, hits).await;
    let base = start(json!({"sources": {"binance": {"baseUrl": b}}})).await;
    let (status, body) = get_json(format!("{base}/")).await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], "Price Proxy Service is running");
    let (status, _) = get_json(format!("{base}/quote/binance/BTC/USDT")).await;
    assert_eq!(status, 200);
    let (_, all) = get_json(format!("{base}/quote/pairs/all")).await;
    let row = &all["pairs"][0];
    assert_eq!(row["pair"], json!(["BTC", "USDT"]));
    assert_eq!(row["source"], "binance");
    assert_eq!(row["cachedPrice"], "67123.45");
    let (_, one) = get_json(format!("{base}/quote/pairs/binance")).await;
    assert_eq!(one["source"], "binance");
    assert_eq!(one["pairs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn global_market_data_is_404_until_loaded_and_its_status_says_why() {
    let hits = Arc::new(AtomicUsize::new(0));
    let b = binance(&[("BTCUSDT", "100")], Duration::ZERO, hits).await;
    let base = start(json!({"sources": {"binance": {"baseUrl": b}}})).await;
    let (status, body) = get_json(format!("{base}/market-data/global")).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["message"],
        "Global market data not available yet. Please try again in a few moments."
    );
    let (status, body) = get_json(format!("{base}/market-data/global/status")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"enabled": false, "available": false, "dataAgeMs": null, "lastUpdateAt": null})
    );
}

#[tokio::test]
async fn more_pairs_than_may_be_tracked_get_a_429_not_a_5xx() {
    let hits = Arc::new(AtomicUsize::new(0));
    let b = binance(&[("AUSDT", "1"), ("BUSDT", "1")], Duration::ZERO, hits).await;
    let base = start(json!({"maxTrackedPairs": 1, "sources": {"binance": {"baseUrl": b}}})).await;
    let (status, _) = get_json(format!("{base}/quote/binance/A/USDT")).await;
    assert_eq!(status, 200);
    let (status, body) = get_json(format!("{base}/quote/binance/B/USDT")).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 1 pairs")),
        "{body}"
    );
    let (_, body) = get_json(format!("{base}/quotes/batch?pairs=B-USDT")).await;
    assert_eq!(
        body["quotes"]["B-USDT"]["sources"][0]["reason"],
        "tracked_pair_limit"
    );
}
