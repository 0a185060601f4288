//! `enclave aggregator` (longrun `price-aggregator`): builds the enabled sources, preloads
//! `pairsFilePath`, keeps tracked pairs fresh, serves the API and pushes its metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::api::{router, Api};
use super::cache::Cache;
use super::market_data::MarketData;
use super::metrics::{AggregatorMetrics, Measured};
use super::pair::Pair;
use super::refresh::{self, ttl_for};
use super::registry;
use super::sources::Source;
use super::streaming::StreamSet;
use crate::config::schema::sources::SourceId;
use crate::config::Config;
use crate::logging::Untrusted;
use crate::net::http_server::{self, Limits};
use crate::telemetry::{self, Pusher};

const PUSH_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Source(#[from] super::sources::SourceError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("pairsFilePath {path}: {message}")]
    PairsFile { path: String, message: String },
    #[error(transparent)]
    Push(#[from] telemetry::push::PushError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] prometheus::Error),
}

pub async fn run(config: &Config, notify_fd: Option<i32>) -> Result<(), ServiceError> {
    let aggregator = Arc::new(config.aggregator.clone());
    let registry = Registry::new();
    let metrics = AggregatorMetrics::register(&registry)?;
    let sources: BTreeMap<SourceId, Arc<dyn Source>> = registry::build(&aggregator)?
        .into_iter()
        .map(|(id, source)| (id, Measured::wrap(source, metrics.clone())))
        .collect();
    let sources = Arc::new(sources);
    let streams = StreamSet::new();
    let cache = Cache::new(
        aggregator.max_tracked_pairs,
        aggregator.refetch.failed_pairs_retry.retry_delay,
    )
    .with_metrics(metrics.clone())
    .with_watcher(streams.watcher());
    streams.start(&aggregator, &sources, &cache);
    registry.register(Box::new(streams.clone()))?;
    // The refresher and the market-data loop are this function's tasks; fetches are the cache's.
    // Both are cancelled (also when this returns early with an error) and joined below.
    let (cancel, tasks) = (CancellationToken::new(), TaskTracker::new());
    let _cancel_on_return = cancel.clone().drop_guard();
    let market_data = MarketData::start(&aggregator, &tasks, cancel.clone())?;
    let feeds = config
        .feeds
        .iter()
        .map(|f| (f.name.clone(), f.clone()))
        .collect();
    let api = Api {
        cache: cache.clone(),
        sources: sources.clone(),
        config: aggregator.clone(),
        feeds: Arc::new(feeds),
        registry: registry.clone(),
        metrics: Some(metrics.clone()),
        market_data,
    };
    let pusher = Pusher::start(
        &registry,
        &telemetry::targets_for(config, true),
        &telemetry::identity(config, "price-aggregator"),
    )?;
    let addr = SocketAddr::new(aggregator.host, aggregator.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Listen { addr, source })?;
    tracing::info!(%addr, sources = sources.len(), "price aggregator listening");
    if let Some(path) = &aggregator.pairs_file_path {
        preload(&cache, &sources, &aggregator, path)?;
    }
    crate::service::readiness::notify_ready(notify_fd);
    tasks.spawn(refresh::run(
        cache.clone(),
        sources,
        aggregator,
        Some(metrics),
        cancel.clone(),
    ));
    tasks.close();
    let shutdown = crate::service::readiness::termination()?;
    http_server::serve(listener, router(api), Limits::API, &registry, shutdown)
        .await
        .map_err(std::io::Error::from)?;
    cancel.cancel();
    tasks.wait().await;
    cache.shutdown().await;
    streams.shutdown().await;
    pusher.shutdown(PUSH_SHUTDOWN_TIMEOUT).await;
    Ok(())
}

/// Registers the pairs of `pairsFilePath` (`{"binance": ["BTC/USDT", …], …}`) and fetches them
/// in the background; unknown or disabled sources are skipped with a warning.
fn preload(
    cache: &Cache,
    sources: &BTreeMap<SourceId, Arc<dyn Source>>,
    config: &super::super::config::schema::aggregator::AggregatorConfig,
    path: &str,
) -> Result<(), ServiceError> {
    let err = |message: String| ServiceError::PairsFile {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let file: BTreeMap<String, Vec<String>> = serde_json::from_str(&text)
        .map_err(|e| err(format!("not a JSON object of pair lists: {e}")))?;
    let mut count = 0;
    for (name, pairs) in file {
        let Some(source) = SourceId::parse(&name).and_then(|id| sources.get(&id)) else {
            tracing::warn!(source = %Untrusted::new(&name), "pairs file names an unknown or disabled source; skipped");
            continue;
        };
        for text in pairs {
            let Ok(pair) = Pair::parse(&text) else {
                tracing::warn!(source = %Untrusted::new(&name), pair = %Untrusted::new(&text), "pairs file holds an invalid pair; skipped");
                continue;
            };
            let (cache, source) = (cache.clone(), source.clone());
            let ttl = ttl_for(config, source.id(), &pair);
            let wait = config.quote_request_timeout;
            cache.clone().spawn(async move {
                let _ = cache.get(source, &pair, ttl, wait).await;
            });
            count += 1;
        }
    }
    tracing::info!(pairs = count, "preloaded pairs");
    Ok(())
}
