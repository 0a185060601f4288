//! Test support for adapters: a local HTTP server speaking a source's format, source
//! configurations pointing at it, and the checks every REST adapter must pass for the transport
//! behaviours it gets from the shared client (retries after `Retry-After`, refusals, timeouts,
//! malformed bodies, an API key that never shows). [`transport_checks!`] writes the checks that
//! are the same for every adapter as that adapter's own tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::aggregator::pair::Pair;
use crate::aggregator::sources::{BatchResult, Quote, Source, SourceError};
use crate::config::reader::{Fields, Report};
use crate::config::schema::sources::{read_sources, SourceConfig, SourceId};
use crate::config::values::RedactedUrl;

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

/// The configuration the adapter tests use: `baseUrl` = `url`, no retries, a 1 s timeout, no
/// rate limiter; `extra` (a JSON object) adds or replaces settings.
pub fn config_at(id: SourceId, url: &str, extra: Value) -> SourceConfig {
    let mut json = json!({"baseUrl": url, "maxRetries": 0, "timeoutMs": 1000, "rps": null});
    if let (Some(obj), Value::Object(more)) = (json.as_object_mut(), extra) {
        obj.extend(more);
    }
    config(id, json)
}

/// `BTC/USD`, `btc-usdt`, … as a pair.
pub fn pair(text: &str) -> Pair {
    Pair::parse(text).expect("pair")
}

/// A pair from its base and quote, as given (`pair_of("usd", "eur")`).
pub fn pair_of(base: &str, quote: &str) -> Pair {
    Pair::new(base, quote).expect("pair")
}

/// An exact decimal from its text.
pub fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("decimal")
}

/// What a batch answered for each of `pairs`, in their order: the price's text, or the
/// error's kind ([`SourceError::kind`]), or `missing` for a pair the batch left out.
pub fn outcomes(out: &BatchResult, pairs: &[Pair]) -> Vec<String> {
    pairs
        .iter()
        .map(|p| match out.get(p) {
            Some(Ok(quote)) => quote.price.to_string(),
            Some(Err(e)) => e.kind().to_owned(),
            None => "missing".to_owned(),
        })
        .collect()
}

/// One batch of `asked` (pairs as text) from `source`: it answers every pair and nothing else,
/// with `expected` as their [`outcomes`]. Returns the pairs and the batch for the adapter's own
/// checks.
pub async fn check_batch(
    source: &dyn Source,
    asked: &[&str],
    expected: &[&str],
) -> (Vec<Pair>, BatchResult) {
    let pairs: Vec<Pair> = asked.iter().map(|p| pair(p)).collect();
    let out = source.fetch_batch(&pairs).await.expect("batch");
    assert_eq!(out.len(), pairs.len(), "{out:?}");
    assert_eq!(outcomes(&out, &pairs), expected);
    (pairs, out)
}

/// What the mock server answers to one request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// How long the server waits before answering.
    pub delay: Duration,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// The same answer with a response header (`name` lowercase).
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The same answer, sent after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("header"),
            );
        }
        let status = StatusCode::from_u16(self.status).expect("status");
        (status, headers, self.body).into_response()
    }
}

/// A request the mock server received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path and query as sent (`/api/v3/ticker/price?symbol=BTCUSDT`).
    pub uri: String,
    pub path: String,
    /// The query string as sent, without `?` (empty when there is none).
    pub raw_query: String,
    /// The query, decoded.
    pub query: BTreeMap<String, String>,
    pub headers: HeaderMap,
}

impl Seen {
    fn of(req: &Request) -> Self {
        let raw_query = req.uri().query().unwrap_or("").to_owned();
        Seen {
            uri: req.uri().to_string(),
            path: req.uri().path().to_owned(),
            query: url::form_urlencoded::parse(raw_query.as_bytes())
                .into_owned()
                .collect(),
            raw_query,
            headers: req.headers().clone(),
        }
    }

    /// Whether `text` appears in the URI or in any header (name or value).
    pub fn mentions(&self, text: &str) -> bool {
        self.uri.contains(text)
            || self.headers.iter().any(|(name, value)| {
                name.as_str().contains(text)
                    || String::from_utf8_lossy(value.as_bytes()).contains(text)
            })
    }
}

/// A local HTTP server answering from a script, recording every request it gets.
pub struct MockServer {
    pub url: String,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl MockServer {
    /// Answers the n-th request (counted from 0, any path) with `reply(n, request)`.
    pub async fn reply<F>(reply: F) -> Self
    where
        F: Fn(usize, &Seen) -> Answer + Send + Sync + 'static,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(reply);
        let (h, s) = (hits.clone(), seen.clone());
        let router = Router::new().fallback(move |req: Request| {
            let (hits, seen, reply) = (h.clone(), s.clone(), reply.clone());
            async move {
                let request = Seen::of(&req);
                let n = hits.fetch_add(1, Ordering::SeqCst);
                let answer = reply(n, &request);
                seen.lock().expect("lock").push(request);
                tokio::time::sleep(answer.delay).await;
                answer.into_response()
            }
        });
        let url = serve(router).await;
        MockServer { url, hits, seen }
    }

    /// Answers the n-th request with `answers[n]`, the last one repeated.
    pub async fn scripted(answers: Vec<Answer>) -> Self {
        assert!(!answers.is_empty(), "a script needs an answer");
        Self::reply(move |n, _| answers[n.min(answers.len() - 1)].clone()).await
    }

    /// Answers every request with `answer`.
    pub async fn always(answer: Answer) -> Self {
        Self::scripted(vec![answer]).await
    }

    /// Answers a request for one of `paths` with that path's script (its n-th request gets the
    /// n-th answer, the last one repeated), any other request with `otherwise`.
    pub async fn per_path(paths: Vec<(&str, Vec<Answer>)>, otherwise: Answer) -> Self {
        let scripts: BTreeMap<String, (AtomicUsize, Vec<Answer>)> = paths
            .into_iter()
            .map(|(path, answers)| {
                assert!(!answers.is_empty(), "{path}: a script needs an answer");
                (path.to_owned(), (AtomicUsize::new(0), answers))
            })
            .collect();
        Self::reply(move |_, seen| match scripts.get(&seen.path) {
            Some((count, answers)) => {
                let n = count.fetch_add(1, Ordering::SeqCst);
                answers[n.min(answers.len() - 1)].clone()
            }
            None => otherwise.clone(),
        })
        .await
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The requests that arrived, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// The URL of a server answering every request with `status` and `body`.
pub async fn answering(status: u16, body: impl Into<String>) -> String {
    MockServer::always(Answer::new(status, body)).await.url
}

/// The URL of a server that accepts connections and never answers.
pub async fn hanging_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accepted, never answered
        }
    });
    format!("http://{addr}")
}

/// The URL of a loopback port nobody listens on.
pub fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// How a REST adapter is made: from its configuration and the global proxy (`Binance::new`).
pub type New<S> = fn(&SourceConfig, Option<&RedactedUrl>) -> Result<S, SourceError>;

/// The adapter `new` makes from [`config_at`]`(id, url, extra)`, without a global proxy.
pub fn adapter<S>(new: New<S>, id: SourceId, url: &str, extra: Value) -> S {
    new(&config_at(id, url, extra), None).expect("adapter")
}

type Make = Box<dyn Fn(SourceConfig) -> Box<dyn Source> + Send + Sync>;

/// The adapter under test, as the shared checks see it: how to build it from a configuration,
/// the pair to fetch, and the API key to configure (which no error may then show).
pub struct Subject {
    pub id: SourceId,
    make: Make,
    pub pair: Pair,
    pub key: Option<&'static str>,
}

impl Subject {
    /// `make` builds the adapter from a configuration (see [`config_at`]); the pair is `BTC/USD`
    /// until [`Subject::pair`] names another.
    pub fn new(
        id: SourceId,
        make: impl Fn(SourceConfig) -> Box<dyn Source> + Send + Sync + 'static,
    ) -> Self {
        Subject {
            id,
            make: Box::new(make),
            pair: pair("BTC/USD"),
            key: None,
        }
    }

    /// The subject of the adapter `new` makes (without a global proxy).
    pub fn of<S: Source + 'static>(id: SourceId, new: New<S>) -> Self {
        Self::new(id, move |c| Box::new(new(&c, None).expect("adapter")))
    }

    pub fn pair(mut self, pair: Pair) -> Self {
        self.pair = pair;
        self
    }

    /// Configure this API key in every check, and assert no error shows it.
    pub fn key(mut self, key: &'static str) -> Self {
        self.key = Some(key);
        self
    }

    /// The adapter against `url` (with [`config_at`]'s settings, the key, then `extra`).
    pub fn source(&self, url: &str, extra: Value) -> Box<dyn Source> {
        let mut settings = serde_json::Map::new();
        if let Some(key) = self.key {
            settings.insert("apiKey".into(), key.into());
        }
        if let Value::Object(more) = extra {
            settings.extend(more);
        }
        (self.make)(config_at(self.id, url, Value::Object(settings)))
    }

    /// The error's Display and Debug, asserted free of the key.
    pub fn shown(&self, e: &SourceError) -> String {
        let text = format!("{e} {e:?}");
        if let Some(key) = self.key {
            assert!(!text.contains(key), "key leaked: {text}");
        }
        text
    }

    /// Fetches the pair from `url` (no retries, 1 s timeout); the fetch must fail, and the
    /// error must not show the key.
    pub async fn error_from(&self, url: &str) -> SourceError {
        let err = self
            .source(url, json!({}))
            .fetch(&self.pair)
            .await
            .expect_err("an error");
        self.shown(&err);
        err
    }

    /// [`Subject::error_from`] a server answering `answer` to everything.
    pub async fn error_for(&self, answer: Answer) -> SourceError {
        self.error_from(&MockServer::always(answer).await.url).await
    }

    /// Each case `(status, body, kind)`: against a server answering every request with `status`
    /// and `body`, the instrument list fails with an error of that [`SourceError::kind`], and
    /// the error does not show the key.
    pub async fn check_instrument_errors(&self, cases: &[(u16, &str, &str)]) {
        for (status, body, kind) in cases {
            let url = answering(*status, *body).await;
            let err = self
                .source(&url, json!({}))
                .instruments()
                .await
                .expect_err("an error");
            self.shown(&err);
            assert_eq!(err.kind(), *kind, "{status} {body}: {err:?}");
        }
    }

    /// Each case `(status, body, pair, kind)`: against a server answering every request with
    /// `status` and `body`, fetching `pair` fails with an error of that [`SourceError::kind`]
    /// (`not_found`, `malformed`, …), and the error does not show the key.
    pub async fn check_errors(&self, cases: &[(u16, &str, &str, &str)]) {
        for (status, body, asked, kind) in cases {
            let url = answering(*status, *body).await;
            let err = self
                .source(&url, json!({}))
                .fetch(&pair(asked))
                .await
                .expect_err("an error");
            self.shown(&err);
            assert_eq!(err.kind(), *kind, "{status} {body} for {asked}: {err:?}");
        }
    }
}

/// HTTP 429 with `Retry-After: 1` (body `limited`), then 200 with `ok`: the adapter waits the
/// second and retries once, and the quote keeps the upstream price text `price`.
pub async fn check_retry_after(subject: &Subject, limited: &str, ok: &str, price: &str) -> Quote {
    let srv = MockServer::scripted(vec![
        Answer::new(429, limited).header("retry-after", "1"),
        Answer::new(200, ok),
    ])
    .await;
    let source = subject.source(&srv.url, json!({"maxRetries": 2}));
    let started = Instant::now();
    let quote = source
        .fetch(&subject.pair)
        .await
        .expect("quote after the retry");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(srv.hits(), 2);
    assert_eq!(quote.price.value().to_string(), price);
    quote
}

/// HTTP 429 with `Retry-After: 1` and `maxRetries: 0`: one request, and the error is
/// `RateLimited` carrying the second.
pub async fn check_rate_limited_without_retries(subject: &Subject, limited: &str) -> SourceError {
    let srv = MockServer::always(Answer::new(429, limited).header("retry-after", "1")).await;
    let err = subject.error_from(&srv.url).await;
    assert_eq!(
        err,
        SourceError::RateLimited {
            from: subject.id,
            retry_after: Some(Duration::from_secs(1))
        }
    );
    assert_eq!(srv.hits(), 1);
    err
}

/// Each `(status, body)` (451 geo-block, 403 forbidden, …) is `Refused`.
pub async fn check_refused(subject: &Subject, answers: &[(u16, &str)]) {
    for (status, body) in answers {
        let err = subject.error_for(Answer::new(*status, *body)).await;
        assert!(
            matches!(err, SourceError::Refused { .. }),
            "{status}: {err:?}"
        );
    }
}

/// Each body, answered with HTTP 200, is `Malformed`.
pub async fn check_malformed(subject: &Subject, bodies: &[&str]) {
    for body in bodies {
        let err = subject.error_for(Answer::new(200, *body)).await;
        assert!(
            matches!(err, SourceError::Malformed { .. }),
            "{body}: {err:?}"
        );
    }
}

/// An HTML page such as a CDN shows during maintenance: never a price.
pub const MAINTENANCE: &str = "<html><body>maintenance</body></html>";

/// [`MAINTENANCE`] and each of `bodies`, answered with HTTP 200, are `Malformed`; with
/// `instruments`, the maintenance page is a `Malformed` instrument list too.
pub async fn check_garbage_is_malformed(subject: &Subject, bodies: &[&str], instruments: bool) {
    check_malformed(subject, &[MAINTENANCE]).await;
    check_malformed(subject, bodies).await;
    if instruments {
        subject
            .check_instrument_errors(&[(200, MAINTENANCE, "malformed")])
            .await;
    }
}

/// [`check_key_not_sent`] for a pair the source does not know (`unknown`, answered with
/// `answer`): the fetch fails, and neither the request nor the error carries the key. Returns
/// the request for the adapter's own assertions.
pub async fn check_key_never_sent(subject: Subject, unknown: &str, answer: Answer) -> Seen {
    let subject = subject.pair(pair(unknown));
    let (outcome, seen) = check_key_not_sent(&subject, answer).await;
    outcome.expect_err("an error");
    seen
}

/// `body` sent after 3 s, with a 1 s timeout: `Timeout`, well before the answer.
pub async fn check_slow_answer_times_out(subject: &Subject, body: &str) -> SourceError {
    let srv = MockServer::always(Answer::new(200, body).delayed(Duration::from_secs(3))).await;
    times_out(subject, &srv.url).await
}

/// A connection that is accepted and never answered: `Timeout` after the configured second.
pub async fn check_hanging_connection_times_out(subject: &Subject) -> SourceError {
    times_out(subject, &hanging_server().await).await
}

/// One fetch from `url` fails with `Timeout` (the configured second) in well under the 3 s a
/// slow server takes, and the error does not show the key.
async fn times_out(subject: &Subject, url: &str) -> SourceError {
    let started = Instant::now();
    let err = subject.error_from(url).await;
    assert_eq!(
        err,
        SourceError::Timeout {
            from: subject.id,
            timeout: Duration::from_secs(1)
        }
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    err
}

/// Nobody listening: `Unreachable`, and the error does not show the key.
pub async fn check_unreachable(subject: &Subject) -> SourceError {
    let err = subject.error_from(&closed_url()).await;
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    err
}

/// Each `(base, quote)` is `PairNotFound` without a request: the adapter knows from the codes
/// alone that the source cannot have the pair (the server would answer `ok`).
pub async fn check_not_found_without_request(subject: &Subject, ok: &str, pairs: &[(&str, &str)]) {
    let srv = MockServer::always(Answer::new(200, ok)).await;
    let source = subject.source(&srv.url, json!({}));
    for (base, quote) in pairs {
        let err = source
            .fetch(&pair_of(base, quote))
            .await
            .expect_err("an error");
        subject.shown(&err);
        assert_eq!(err.kind(), "not_found", "{base}/{quote}");
    }
    assert!(srv.seen().is_empty(), "{:?}", srv.seen());
}

/// The adapter has no batch request and no instrument list (and asks nothing to say so).
pub async fn check_no_batch_no_instruments(subject: &Subject) {
    let source = subject.source(&closed_url(), json!({}));
    assert_eq!(source.max_batch(), None);
    assert_eq!(
        source.instruments().await.expect_err("unsupported").kind(),
        "unsupported"
    );
}

/// With an API key configured, one fetch from a server answering `answer`: exactly one request,
/// whose URI and headers do not carry the key, and an error (if any) that does not show it.
/// Returns the outcome and the request for the adapter's own assertions.
pub async fn check_key_not_sent(
    subject: &Subject,
    answer: Answer,
) -> (Result<Quote, SourceError>, Seen) {
    let key = subject.key.expect("a subject with a key");
    let srv = MockServer::always(answer).await;
    let outcome = subject
        .source(&srv.url, json!({}))
        .fetch(&subject.pair)
        .await;
    let seen = srv.seen();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].mentions(key), "{seen:?}");
    if let Err(e) = &outcome {
        subject.shown(e);
    }
    (outcome, seen[0].clone())
}

/// The transport checks every REST adapter passes, written as `#[tokio::test]`s into the module
/// that invokes the macro (an adapter's `tests`), so each runs and fails under its own name:
/// `http_429_is_retried_after_retry_after`,
/// `http_429_without_retries_is_rate_limited_with_its_retry_after`,
/// `geo_blocks_and_forbidden_are_refused`, `a_slow_answer_times_out`,
/// `a_hanging_connection_times_out` and `an_unreachable_host_is_unreachable`; and, when their
/// arguments are given, `garbage_is_malformed` and `api_key_is_never_sent_nor_shown`.
///
/// The arguments are the adapter's own bodies, as the checks take them: `subject` (a
/// [`Subject`] expression, evaluated afresh in each test), `retried` ([`check_retry_after`]'s
/// 429 body, the body that follows it and the price it holds; `for <pair>` when that body is
/// another pair's than the subject's), `rate_limited` ([`check_rate_limited_without_retries`]'s
/// body), `refused` ([`check_refused`]'s answers) and `slow` (the body
/// [`check_slow_answer_times_out`] sends too late); optionally `garbage` (the bodies besides
/// [`MAINTENANCE`] that [`check_garbage_is_malformed`] sends, and whether the instrument list is
/// checked too) and `key_never_sent` ([`check_key_never_sent`]'s unknown pair and answer).
macro_rules! transport_checks {
    (
        subject: $subject:expr,
        retried: ($limited:expr, $ok:expr, $price:expr $(,)?) $(for $retry_pair:expr)?,
        rate_limited: $rate_limited:expr,
        refused: $refused:expr,
        slow: $slow:expr
        $(, garbage: ($garbage:expr, instruments: $instruments:expr $(,)?))?
        $(, key_never_sent: ($unknown:expr, $answer:expr $(,)?))?
        $(,)?
    ) => {
        #[tokio::test]
        async fn http_429_is_retried_after_retry_after() {
            let subject = $subject;
            $(let subject = subject.pair($retry_pair);)?
            $crate::aggregator::sources::testing::check_retry_after(&subject, $limited, $ok, $price)
                .await;
        }

        #[tokio::test]
        async fn http_429_without_retries_is_rate_limited_with_its_retry_after() {
            $crate::aggregator::sources::testing::check_rate_limited_without_retries(
                &$subject,
                $rate_limited,
            )
            .await;
        }

        #[tokio::test]
        async fn geo_blocks_and_forbidden_are_refused() {
            $crate::aggregator::sources::testing::check_refused(&$subject, $refused).await;
        }

        #[tokio::test]
        async fn a_slow_answer_times_out() {
            $crate::aggregator::sources::testing::check_slow_answer_times_out(&$subject, $slow)
                .await;
        }

        #[tokio::test]
        async fn a_hanging_connection_times_out() {
            $crate::aggregator::sources::testing::check_hanging_connection_times_out(&$subject)
                .await;
        }

        #[tokio::test]
        async fn an_unreachable_host_is_unreachable() {
            $crate::aggregator::sources::testing::check_unreachable(&$subject).await;
        }

        $(
            #[tokio::test]
            async fn garbage_is_malformed() {
                $crate::aggregator::sources::testing::check_garbage_is_malformed(
                    &$subject,
                    $garbage,
                    $instruments,
                )
                .await;
            }
        )?

        $(
            #[tokio::test]
            async fn api_key_is_never_sent_nor_shown() {
                $crate::aggregator::sources::testing::check_key_never_sent(
                    $subject, $unknown, $answer,
                )
                .await;
            }
        )?
    };
}
pub(crate) use transport_checks;
