//! Global market data from a CoinGecko-format `/api/v3/global` server, in the reference's shape.

use crate::support::{get_text, poll, serve, spawn_service};

use std::time::Duration;

use axum::routing::get;
use serde_json::{json, Value};

#[tokio::test]
async fn global_market_data_is_fetched_and_served_in_the_reference_shape() {
    let app = axum::Router::new().route(
        "/api/v3/global",
        get(|| async {
            axum::Json(json!({"data": {"active_cryptocurrencies": 17000, "markets": 1300,
                "total_market_cap": {"usd": 2.3e12}, "total_volume": {"usd": 9.1e10},
                "market_cap_percentage": {"btc": 57.1}, "market_cap_change_percentage_24h_usd": -0.53,
                "updated_at": 1729766400}}))
        }),
    );
    let coingecko = format!("{}/api/v3", serve(app).await);
    let port = spawn_service(json!({
        "sources": {"coingecko": {"baseUrl": coingecko}},
        "marketData": {"coingeckoGlobal": {"enabled": true, "refreshIntervalMs": 60000}}
    }));
    let url = format!("http://127.0.0.1:{port}/market-data/global");
    let body = poll(
        "no global market data",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let r = reqwest::get(&url).await.ok()?;
            if r.status() != 200 {
                return None;
            }
            Some(serde_json::from_str::<Value>(&r.text().await.expect("text")).expect("json"))
        },
    )
    .await;
    assert_eq!(body["activeCryptocurrencies"], 17000);
    assert_eq!(body["markets"], 1300);
    assert_eq!(body["marketCapPercentage"]["btc"], 57.1);
    assert_eq!(body["updatedAt"], "2024-10-24T10:40:00.000Z");
    let status: Value =
        serde_json::from_str(&get_text(&format!("{url}/status")).await).expect("json");
    assert_eq!(status["enabled"], true);
    assert_eq!(status["available"], true);
    assert!(status["dataAgeMs"].is_u64());
}
