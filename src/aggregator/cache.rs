//! One cache entry per (source, pair): the last quote, when it came, the last error, and who
//! asked for it last. Concurrent misses for the same key make one upstream request (single
//! flight); a fetch that a client stops waiting for still completes and fills the cache. The
//! cache owns the tasks that fetch and refresh for it: [`Cache::shutdown`] cancels and joins them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::metrics::AggregatorMetrics;
use super::pair::Pair;
use super::sources::{BatchResult, Quote, Source, SourceError};
use crate::config::schema::sources::SourceId;

pub type Key = (SourceId, Pair);
/// See [`Cache::with_watcher`].
pub type Watcher = Arc<dyn Fn(&Key, bool) + Send + Sync>;
type Outcome = Result<Quote, SourceError>;

#[derive(Debug, Clone)]
pub struct Entry {
    pub quote: Option<(Quote, Instant)>,
    pub error: Option<(SourceError, Instant)>,
    pub ttl: Duration,
    pub last_requested: Instant,
    /// Failed refetches in a row (for the failed-pairs retry queue).
    pub failures: u32,
    pub last_attempt: Option<Instant>,
    inflight: Option<watch::Receiver<Option<Outcome>>>,
}

impl Entry {
    fn new(ttl: Duration, now: Instant) -> Self {
        Self {
            quote: None,
            error: None,
            ttl,
            last_requested: now,
            failures: 0,
            last_attempt: None,
            inflight: None,
        }
    }

    /// The quote while it is younger than the TTL.
    pub fn fresh(&self, now: Instant) -> Option<&Quote> {
        self.quote
            .as_ref()
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(q, _)| q)
    }

    pub fn in_flight(&self) -> bool {
        self.inflight.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("at most {0} pairs can be tracked")]
    Full(usize),
    #[error("no answer within {0:?}")]
    Waiting(Duration),
}

/// The shared cache. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    entries: Arc<Mutex<HashMap<Key, Entry>>>,
    metrics: Option<AggregatorMetrics>,
    /// Told when a key starts or stops being tracked (stream subscriptions follow it).
    watcher: Option<Watcher>,
    max_entries: usize,
    /// A failed fetch is answered from the cache this long before the source is asked again,
    /// so a failing pair cannot turn client requests into an upstream flood.
    error_hold: Duration,
    /// Fetches and refreshes running for the cache, shared by every clone.
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Cache {
    pub fn new(max_entries: usize, error_hold: Duration) -> Self {
        Self {
            entries: Arc::new(Mutex::new(HashMap::new())),
            metrics: None,
            watcher: None,
            max_entries,
            error_hold,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Runs `work` as a task of the cache's, ended by [`shutdown`](Self::shutdown).
    pub fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            cancel.run_until_cancelled(work).await;
        });
    }

    /// Cancels every fetch and refresh in progress (their waiters get "abandoned") and waits
    /// until all have ended; later ones end at once.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// The cache's tasks, for tests that check none outlives [`shutdown`](Self::shutdown).
    pub fn tracker(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Counts hits, misses and refetches in `metrics`.
    pub fn with_metrics(mut self, metrics: AggregatorMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Calls `watcher` with every key that starts (`true`) or stops (`false`) being tracked.
    pub fn with_watcher(mut self, watcher: Watcher) -> Self {
        self.watcher = Some(watcher);
        self
    }

    fn tell(&self, key: &Key, tracked: bool) {
        if let Some(w) = &self.watcher {
            w(key, tracked);
        }
    }

    fn count(&self, counter: impl FnOnce(&AggregatorMetrics)) {
        if let Some(m) = &self.metrics {
            counter(m);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // Entries are replaced field by field under the lock; a panic elsewhere cannot leave
        // one half-written in a way that matters more than one stale answer.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The quote of `key`: from the cache while fresh, else from the source, once for all
    /// concurrent callers. `wait` bounds how long this caller waits (the fetch goes on).
    pub async fn get(
        &self,
        source: Arc<dyn Source>,
        pair: &Pair,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Quote, CacheError> {
        let key = (source.id(), pair.clone());
        let (mut receiver, added) = {
            let now = Instant::now();
            let mut entries = self.lock();
            let added = !entries.contains_key(&key);
            if added && entries.len() >= self.max_entries {
                return Err(CacheError::Full(self.max_entries));
            }
            let entry = entries
                .entry(key.clone())
                .or_insert_with(|| Entry::new(ttl, now));
            entry.last_requested = now;
            entry.ttl = ttl;
            if let Some(quote) = entry.fresh(now) {
                let quote = quote.clone();
                drop(entries);
                self.count(|m| m.cache_hits.with_label_values(&[key.0.name()]).inc());
                return Ok(quote);
            }
            self.count(|m| m.cache_misses.with_label_values(&[key.0.name()]).inc());
            if let Some((error, at)) = &entry.error {
                if entry.inflight.is_none() && now.saturating_duration_since(*at) < self.error_hold
                {
                    return Err(CacheError::Source(error.clone()));
                }
            }
            let receiver = match &entry.inflight {
                Some(rx) => rx.clone(),
                None => self.start_fetch(entry, key.clone(), source, now),
            };
            (receiver, added)
        };
        if added {
            self.tell(&key, true);
        }
        let result = tokio::time::timeout(wait, async {
            loop {
                if let Some(outcome) = receiver.borrow_and_update().clone() {
                    return outcome;
                }
                if receiver.changed().await.is_err() {
                    return Err(SourceError::Unreachable {
                        from: key.0,
                        reason: "the fetch was abandoned".into(),
                    });
                }
            }
        })
        .await;
        match result {
            Ok(outcome) => outcome.map_err(CacheError::Source),
            Err(_) => Err(CacheError::Waiting(wait)),
        }
    }

    /// Marks the entry in flight and fetches in a task of its own, so that the fetch completes
    /// even when every caller stops waiting.
    fn start_fetch(
        &self,
        entry: &mut Entry,
        key: Key,
        source: Arc<dyn Source>,
        now: Instant,
    ) -> watch::Receiver<Option<Outcome>> {
        let (tx, rx) = watch::channel(None);
        entry.inflight = Some(rx.clone());
        entry.last_attempt = Some(now);
        let cache = self.clone();
        self.spawn(async move {
            let outcome = source.fetch(&key.1).await;
            cache.record(&key, &outcome);
            let _ = tx.send(Some(outcome));
        });
        rx
    }

    /// Refetches `pairs` of one source through the single-flight mechanism: keys already in
    /// flight are skipped, the rest go out in as few requests as the source allows (a batch
    /// where it has one), and every waiting caller gets the result.
    pub async fn refresh(&self, source: Arc<dyn Source>, pairs: Vec<Pair>) {
        let id = source.id();
        let senders: Vec<(Pair, watch::Sender<Option<Outcome>>)> = {
            let now = Instant::now();
            let mut entries = self.lock();
            pairs
                .into_iter()
                .filter_map(|pair| {
                    let entry = entries.get_mut(&(id, pair.clone()))?;
                    if entry.inflight.is_some() {
                        return None;
                    }
                    let (tx, rx) = watch::channel(None);
                    entry.inflight = Some(rx);
                    entry.last_attempt = Some(now);
                    Some((pair, tx))
                })
                .collect()
        };
        if senders.is_empty() {
            return;
        }
        let wanted: Vec<Pair> = senders.iter().map(|(p, _)| p.clone()).collect();
        let started = std::time::Instant::now();
        let results: BatchResult = match source.max_batch() {
            Some(max) if wanted.len() > 1 => {
                let mut all = BatchResult::new();
                for chunk in wanted.chunks(max.max(1)) {
                    match source.fetch_batch(chunk).await {
                        Ok(found) => all.extend(found),
                        Err(e) => all.extend(chunk.iter().map(|p| (p.clone(), Err(e.clone())))),
                    }
                }
                all
            }
            _ => {
                let fetches = wanted.iter().map(|p| {
                    let source = source.clone();
                    async move { (p.clone(), source.fetch(p).await) }
                });
                futures_util::future::join_all(fetches)
                    .await
                    .into_iter()
                    .collect()
            }
        };
        self.count(|m| {
            m.refetch_duration
                .with_label_values(&[id.name()])
                .observe(started.elapsed().as_secs_f64())
        });
        let mut results = results;
        for (pair, tx) in senders {
            let outcome = results.remove(&pair).unwrap_or_else(|| {
                Err(SourceError::PairNotFound {
                    from: id,
                    pair: pair.to_string(),
                })
            });
            self.record(&(id, pair), &outcome);
            let result = match &outcome {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            self.count(|m| m.refetches.with_label_values(&[id.name(), result]).inc());
            let _ = tx.send(Some(outcome));
        }
    }

    /// [`Cache::refresh`] for a spawned task (which needs an owned future).
    pub async fn refresh_owned(self, source: Arc<dyn Source>, pairs: Vec<Pair>) {
        self.refresh(source, pairs).await;
    }

    /// Stores a fetch outcome (from a single fetch, a batch or a stream update).
    pub fn record(&self, key: &Key, outcome: &Outcome) {
        let now = Instant::now();
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(key) else {
            return;
        };
        entry.inflight = None;
        entry.last_attempt = Some(now);
        match outcome {
            Ok(quote) => {
                entry.quote = Some((quote.clone(), now));
                entry.error = None;
                entry.failures = 0;
            }
            Err(e) => {
                entry.error = Some((e.clone(), now));
                entry.failures = entry.failures.saturating_add(1);
            }
        }
    }

    /// A copy of one entry.
    pub fn entry(&self, key: &Key) -> Option<Entry> {
        self.lock().get(key).cloned()
    }

    /// Copies of all entries (for the refresher, cleanup and the pair listings).
    pub fn snapshot(&self) -> Vec<(Key, Entry)> {
        self.lock()
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Forgets entries nobody asked for within `inactive`; returns the removed keys.
    pub fn remove_inactive(&self, inactive: Duration) -> Vec<Key> {
        let now = Instant::now();
        let mut removed = Vec::new();
        self.lock().retain(|key, entry| {
            let keep =
                entry.in_flight() || now.saturating_duration_since(entry.last_requested) < inactive;
            if !keep {
                removed.push(key.clone());
            }
            keep
        });
        for key in &removed {
            self.tell(key, false);
        }
        removed
    }

    /// Forgets one key (a pair the source does not know).
    pub fn remove(&self, key: &Key) {
        if self.lock().remove(key).is_some() {
            self.tell(key, false);
        }
    }

    /// A price from a stream: refreshes a tracked entry without touching fetches in flight.
    pub fn update_from_stream(&self, key: &Key, quote: Quote) {
        if let Some(entry) = self.lock().get_mut(key) {
            entry.quote = Some((quote, Instant::now()));
            entry.error = None;
            entry.failures = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    /// A source whose requests never end.
    struct Hanging;

    #[async_trait]
    impl Source for Hanging {
        fn id(&self) -> SourceId {
            SourceId::Binance
        }

        fn symbol(&self, pair: &Pair) -> String {
            pair.to_string()
        }

        async fn fetch(&self, _pair: &Pair) -> Result<Quote, SourceError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn shutdown_ends_fetches_in_flight_and_their_waiters_hear_of_it() {
        let cache = Cache::new(10, Duration::from_secs(1));
        let pair = Pair::parse("BTC/USDT").expect("pair");
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get(
                        Arc::new(Hanging),
                        &pair,
                        Duration::from_secs(5),
                        Duration::from_secs(60),
                    )
                    .await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.tracker().is_empty() {
            assert!(Instant::now() < deadline, "the fetch never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::timeout(Duration::from_secs(5), cache.shutdown())
            .await
            .expect("shutdown joins the hanging fetch");
        assert!(cache.tracker().is_empty());
        let answer = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter is told")
            .expect("the waiter task ran");
        assert!(
            matches!(
                answer,
                Err(CacheError::Source(SourceError::Unreachable { .. }))
            ),
            "{answer:?}"
        );
    }
}
