//! Global market data from a CoinGecko-format `/api/v3/global` server, in the reference's shape.

use crate::common;

use std::time::Duration;

use axum::routing::get;
use serde_json::{json, Value};

#[tokio::test]
async fn global_market_data_is_fetched_and_served_in_the_reference_shape() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let coingecko = format!("http://{}/api/v3", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/api/v3/global",
        get(|| async {
            axum::Json(json!({"data": {"active_cryptocurrencies": 17000, "markets": 1300,
                "total_market_cap": {"usd": 2.3e12}, "total_volume": {"usd": 9.1e10},
                "market_cap_percentage": {"btc": 57.1}, "market_cap_change_percentage_24h_usd": -0.53,
                "updated_at": 1729766400}}))
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let port = common::harness::free_port();
    let mut document = common::read_json(&common::example_path());
    let s = &mut document["solution"];
    s["feeds"] = json!([]);
    s["telemetry"]["targets"] = json!([]);
    s["priceAggregatorConfig"] = json!({
        "port": port,
        "sources": {"coingecko": {"baseUrl": coingecko}},
        "marketData": {"coingeckoGlobal": {"enabled": true, "refreshIntervalMs": 60000}}
    });
    let config = enclave::config::validate_document(&document)
        .expect("valid")
        .config;
    tokio::spawn(async move {
        let _ = enclave::aggregator::service::run(&config, None).await;
    });
    let url = format!("http://127.0.0.1:{port}/market-data/global");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status() == 200 {
                let text = r.text().await.expect("text");
                break serde_json::from_str::<Value>(&text).expect("json");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no global market data"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["activeCryptocurrencies"], 17000);
    assert_eq!(body["markets"], 1300);
    assert_eq!(body["marketCapPercentage"]["btc"], 57.1);
    assert_eq!(body["updatedAt"], "2024-10-24T10:40:00.000Z");
    let status: Value = serde_json::from_str(
        &reqwest::get(format!("{url}/status"))
            .await
            .expect("status")
            .text()
            .await
            .expect("text"),
    )
    .expect("json");
    assert_eq!(status["enabled"], true);
    assert_eq!(status["available"], true);
    assert!(status["dataAgeMs"].is_u64());
}
