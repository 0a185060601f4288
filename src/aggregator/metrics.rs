//! The aggregator's metrics: API requests, cache hits and misses, upstream requests by source and
//! outcome, refetches, tracked pairs and the age of each tracked quote. Per-pair series exist
//! only for tracked pairs and vanish with them.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::pair::Pair;
use super::sources::{BatchResult, Quote, Source, SourceError};
use crate::config::schema::sources::SourceId;
use crate::telemetry::register;

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone)]
pub struct AggregatorMetrics {
    pub http_in_flight: prometheus::IntGauge,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub cache_hits: IntCounterVec,
    pub cache_misses: IntCounterVec,
    pub source_requests: IntCounterVec,
    pub source_duration: HistogramVec,
    pub refetches: IntCounterVec,
    pub refetch_duration: HistogramVec,
    pub tracked_pairs: IntGaugeVec,
    pub stale_quotes: IntGaugeVec,
    pub quote_age: GaugeVec,
}

impl AggregatorMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
        };
        let m = Self {
            http_in_flight: register(registry, prometheus::IntGauge::new(
                "enclave_aggregator_http_requests_in_flight",
                "API requests being served.",
            )?)?,
            http_requests: register(registry, counter(
                "enclave_aggregator_http_requests_total",
                "API requests by route, method and status.",
                &["route", "method", "status"],
            )?)?,
            http_duration: register(registry, histogram(
                "enclave_aggregator_http_request_duration_seconds",
                "API request latency by route.",
                &["route", "method"],
            )?)?,
            cache_hits: register(registry, counter(
                "enclave_aggregator_cache_hits_total",
                "Quotes answered from the cache, by source.",
                &["source"],
            )?)?,
            cache_misses: register(registry, counter(
                "enclave_aggregator_cache_misses_total",
                "Quotes not fresh in the cache, by source.",
                &["source"],
            )?)?,
            source_requests: register(registry, counter(
                "enclave_aggregator_source_requests_total",
                "Upstream fetches by source, kind (single or batch) and outcome (ok or the error kind).",
                &["source", "kind", "outcome"],
            )?)?,
            source_duration: register(registry, histogram(
                "enclave_aggregator_source_request_duration_seconds",
                "Upstream fetch latency by source and kind.",
                &["source", "kind"],
            )?)?,
            refetches: register(registry, counter(
                "enclave_aggregator_refetches_total",
                "Pre-expiry and retry refetches by source and outcome.",
                &["source", "outcome"],
            )?)?,
            refetch_duration: register(registry, histogram(
                "enclave_aggregator_refetch_duration_seconds",
                "Duration of one refetch round of a source (single fetches or batches).",
                &["source"],
            )?)?,
            stale_quotes: register(registry, IntGaugeVec::new(
                Opts::new(
                    "enclave_aggregator_stale_quotes",
                    "Tracked pairs whose cached quote is past its TTL.",
                ),
                &["source"],
            )?)?,
            tracked_pairs: register(registry, IntGaugeVec::new(
                Opts::new("enclave_aggregator_tracked_pairs", "Pairs tracked per source."),
                &["source"],
            )?)?,
            quote_age: register(registry, GaugeVec::new(
                Opts::new(
                    "enclave_aggregator_quote_age_seconds",
                    "Age of the cached quote of each tracked pair.",
                ),
                &["source", "pair"],
            )?)?,
        };
        Ok(m)
    }

    fn observe(&self, source: SourceId, kind: &str, started: Instant, outcome: &str) {
        let name = source.name();
        self.source_requests
            .with_label_values(&[name, kind, outcome])
            .inc();
        self.source_duration
            .with_label_values(&[name, kind])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// A source whose every fetch is counted and timed.
pub struct Measured {
    inner: Arc<dyn Source>,
    metrics: AggregatorMetrics,
}

impl Measured {
    pub fn wrap(inner: Arc<dyn Source>, metrics: AggregatorMetrics) -> Arc<dyn Source> {
        Arc::new(Self { inner, metrics })
    }
}

fn outcome<T>(r: &Result<T, SourceError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

/// A batch whose every pair failed is the upstream request failing (adapters report a failed
/// request per pair, so the batch itself is `Ok`): count it under that error, not as `ok`.
fn batch_outcome(r: &Result<BatchResult, SourceError>) -> &'static str {
    match r {
        Ok(map) if !map.is_empty() && map.values().all(Result::is_err) => map
            .values()
            .find_map(|v| v.as_ref().err())
            .map_or("ok", SourceError::kind),
        other => outcome(other),
    }
}

#[async_trait]
impl Source for Measured {
    fn id(&self) -> SourceId {
        self.inner.id()
    }

    fn symbol(&self, pair: &Pair) -> String {
        self.inner.symbol(pair)
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let started = Instant::now();
        let result = self.inner.fetch(pair).await;
        self.metrics
            .observe(self.id(), "single", started, outcome(&result));
        result
    }

    fn max_batch(&self) -> Option<usize> {
        self.inner.max_batch()
    }

    async fn fetch_batch(&self, pairs: &[Pair]) -> Result<BatchResult, SourceError> {
        let started = Instant::now();
        let result = self.inner.fetch_batch(pairs).await;
        self.metrics
            .observe(self.id(), "batch", started, batch_outcome(&result));
        result
    }

    async fn instruments(&self) -> Result<Vec<Pair>, SourceError> {
        self.inner.instruments().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> SourceError {
        SourceError::Upstream {
            from: SourceId::Okx,
            reason: "HTTP 503".into(),
        }
    }

    #[test]
    fn a_batch_where_every_pair_failed_counts_as_the_failure_and_a_partial_one_as_ok() {
        let btc = Pair::new("BTC", "USDT").unwrap();
        let eth = Pair::new("ETH", "USDT").unwrap();
        let all_failed: BatchResult = [
            (btc.clone(), Err(upstream())),
            (eth.clone(), Err(upstream())),
        ]
        .into();
        assert_eq!(batch_outcome(&Ok(all_failed)), "upstream_error");
        let not_found = SourceError::PairNotFound {
            from: SourceId::Okx,
            pair: "ETH/USDT".into(),
        };
        let quote = Quote {
            price: "1".parse().unwrap(),
            symbol: "BTC-USDT".into(),
            received_at: std::time::SystemTime::now(),
        };
        let partial: BatchResult = [(btc, Ok(quote)), (eth, Err(not_found))].into();
        assert_eq!(batch_outcome(&Ok(partial)), "ok");
        assert_eq!(batch_outcome(&Ok(BatchResult::new())), "ok");
        assert_eq!(batch_outcome(&Err(upstream())), "upstream_error");
    }
}
