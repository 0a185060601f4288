//! Per-source limits with real sockets: a fractional request rate is respected (the reference's
//! limiter deadlocked below 1 rps), and a configured proxy carries the requests, with its
//! credentials, both as a forward proxy and through CONNECT tunnels.

use crate::support::{aggregator_config, serve};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use enclave::aggregator::pair::Pair;
use enclave::aggregator::registry;
use enclave::config::schema::sources::SourceId;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A Binance-format server recording when each request arrived.
async fn binance(arrivals: Arc<Mutex<Vec<Instant>>>) -> String {
    let handler = move |Query(q): Query<BTreeMap<String, String>>| {
        let arrivals = arrivals.clone();
        async move {
            if let Ok(mut a) = arrivals.lock() {
                a.push(Instant::now());
            }
            let symbol = q.get("symbol").cloned().unwrap_or_default();
            axum::Json(json!({"symbol": symbol, "price": "1.5"}))
        }
    };
    serve(Router::new().route("/api/v3/ticker/price", get(handler))).await
}

#[tokio::test]
async fn half_a_request_per_second_is_respected_not_deadlocked() {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let base = binance(arrivals.clone()).await;
    let config = aggregator_config(
        json!({"sources": {"binance": {"baseUrl": base, "rps": 0.5, "maxRetries": 0}}}),
    );
    let sources = registry::build(&config).expect("sources");
    let binance = sources.get(&SourceId::Binance).expect("binance").clone();
    let pairs = ["AAA", "BBB", "CCC"].map(|b| Pair::new(b, "USDT").expect("pair"));
    let results = futures_util::future::join_all(pairs.iter().map(|p| binance.fetch(p))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let arrivals = arrivals.lock().expect("lock").clone();
    assert_eq!(arrivals.len(), 3);
    for gap in arrivals.windows(2).map(|w| w[1] - w[0]) {
        // One request every 2 s; a little scheduling slack.
        assert!(
            gap >= Duration::from_millis(1900),
            "requests {gap:?} apart at 0.5 rps"
        );
    }
}

/// A proxy that forwards absolute-form requests and tunnels CONNECT, counting both, and keeping
/// the `Proxy-Authorization` header it saw.
async fn proxy(seen: Arc<Mutex<Vec<String>>>, connections: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let auth = text
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"))
                    .unwrap_or("")
                    .to_owned();
                let first = text.lines().next().unwrap_or("").to_owned();
                if let Ok(mut s) = seen.lock() {
                    s.push(format!("{first} | {auth}"));
                }
                let mut parts = first.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if method == "CONNECT" {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    return;
                }
                // Absolute form: http://host:port/path → origin form to the upstream.
                let Ok(url) = url::Url::parse(target) else {
                    return;
                };
                let host = format!(
                    "{}:{}",
                    url.host_str().unwrap_or(""),
                    url.port_or_known_default().unwrap_or(80)
                );
                let Ok(mut upstream) = tokio::net::TcpStream::connect(host).await else {
                    return;
                };
                let path = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_owned(),
                };
                let rewritten = text.replacen(target, &path, 1);
                if upstream.write_all(rewritten.as_bytes()).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_configured_proxy_carries_the_requests_with_its_credentials() {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let base = binance(arrivals.clone()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let proxy_url = proxy(seen.clone(), connections.clone()).await;
    let with_credentials = proxy_url.replace("http://", "http://pxuser:px-secret@");
    // The global proxy, used because the source says useProxy: true.
    let config = aggregator_config(json!({
        "proxy": with_credentials,
        "sources": {"binance": {"baseUrl": base, "useProxy": true, "maxRetries": 0, "rps": null}}
    }));
    let sources = registry::build(&config).expect("sources");
    let binance = sources.get(&SourceId::Binance).expect("binance").clone();
    let quote = binance
        .fetch(&Pair::new("BTC", "USDT").expect("pair"))
        .await
        .expect("quote through the proxy");
    assert_eq!(quote.price.to_string(), "1.5");
    assert!(
        connections.load(Ordering::SeqCst) >= 1,
        "the proxy saw no connection"
    );
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.iter()
            .any(|s| s.contains("/api/v3/ticker/price") && s.contains("Basic")),
        "{seen:?}"
    );
    // Without useProxy, the same source goes direct.
    let before = connections.load(Ordering::SeqCst);
    let direct = aggregator_config(json!({
        "proxy": with_credentials,
        "sources": {"binance": {"baseUrl": base, "maxRetries": 0, "rps": null}}
    }));
    let sources = registry::build(&direct).expect("sources");
    sources[&SourceId::Binance]
        .fetch(&Pair::new("BTC", "USDT").expect("pair"))
        .await
        .expect("direct quote");
    assert_eq!(connections.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn a_source_with_its_own_proxy_tunnels_https_through_connect() {
    // An HTTPS target makes the client CONNECT through the proxy; the TLS handshake then fails
    // against a plain-HTTP upstream, which is fine: the CONNECT is what is checked here.
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let base = binance(arrivals).await.replace("http://", "https://");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let proxy_url = proxy(seen.clone(), connections).await;
    let config = aggregator_config(json!({
        "sources": {"binance": {"baseUrl": base, "useProxy": proxy_url, "maxRetries": 0, "rps": null, "timeoutMs": 2000}}
    }));
    let sources = registry::build(&config).expect("sources");
    let result = sources[&SourceId::Binance]
        .fetch(&Pair::new("BTC", "USDT").expect("pair"))
        .await;
    assert!(result.is_err());
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.iter().any(|s| s.starts_with("CONNECT 127.0.0.1:")),
        "{seen:?}"
    );
}
