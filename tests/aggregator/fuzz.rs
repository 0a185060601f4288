//! API fuzzing: arbitrary queries and paths against the aggregator never get a 5xx, never
//! crash it, and never register more pairs than allowed.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use enclave::aggregator::api::{router, Api};
use enclave::aggregator::cache::Cache;
use enclave::aggregator::registry;
use enclave::config::reader::{Fields, Report};
use enclave::config::schema::aggregator::read_aggregator;
use proptest::prelude::*;
use serde_json::json;

const MAX_TRACKED: usize = 20;

struct Harness {
    runtime: tokio::runtime::Runtime,
    base: String,
    cache: Cache,
}

/// An aggregator whose only source is a local Binance-format server that knows no symbol.
fn harness() -> Harness {
    // Every request is made from block_on on this runtime, so the servers' tasks run meanwhile.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (base, cache) = runtime.block_on(async {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let upstream_url = format!("http://{}", upstream.local_addr().expect("addr"));
        let invalid = || async {
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"code": -1121, "msg": "Invalid symbol."})),
            )
        };
        tokio::spawn(async move {
            let _ = axum::serve(upstream, Router::new().route("/api/v3/ticker/price", get(invalid))).await;
        });
        let json = json!({
            "maxTrackedPairs": MAX_TRACKED,
            "maxPairsPerRequest": 10,
            "quotes": {"requestTimeoutMs": 2000},
            "sources": {"binance": {"baseUrl": upstream_url, "maxRetries": 0, "rps": null, "timeoutMs": 1000}}
        });
        let mut report = Report::default();
        let fields = Fields::of(&mut report, "p", &json).expect("object");
        let config = Arc::new(read_aggregator(&mut report, Some(fields)));
        let cache = Cache::new(config.max_tracked_pairs, config.refetch.failed_pairs_retry.retry_delay);
        let api = Api {
            cache: cache.clone(),
            sources: Arc::new(registry::build(&config).expect("sources")),
            config,
            feeds: Arc::new(BTreeMap::new()),
            registry: prometheus::Registry::new(),
            metrics: None,
            market_data: enclave::aggregator::market_data::MarketData::disabled(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router(api)).await;
        });
        (base, cache)
    });
    Harness {
        runtime,
        base,
        cache,
    }
}

fn status_of(h: &Harness, path_and_query: &str) -> u16 {
    let url = format!("{}{}", h.base, path_and_query);
    h.runtime.block_on(async {
        match reqwest::get(&url).await {
            Ok(r) => r.status().as_u16(),
            // A URL reqwest refuses to send never reached the server: nothing to check.
            Err(e) if e.is_builder() => 400,
            Err(e) => panic!("the aggregator did not answer {url}: {e}"),
        }
    })
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{1,8}",
        "[A-Za-z0-9._-]{0,70}",
        "\\PC{0,20}",
        Just("BTC".to_owned()),
        Just("binance".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        // A failure prints its minimal input; no regression file beside the sources.
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn no_query_or_path_gets_a_5xx_or_grows_the_cache_unbounded(
        pairs in proptest::collection::vec(segment(), 0..14),
        separator in prop_oneof![Just("-"), Just("/"), Just(""), Just("~")],
        sources in proptest::option::of(segment()),
        route in 0u8..3,
        a in segment(), b in segment(), c in segment(),
    ) {
        let h = HARNESS.with(|h| h.clone());
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let path = match route {
            0 => {
                let list: Vec<String> = pairs.chunks(2).map(|p| p.join(separator)).collect();
                let mut q = format!("/quotes/batch?pairs={}", encode(&list.join(",")));
                if let Some(s) = &sources {
                    q.push_str(&format!("&sources={}", encode(s)));
                }
                q
            }
            1 => format!("/quote/{}/{}/{}", encode(&a), encode(&b), encode(&c)),
            _ => format!("/quote/pairs/{}", encode(&a)),
        };
        let status = status_of(&h, &path);
        prop_assert!(status < 500, "{path} → {status}");
        prop_assert!(h.cache.len() <= MAX_TRACKED);
    }
}

thread_local! {
    static HARNESS: Arc<Harness> = Arc::new(harness());
}
