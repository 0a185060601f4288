//! Observations from the price aggregator. Every feed's instance asks for its price when a round
//! starts; requests that arrive within a short window are merged into one `/quotes/batch`
//! request (split only at the aggregator's `maxPairsPerRequest`), so N feeds cost one request
//! per tick, not N.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

/// How long the first request of a batch waits for others to join it.
pub const BATCH_WINDOW: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObserveError {
    #[error("the price aggregator did not answer: {0}")]
    Unreachable(String),
    #[error("the price aggregator answered HTTP {0}")]
    Status(u16),
    #[error("the price aggregator's answer is malformed: {0}")]
    Malformed(String),
    #[error("no price for {feed}: {detail}")]
    Unavailable {
        feed: String,
        status: String,
        /// The aggregator's reason and each source's, bounded.
        detail: String,
    },
    #[error("the observer has stopped")]
    Stopped,
}

type Reply = oneshot::Sender<Result<Decimal, ObserveError>>;

/// Outcome counters and the time of the last answer, for metrics and `/health`.
#[derive(Debug, Default)]
pub struct ObserverStatus {
    pub requests: u64,
    pub failures: u64,
    pub last_success: Option<Instant>,
    pub last_error: Option<String>,
}

#[derive(Clone)]
pub struct Observer {
    tx: mpsc::Sender<(String, Reply)>,
    status: Arc<Mutex<ObserverStatus>>,
}

#[derive(Clone)]
struct Fetcher {
    http: reqwest::Client,
    url: url::Url,
    max_pairs: usize,
    status: Arc<Mutex<ObserverStatus>>,
    latency: prometheus::Histogram,
}

#[derive(Deserialize)]
struct BatchAnswer {
    quotes: HashMap<String, Quote>,
}

#[derive(Deserialize)]
struct Quote {
    status: String,
    price: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    sources: Vec<SourceVerdict>,
}

#[derive(Deserialize)]
struct SourceVerdict {
    source: String,
    #[serde(default)]
    used: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// Source reasons beyond this are summarised as "and N more".
const MAX_REASONS: usize = 5;
/// Characters of one reason kept (they come from the aggregator, not from upstream text).
const MAX_REASON_CHARS: usize = 80;

impl Observer {
    /// `base` is the aggregator's root URL (`http://127.0.0.1:3000`).
    /// `latency` receives the duration of every batch request.
    pub fn start(
        base: url::Url,
        max_pairs: usize,
        timeout: Duration,
        latency: prometheus::Histogram,
    ) -> Result<Self, ObserveError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| ObserveError::Unreachable(e.to_string()))?;
        let url = base
            .join("/quotes/batch")
            .map_err(|e| ObserveError::Malformed(e.to_string()))?;
        let status = Arc::new(Mutex::new(ObserverStatus::default()));
        let (tx, rx) = mpsc::channel(4096);
        let fetcher = Fetcher {
            http,
            url,
            max_pairs: max_pairs.max(1),
            status: status.clone(),
            latency,
        };
        tokio::spawn(batch_loop(rx, fetcher));
        Ok(Self { tx, status })
    }

    pub async fn observe(&self, feed: &str) -> Result<Decimal, ObserveError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((feed.to_owned(), reply))
            .await
            .map_err(|_| ObserveError::Stopped)?;
        answer.await.map_err(|_| ObserveError::Stopped)?
    }

    pub fn status(&self) -> std::sync::MutexGuard<'_, ObserverStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn batch_loop(mut rx: mpsc::Receiver<(String, Reply)>, fetcher: Fetcher) {
    while let Some(first) = rx.recv().await {
        let mut waiting: HashMap<String, Vec<Reply>> = HashMap::new();
        waiting.entry(first.0).or_default().push(first.1);
        let until = tokio::time::Instant::now() + BATCH_WINDOW;
        while let Ok(Some((feed, reply))) = tokio::time::timeout_at(until, rx.recv()).await {
            waiting.entry(feed).or_default().push(reply);
        }
        // The next batch may start while this one is in flight.
        tokio::spawn(fetcher.clone().answer(waiting));
    }
}

impl Fetcher {
    async fn answer(self, mut waiting: HashMap<String, Vec<Reply>>) {
        let mut feeds: Vec<String> = waiting.keys().cloned().collect();
        feeds.sort();
        for chunk in feeds.chunks(self.max_pairs) {
            let answers = self.fetch(chunk).await;
            for feed in chunk {
                let result = match &answers {
                    Ok(quotes) => price_of(quotes, feed),
                    Err(e) => Err(e.clone()),
                };
                for reply in waiting.remove(feed).unwrap_or_default() {
                    let _ = reply.send(result.clone());
                }
            }
        }
    }

    async fn fetch(&self, feeds: &[String]) -> Result<HashMap<String, Quote>, ObserveError> {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("pairs", &feeds.join(","));
        let started = Instant::now();
        let result = self.request(url).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.requests += 1;
        match &result {
            Ok(_) => {
                status.last_success = Some(Instant::now());
                status.last_error = None;
            }
            Err(e) => {
                status.failures += 1;
                status.last_error = Some(e.to_string());
            }
        }
        result
    }

    async fn request(&self, url: url::Url) -> Result<HashMap<String, Quote>, ObserveError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ObserveError::Unreachable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(ObserveError::Status(response.status().as_u16()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ObserveError::Unreachable(e.without_url().to_string()))?;
        let body: BatchAnswer =
            serde_json::from_slice(&bytes).map_err(|e| ObserveError::Malformed(e.to_string()))?;
        Ok(body.quotes)
    }
}

fn price_of(quotes: &HashMap<String, Quote>, feed: &str) -> Result<Decimal, ObserveError> {
    let quote = quotes
        .get(feed)
        .ok_or_else(|| ObserveError::Malformed(format!("no entry for {feed}")))?;
    match (&quote.status[..], &quote.price) {
        ("ok", Some(price)) => price
            .parse::<Decimal>()
            .map_err(|e| ObserveError::Malformed(format!("price {price:?} of {feed}: {e}"))),
        (status, _) => Err(ObserveError::Unavailable {
            feed: feed.to_owned(),
            status: status.to_owned(),
            detail: unavailable_detail(quote),
        }),
    }
}

/// `price unavailable from every source (binance: unreachable; kraken: rate_limited)`, or with
/// the aggregator's reason when some sources answered.
fn unavailable_detail(quote: &Quote) -> String {
    let short = |text: &str| -> String { text.chars().take(MAX_REASON_CHARS).collect() };
    let mut text = if quote.sources.is_empty() || quote.sources.iter().all(|s| !s.used) {
        "price unavailable from every source".to_owned()
    } else {
        format!(
            "price unavailable: {}",
            short(quote.reason.as_deref().unwrap_or("too few usable sources"))
        )
    };
    let reasons: Vec<String> = quote
        .sources
        .iter()
        .filter(|s| !s.used)
        .map(|s| {
            format!(
                "{}: {}",
                short(&s.source),
                short(s.reason.as_deref().unwrap_or("no price"))
            )
        })
        .collect();
    if !reasons.is_empty() {
        let shown = reasons.len().min(MAX_REASONS);
        text.push_str(&format!(" ({}", reasons[..shown].join("; ")));
        if reasons.len() > shown {
            text.push_str(&format!("; and {} more", reasons.len() - shown));
        }
        text.push(')');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Query;
    use axum::routing::get;
    use axum::{Json, Router};
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn aggregator(hits: Arc<AtomicUsize>, seen: Arc<Mutex<Vec<String>>>) -> url::Url {
        let app = Router::new().route(
            "/quotes/batch",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let hits = hits.clone();
                let seen = seen.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let pairs = q.get("pairs").cloned().unwrap_or_default();
                    seen.lock().unwrap().push(pairs.clone());
                    let mut quotes = serde_json::Map::new();
                    for p in pairs.split(',') {
                        let entry = if p.starts_with("DOWN") {
                            serde_json::json!({"status": "unavailable", "sources": []})
                        } else {
                            serde_json::json!({"status": "ok", "price": "123.45", "sources": []})
                        };
                        quotes.insert(p.to_owned(), entry);
                    }
                    Json(serde_json::json!({ "quotes": quotes }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}").parse().unwrap()
    }

    #[test]
    fn an_unavailable_price_says_why_with_each_sources_reason() {
        let quote = |v: serde_json::Value| -> Quote { serde_json::from_value(v).unwrap() };
        let cases = [
            (
                serde_json::json!({"status": "unavailable", "reason": "0 usable source(s), at least 1 required",
                    "sources": [{"source": "binance", "used": false, "reason": "unreachable"},
                                {"source": "kraken", "used": false, "reason": "stale: older than the source's TTL"}]}),
                "price unavailable from every source (binance: unreachable; kraken: stale: older than the source's TTL)",
            ),
            (
                serde_json::json!({"status": "unavailable", "reason": "1 usable source(s), at least 2 required",
                    "sources": [{"source": "binance", "used": true},
                                {"source": "okx", "used": false, "reason": "rate_limited"}]}),
                "price unavailable: 1 usable source(s), at least 2 required (okx: rate_limited)",
            ),
            (
                serde_json::json!({"status": "unavailable"}),
                "price unavailable from every source",
            ),
            (
                serde_json::json!({"status": "unavailable", "sources": (0..8).map(|i| serde_json::json!(
                    {"source": format!("s{i}"), "used": false, "reason": "x".repeat(200)})).collect::<Vec<_>>()}),
                "",
            ),
        ];
        for (body, expected) in cases {
            let text = unavailable_detail(&quote(body));
            if expected.is_empty() {
                assert!(text.ends_with("; and 3 more)"), "{text}");
                assert!(text.len() < 600, "{}", text.len());
            } else {
                assert_eq!(text, expected);
            }
        }
    }

    fn histogram() -> prometheus::Histogram {
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).unwrap()
    }

    #[tokio::test]
    async fn concurrent_observations_share_one_batch_request() {
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let base = aggregator(hits.clone(), seen.clone()).await;
        let observer = Observer::start(base, 100, Duration::from_secs(5), histogram()).unwrap();
        let feeds: Vec<String> = (0..30).map(|i| format!("F{i}-USD")).collect();
        let results =
            futures_util::future::join_all(feeds.iter().map(|f| observer.observe(f))).await;
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().ok() == Some(&"123.45".parse().unwrap())),
            "{results:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{:?}", seen.lock().unwrap());
    }

    #[tokio::test]
    async fn batches_are_split_at_the_aggregators_pair_limit() {
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let base = aggregator(hits.clone(), seen.clone()).await;
        let observer = Observer::start(base, 4, Duration::from_secs(5), histogram()).unwrap();
        let feeds: Vec<String> = (0..10).map(|i| format!("F{i}-USD")).collect();
        let results =
            futures_util::future::join_all(feeds.iter().map(|f| observer.observe(f))).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert!(seen
            .lock()
            .unwrap()
            .iter()
            .all(|p| p.split(',').count() <= 4));
    }

    #[tokio::test]
    async fn an_unavailable_price_and_a_dead_aggregator_are_errors_not_prices() {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = aggregator(hits, Arc::new(Mutex::new(Vec::new()))).await;
        let observer = Observer::start(base, 100, Duration::from_secs(5), histogram()).unwrap();
        assert!(matches!(
            observer.observe("DOWN-USD").await,
            Err(ObserveError::Unavailable { .. })
        ));

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dead = Observer::start(
            format!("http://127.0.0.1:{port}").parse().unwrap(),
            100,
            Duration::from_secs(2),
            histogram(),
        )
        .unwrap();
        assert!(matches!(
            dead.observe("BTC-USD").await,
            Err(ObserveError::Unreachable(_))
        ));
        assert_eq!(dead.status().failures, 1);
        assert!(dead.status().last_success.is_none());
    }
}
