//! Streams feed the cache: once a pair is tracked the aggregator subscribes to the source's
//! WebSocket, streamed prices keep the quote fresh, and REST is not asked again while the stream
//! talks.

use crate::common::assert_contains;
use crate::support::{get_text, poll, serve, spawn_service};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Binance REST (`/api/v3/ticker/price`), counting requests.
async fn rest(hits: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/api/v3/ticker/price",
        get(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"symbol": "BTCUSDT", "price": "100.00000000"}))
            }
        }),
    );
    serve(app).await
}

/// Binance's raw `/ws` stream: after a SUBSCRIBE, a `24hrMiniTicker` every 100 ms with a rising
/// price. Records what the client sent.
async fn websocket(received: Arc<Mutex<Vec<String>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let mut subscribed = false;
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                let mut price = 200u32;
                loop {
                    tokio::select! {
                        message = ws.next() => match message {
                            Some(Ok(Message::Text(text))) => {
                                let text = text.to_string();
                                if let Ok(mut r) = received.lock() { r.push(text.clone()); }
                                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                                if v["method"] == "SUBSCRIBE" {
                                    subscribed = true;
                                    let _ = ws.send(Message::text(json!({"result": null, "id": v["id"]}).to_string())).await;
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => return,
                        },
                        _ = tick.tick(), if subscribed => {
                            price += 1;
                            let update = json!({"e": "24hrMiniTicker", "E": 1729766400000u64, "s": "BTCUSDT",
                                "c": format!("{price}.50"), "o": "1", "h": "1", "l": "1", "v": "1", "q": "1"});
                            if ws.send(Message::text(update.to_string())).await.is_err() { return; }
                        }
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn streamed_prices_keep_a_tracked_pair_fresh_without_rest_requests() {
    let hits = Arc::new(AtomicUsize::new(0));
    let rest_url = rest(hits.clone()).await;
    let received = Arc::new(Mutex::new(Vec::new()));
    let ws_url = websocket(received.clone()).await;
    let port = spawn_service(json!({
        "sources": {"binance": {"baseUrl": rest_url, "ttl": 1000, "rps": null, "maxRetries": 0,
            "stream": {"wsUrl": ws_url, "rateLimit": 10}}}
    }));
    let url = format!("http://127.0.0.1:{port}/quote/binance/BTC/USDT");
    let get_price = || async {
        let r = reqwest::get(&url).await.ok()?;
        let v: Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
        v["price"].as_str().map(str::to_owned)
    };
    // The first request is a REST fetch (the pair is cold) and starts tracking the pair.
    let first = poll(
        "aggregator never answered",
        Duration::from_secs(20),
        Duration::from_millis(50),
        get_price,
    )
    .await;
    assert_eq!(first, "100");
    // Then the stream takes over: for three TTLs, prices move and REST is not asked again.
    let mut streamed = None;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        let p = get_price().await.unwrap_or_default();
        if p.ends_with(".5") {
            streamed = Some(p);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(streamed.is_some(), "no streamed price reached the cache");
    let metrics = get_text(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert_contains(
        &metrics,
        "enclave_aggregator_stream_connected{source=\"binance\"} 1",
    );
    assert_contains(
        &metrics,
        "enclave_aggregator_stream_subscriptions{source=\"binance\"} 1",
    );
    assert_contains(
        &metrics,
        "# TYPE enclave_aggregator_stream_messages_total counter",
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "REST was asked again while the stream talked"
    );
    let sent = received.lock().expect("lock").clone();
    assert!(
        sent.iter()
            .any(|m| m.contains("SUBSCRIBE") && m.contains("btcusdt@miniTicker")),
        "{sent:?}"
    );
}
