//! What the aggregator's tests share: local servers, a checked configuration, the service run
//! in the test's own process, and waiting for an answer.

use crate::common;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use common::harness::Enclave;
use common::price_server::PriceServer;
use enclave::config::reader::{Fields, Report};
use enclave::config::schema::aggregator::{read_aggregator, AggregatorConfig};
use enclave::service::state::Status;
use serde_json::{json, Value};

/// Serves `router` on a free loopback port until the test ends; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// The aggregator's configuration read from a `priceAggregatorConfig` object, which must have
/// no problem: the tests are about what the aggregator does with it, not about validation.
pub fn aggregator_config(json: Value) -> AggregatorConfig {
    let mut report = Report::default();
    let fields = Fields::of(&mut report, "solution.priceAggregatorConfig", &json).expect("object");
    let config = read_aggregator(&mut report, Some(fields));
    assert!(report.is_ok(), "{:?}", report.problems);
    config
}

/// Runs the whole aggregator service in this process: the example configuration with no feeds,
/// no telemetry and `aggregator` as its `priceAggregatorConfig` on a free port. Returns the port.
pub fn spawn_service(mut aggregator: Value) -> u16 {
    let port = common::harness::free_port();
    aggregator["port"] = json!(port);
    let mut document = common::read_json(&common::example_path());
    let s = &mut document["solution"];
    s["feeds"] = json!([]);
    s["telemetry"]["targets"] = json!([]);
    s["priceAggregatorConfig"] = aggregator;
    let config = enclave::config::validate_document(&document)
        .expect("valid")
        .config;
    tokio::spawn(async move {
        if let Err(e) = enclave::aggregator::service::run(&config, None).await {
            panic!("aggregator failed: {e}");
        }
    });
    port
}

/// Calls `attempt` every `interval` until it gives a value; fails naming `what` after `timeout`.
pub async fn poll<T, F: Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(interval).await;
    }
}

/// The repository's `price-aggregator` as `enclave init` runs it, in front of a Binance-format
/// server.
pub struct Supervised {
    pub enclave: Enclave,
    pub prices: PriceServer,
    /// The aggregator's port.
    pub port: u16,
}

impl Supervised {
    /// Starts it with BTCUSDT quoted at `price`, with the services `also` beside it, and waits
    /// until all of them are up.
    pub fn start(price: &str, also: &[&str], timeout: Duration) -> Self {
        let prices = PriceServer::start();
        prices.set("BTCUSDT", price);
        let upstream = prices.base.clone();
        let mut enclave = Enclave::new();
        enclave.use_repo_services();
        let port = common::harness::free_port();
        enclave.configure(|s| {
            s["priceAggregatorConfig"] = json!({
                "port": port,
                "sources": {"binance": {"baseUrl": upstream, "rps": null}},
            });
            // The example's feeds use sources these tests do not run.
            s["feeds"] = json!([]);
        });
        let services: Vec<&str> = std::iter::once("price-aggregator")
            .chain(also.iter().copied())
            .collect();
        let only: Vec<&str> = services.iter().flat_map(|s| ["--only", *s]).collect();
        enclave.start(&only);
        for service in services {
            enclave.wait_status(service, Status::Up, timeout);
        }
        Self {
            enclave,
            prices,
            port,
        }
    }
}

/// The body of a GET of `url`.
pub async fn get_text(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("request")
        .text()
        .await
        .expect("text")
}
