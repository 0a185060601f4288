//! Test support for adapters: a local HTTP server speaking a source's format, and source
//! configurations pointing at it.

use std::net::SocketAddr;

use axum::Router;

use crate::config::reader::{Fields, Report};
use crate::config::schema::sources::{read_sources, SourceConfig, SourceId};

/// Serves `router` on a free loopback port; returns its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a test server");
    let addr: SocketAddr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// The configuration of `id` from the JSON object a configuration file would hold under
/// `priceAggregatorConfig.sources.<key>` (e.g. `{"baseUrl": url, "maxRetries": 0}`).
pub fn config(id: SourceId, json: serde_json::Value) -> SourceConfig {
    let mut sources = serde_json::Map::new();
    sources.insert(id.config_key().to_owned(), json);
    let value = serde_json::Value::Object(sources);
    let mut report = Report::default();
    let fields = Fields::of(&mut report, "sources", &value).expect("object");
    let mut all = read_sources(&mut report, fields, false);
    assert!(
        report.is_ok(),
        "test configuration invalid: {:?}",
        report.problems
    );
    all.remove(&id).expect("configured")
}
