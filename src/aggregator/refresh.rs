//! Keeping tracked pairs fresh without a client waiting: pre-expiry refetch
//! (`staleTriggerBeforeExpiry` before the TTL ends, at most every `minTimeBetweenRefreshes`,
//! collected every `batchInterval`), the failed-pairs retry queue, and the cleanup of pairs nobody
//! asked for within `inactiveTimeoutMs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cache::{Cache, Entry, Key};
use super::metrics::AggregatorMetrics;
use super::pair::Pair;
use super::sources::{Source, SourceError};
use crate::config::schema::aggregator::AggregatorConfig;
use crate::config::schema::sources::SourceId;

/// The TTL of one (source, pair): the first matching `pairsTtl` entry (exact, case-sensitive
/// pair; optional source), else the source's `ttl`.
pub fn ttl_for(config: &AggregatorConfig, source: SourceId, pair: &Pair) -> Duration {
    config
        .pairs_ttl
        .iter()
        .find(|t| {
            t.base == pair.base && t.quote == pair.quote && t.source.is_none_or(|s| s == source)
        })
        .map(|t| t.ttl)
        .or_else(|| config.sources.get(&source).map(|s| s.ttl))
        .unwrap_or(Duration::from_secs(5))
}

/// What the refresher decides for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Keep,
    Refetch,
    Drop,
}

fn plan(config: &AggregatorConfig, source: SourceId, entry: &Entry, now: Instant) -> Plan {
    let refetch = &config.refetch;
    let Some(source_config) = config.sources.get(&source) else {
        return Plan::Keep;
    };
    if entry.in_flight() || !refetch.enabled || !source_config.refetch {
        return Plan::Keep;
    }
    let since_attempt = entry
        .last_attempt
        .map(|at| now.saturating_duration_since(at))
        .unwrap_or(Duration::MAX);
    let inactive =
        now.saturating_duration_since(entry.last_requested) >= config.pair_cleanup.inactive_timeout;
    if let Some((error, _)) = &entry.error {
        let retry = &refetch.failed_pairs_retry;
        return match error {
            // The source does not know the pair: asking again will not change that.
            SourceError::PairNotFound { .. } => Plan::Keep,
            _ if !retry.enabled => Plan::Keep,
            _ if entry.failures >= retry.max_attempts => Plan::Drop,
            _ if since_attempt >= retry.retry_delay && !inactive => Plan::Refetch,
            _ => Plan::Keep,
        };
    }
    let Some((_, received)) = &entry.quote else {
        return Plan::Keep;
    };
    let trigger = source_config
        .stale_trigger_before_expiry
        .unwrap_or(refetch.stale_trigger_before_expiry);
    let due_at = entry.ttl.saturating_sub(trigger);
    let age = now.saturating_duration_since(*received);
    if !due_at.is_zero()
        && age >= due_at
        && since_attempt >= refetch.min_time_between_refreshes
        && !inactive
    {
        Plan::Refetch
    } else {
        Plan::Keep
    }
}

/// Runs until `stop` is cancelled; the refetches it starts are the cache's tasks.
pub async fn run(
    cache: Cache,
    sources: Arc<BTreeMap<SourceId, Arc<dyn Source>>>,
    config: Arc<AggregatorConfig>,
    metrics: Option<AggregatorMetrics>,
    stop: CancellationToken,
) {
    let mut refetch_tick = tokio::time::interval(config.refetch.batch_interval);
    let mut cleanup_tick = tokio::time::interval(config.pair_cleanup.cleanup_interval);
    loop {
        tokio::select! {
            _ = refetch_tick.tick() => {
                refetch_due(&cache, &sources, &config);
                if let Some(m) = &metrics {
                    observe_tracked(&cache, m);
                }
            }
            _ = cleanup_tick.tick() => {
                if config.pair_cleanup.enabled {
                    let removed = cache.remove_inactive(config.pair_cleanup.inactive_timeout);
                    if !removed.is_empty() {
                        tracing::info!(removed = removed.len(), "removed pairs nobody asked for");
                    }
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// Tracked pairs per source and each tracked quote's age; series of pairs no longer tracked go.
fn observe_tracked(cache: &Cache, metrics: &AggregatorMetrics) {
    let now = Instant::now();
    let mut per_source: BTreeMap<SourceId, i64> = BTreeMap::new();
    let mut stale: BTreeMap<SourceId, i64> = BTreeMap::new();
    metrics.quote_age.reset();
    for ((source, pair), entry) in cache.snapshot() {
        *per_source.entry(source).or_default() += 1;
        if entry.quote.is_some() && entry.fresh(now).is_none() {
            *stale.entry(source).or_default() += 1;
        }
        if let Some((_, at)) = &entry.quote {
            metrics
                .quote_age
                .with_label_values(&[source.name(), &pair.to_string()])
                .set(now.saturating_duration_since(*at).as_secs_f64());
        }
    }
    metrics.tracked_pairs.reset();
    metrics.stale_quotes.reset();
    for (source, count) in per_source {
        metrics
            .tracked_pairs
            .with_label_values(&[source.name()])
            .set(count);
        let stale_count = stale.get(&source).copied().unwrap_or(0);
        metrics
            .stale_quotes
            .with_label_values(&[source.name()])
            .set(stale_count);
    }
}

fn refetch_due(
    cache: &Cache,
    sources: &BTreeMap<SourceId, Arc<dyn Source>>,
    config: &AggregatorConfig,
) {
    let now = Instant::now();
    let mut due: BTreeMap<SourceId, Vec<Pair>> = BTreeMap::new();
    for ((source, pair), entry) in cache.snapshot() {
        match plan(config, source, &entry, now) {
            Plan::Refetch => due.entry(source).or_default().push(pair),
            Plan::Drop => {
                tracing::warn!(source = %source, pair = %pair, attempts = entry.failures, "giving up on a pair after repeated failures");
                cache.remove(&(source, pair) as &Key);
            }
            Plan::Keep => {}
        }
    }
    for (id, pairs) in due {
        if let Some(source) = sources.get(&id) {
            cache.spawn(cache.clone().refresh_owned(source.clone(), pairs));
        }
    }
}
