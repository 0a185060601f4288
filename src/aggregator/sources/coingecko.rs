//! CoinGecko: `GET {base}/simple/price?ids=<coin ids>&vs_currencies=<quotes>&precision=full`.
//!
//! - **Symbols**: the pair's base is a CoinGecko *coin id* (`bitcoin`, `stader-bnbx`), never a
//!   ticker (the reference's ticker → id guessing picked memecoins, §10 item 11). Ids and quote
//!   currencies are lowercased, in the single and in the batch request alike (§10 item 24), and
//!   the answer's keys are matched lowercased too.
//! - **Batch**: `ids=a,b&vs_currencies=x,y` (the answer is the cross product; each asked pair
//!   takes its own cell, a missing cell is `PairNotFound`). At most `maxBatchSize` pairs (default
//!   100) per request; a longer list is split.
//! - **API key and host** (the reference forced the Pro host for any key, so Demo keys failed,
//!   §10 item 24). The rule: the key goes in the `x-cg-demo-api-key` header to whatever host
//!   `baseUrl` names (default: the public `api.coingecko.com`); only when `baseUrl`'s host is
//!   `pro-api.coingecko.com` does it go in the `x-cg-pro-api-key` header. A Pro subscriber sets
//!   `"baseUrl": "https://pro-api.coingecko.com/api/v3"`. The key is never put in the query
//!   string (URLs end up in logs).
//! - **Errors**: HTTP 429 (`{"status":{"error_code":429,…}}`) → `RateLimited`; CoinGecko codes
//!   10002 (missing key), 10005 (plan restricted), 10010/10011 (key used on the wrong host),
//!   1020 (CDN firewall), 401, 403 → `Refused`; HTTP 400/404/422 otherwise (`{"error":"…"}`) →
//!   `PairNotFound`; an unknown id or quote is simply absent (`{}`, `{"bitcoin":{}}`) →
//!   `PairNotFound`; a `null` or zero price → `PairNotFound`.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::sources::client::SourceClient;
use crate::aggregator::sources::{
    batch_size, comma_joined, key_headers, price_of, upstream_message, BatchResult, Quote, Source,
    SourceError,
};
use crate::config::schema::sources::{SourceConfig, SourceId};
use crate::config::secret::Secret;
use crate::config::values::RedactedUrl;

/// The public (keyless and Demo-key) endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.coingecko.com/api/v3";
/// The host Pro keys belong to; only a `baseUrl` on this host sends the key as a Pro key.
pub const PRO_HOST: &str = "pro-api.coingecko.com";
pub const DEMO_KEY_HEADER: &str = "x-cg-demo-api-key";
pub const PRO_KEY_HEADER: &str = "x-cg-pro-api-key";

const ID: SourceId = SourceId::CoinGecko;

pub struct CoinGecko {
    client: SourceClient,
    /// The key header, if a key is configured (marked sensitive).
    headers: HeaderMap,
    /// Kept only to scrub it from upstream messages.
    api_key: Option<Secret<String>>,
    max_batch: usize,
}

/// The header that carries a key for requests to `base_url` (see the module documentation).
pub fn key_header(base_url: Option<&RedactedUrl>) -> &'static str {
    match base_url.and_then(|u| u.expose().host_str()) {
        Some(host) if host.eq_ignore_ascii_case(PRO_HOST) => PRO_KEY_HEADER,
        _ => DEMO_KEY_HEADER,
    }
}

/// What one `/simple/price` request brought back.
enum Reply {
    /// Coin id → vs currency → raw price, all keys lowercased.
    Prices(BTreeMap<String, BTreeMap<String, Box<RawValue>>>),
    /// HTTP 400/404/422 without a key or rate-limit code: the request's ids or currencies were
    /// rejected. For one pair that is `PairNotFound`; for several, which one is unknown.
    Rejected,
}

impl CoinGecko {
    pub fn new(
        config: &SourceConfig,
        global_proxy: Option<&RedactedUrl>,
    ) -> Result<Self, SourceError> {
        let client = SourceClient::new(ID, config, DEFAULT_BASE_URL, global_proxy)?;
        let name = key_header(config.base_url.as_ref());
        let (headers, api_key) = key_headers(ID, config, name, str::to_owned)?;
        Ok(Self {
            client,
            headers,
            api_key,
            max_batch: batch_size(config, ID, 100),
        })
    }

    fn vs_currency(pair: &Pair) -> String {
        pair.quote.to_ascii_lowercase()
    }

    async fn request(
        &self,
        ids: &BTreeSet<String>,
        vs: &BTreeSet<String>,
    ) -> Result<Reply, SourceError> {
        let mut url = self.client.url("simple/price");
        url.query_pairs_mut()
            .append_pair("ids", &comma_joined(ids))
            .append_pair("vs_currencies", &comma_joined(vs))
            .append_pair("precision", "full");
        let response = self.client.get(url, self.headers.clone()).await?;
        let top: Option<BTreeMap<String, Box<RawValue>>> =
            serde_json::from_slice(&response.body).ok();
        let error = top.as_ref().and_then(body_error);
        if let Some((Some(code), message)) = &error {
            if let Some(e) = self.judge_code(*code, message) {
                return Err(e);
            }
        }
        match response.status {
            StatusCode::OK => {
                if let Some((_, message)) = error {
                    return Err(SourceError::upstream(ID, self.clean(&message)));
                }
                let top =
                    top.ok_or_else(|| SourceError::malformed(ID, "the body is not a JSON object"))?;
                let mut prices = BTreeMap::new();
                for (id, raw) in top {
                    // Anything that is not an object of prices is skipped: its pairs are absent.
                    if let Ok(cells) =
                        serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get())
                    {
                        let cells = cells
                            .into_iter()
                            .map(|(vs, v)| (vs.to_ascii_lowercase(), v))
                            .collect();
                        prices.insert(id.to_ascii_lowercase(), cells);
                    }
                }
                Ok(Reply::Prices(prices))
            }
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY => {
                Ok(Reply::Rejected)
            }
            status => Err(match error {
                Some((_, message)) => {
                    SourceError::upstream(ID, format!("HTTP {status}: {}", self.clean(&message)))
                }
                None => SourceError::http_status(ID, status),
            }),
        }
    }

    /// A CoinGecko error code that decides the outcome whatever the HTTP status.
    fn judge_code(&self, code: i64, message: &str) -> Option<SourceError> {
        match code {
            429 => Some(SourceError::rate_limited(ID)),
            401 | 403 | 1020 | 10002 | 10005 | 10010 | 10011 => Some(SourceError::refused(
                ID,
                format!("error {code}: {}", self.clean(message)),
            )),
            _ => None,
        }
    }

    /// An upstream message fit for an error: no control characters, no API key, bounded.
    fn clean(&self, message: &str) -> String {
        upstream_message(message, self.api_key.as_ref().map(|k| k.expose().trim()))
    }

    /// `pair`'s cell in an answer.
    fn pick(
        &self,
        prices: &BTreeMap<String, BTreeMap<String, Box<RawValue>>>,
        pair: &Pair,
    ) -> Result<Quote, SourceError> {
        let symbol = self.symbol(pair);
        let raw = prices
            .get(&symbol)
            .and_then(|cells| cells.get(&Self::vs_currency(pair)))
            .ok_or_else(|| SourceError::not_found(ID, pair))?;
        Ok(Quote::now(price_of(ID, raw, pair)?, symbol))
    }

    /// One request for up to `max_batch` pairs.
    async fn fetch_chunk(&self, pairs: &[Pair]) -> Result<BatchResult, SourceError> {
        let ids: BTreeSet<String> = pairs.iter().map(|p| self.symbol(p)).collect();
        let vs: BTreeSet<String> = pairs.iter().map(Self::vs_currency).collect();
        let mut out = BatchResult::new();
        match self.request(&ids, &vs).await? {
            Reply::Prices(prices) => {
                for pair in pairs {
                    out.insert(pair.clone(), self.pick(&prices, pair));
                }
            }
            Reply::Rejected if pairs.len() == 1 => {
                out.insert(pairs[0].clone(), Err(SourceError::not_found(ID, &pairs[0])));
            }
            // Which id or currency was rejected is not said: ask pair by pair, so one bad pair
            // does not make every pair of the batch "not found".
            Reply::Rejected => {
                for pair in pairs {
                    out.insert(pair.clone(), self.fetch(pair).await);
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Source for CoinGecko {
    fn id(&self) -> SourceId {
        ID
    }

    /// The coin id, lowercased (`bitcoin`).
    fn symbol(&self, pair: &Pair) -> String {
        pair.base.to_ascii_lowercase()
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let ids = BTreeSet::from([self.symbol(pair)]);
        let vs = BTreeSet::from([Self::vs_currency(pair)]);
        match self.request(&ids, &vs).await? {
            Reply::Prices(prices) => self.pick(&prices, pair),
            Reply::Rejected => Err(SourceError::not_found(ID, pair)),
        }
    }

    fn max_batch(&self) -> Option<usize> {
        Some(self.max_batch)
    }

    /// Every asked pair gets its own result. A failure of the whole request is returned as the
    /// error when it concerns every pair; when the pairs took several requests, the pairs of a
    /// failed request carry its error.
    async fn fetch_batch(&self, pairs: &[Pair]) -> Result<BatchResult, SourceError> {
        let mut out = BatchResult::new();
        let mut failure = None;
        let mut failed_chunks = 0;
        let chunks: Vec<&[Pair]> = pairs.chunks(self.max_batch).collect();
        for chunk in &chunks {
            match self.fetch_chunk(chunk).await {
                Ok(results) => out.extend(results),
                Err(e) => {
                    failed_chunks += 1;
                    for pair in *chunk {
                        out.insert(pair.clone(), Err(e.clone()));
                    }
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) if failed_chunks == chunks.len() => Err(e),
            _ => Ok(out),
        }
    }
}

#[derive(Deserialize)]
struct ErrorStatus {
    error_code: Option<i64>,
    error_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Text(String),
    Nested { status: ErrorStatus },
}

/// CoinGecko's error shapes: `{"status":{"error_code":…,"error_message":…}}`,
/// `{"error":{"status":{…}}}` and `{"error":"…"}`. A coin whose id is `status` (Status, SNT)
/// answers `{"status":{"usd":…}}`, which has neither field and is not an error.
fn body_error(top: &BTreeMap<String, Box<RawValue>>) -> Option<(Option<i64>, String)> {
    if let Some(raw) = top.get("status") {
        if let Ok(s) = serde_json::from_str::<ErrorStatus>(raw.get()) {
            if s.error_code.is_some() || s.error_message.is_some() {
                return Some((s.error_code, s.error_message.unwrap_or_default()));
            }
        }
    }
    match serde_json::from_str::<ErrorField>(top.get("error")?.get()).ok()? {
        ErrorField::Text(message) => Some((None, message)),
        ErrorField::Nested { status } => {
            Some((status.error_code, status.error_message.unwrap_or_default()))
        }
    }
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{self, pair, Answer, MockServer, Subject};

    const KEY: &str = "CG-demoKey1234567890";
    const PATH: &str = "/api/v3/simple/price";

    /// The adapter against a test server (`url` plays the host; the API path is CoinGecko's).
    fn source(url: &str, extra: serde_json::Value) -> CoinGecko {
        CoinGecko::new(
            &testing::config_at(ID, &format!("{url}/api/v3"), extra),
            None,
        )
        .expect("adapter")
    }

    /// The adapter with a key, for the shared transport checks.
    fn subject() -> Subject {
        Subject::of(ID, CoinGecko::new)
            .pair(pair("bitcoin/usd"))
            .key(KEY)
    }

    /// The error's Display and Debug, which must never show the key.
    fn shown(e: &SourceError) -> String {
        subject().shown(e)
    }

    #[tokio::test]
    async fn single_price_keeps_the_exact_decimal_and_lowercases_the_request() {
        let srv = MockServer::scripted(vec![Answer::new(
            200,
            r#"{"stader-bnbx":{"usd":67123.45000000000000000001}}"#,
        )])
        .await;
        let cg = source(&srv.url, json!({}));
        let q = cg.fetch(&pair("Stader-BNBx/USD")).await.expect("quote");
        assert_eq!(q.price.value().to_string(), "67123.45000000000000000001");
        assert_eq!(q.symbol, "stader-bnbx");
        let seen = &srv.seen()[0];
        assert_eq!(seen.path, PATH);
        assert_eq!(seen.query["ids"], "stader-bnbx");
        assert_eq!(seen.query["vs_currencies"], "usd");
        assert_eq!(seen.query["precision"], "full");
        assert!(seen.headers.get(DEMO_KEY_HEADER).is_none());
        assert!(seen.headers.get(PRO_KEY_HEADER).is_none());
    }

    #[tokio::test]
    async fn the_documented_live_capture_parses() {
        let srv = MockServer::scripted(vec![Answer::new(
            200,
            r#"{"bitcoin":{"usd":83822,"rub":7114519},"the-open-network":{"usd":1.4,"rub":119.2}}"#,
        )])
        .await;
        let cg = source(&srv.url, json!({}));
        let pairs = [pair("bitcoin/usd"), pair("the-open-network/RUB")];
        let out = cg.fetch_batch(&pairs).await.expect("batch");
        assert_eq!(testing::outcomes(&out, &pairs), ["83822", "119.2"]);
        let q = &srv.seen()[0].query;
        assert_eq!(q["ids"], "bitcoin,the-open-network");
        assert_eq!(q["vs_currencies"], "rub,usd");
    }

    #[tokio::test]
    async fn batch_lowercases_like_single_and_reports_every_pair() {
        let srv = MockServer::scripted(vec![Answer::new(
            200,
            r#"{"bitcoin":{"usd":67123,"eur":62000.5},"status":{"usd":0.0213},"dead-coin":{"usd":0},"ethereum":{}}"#,
        )])
        .await;
        let cg = source(&srv.url, json!({}));
        let pairs = [
            pair("Bitcoin/USD"),
            pair("bitcoin/eur"),
            pair("STATUS/usd"),
            pair("dead-coin/usd"),
            pair("ethereum/usd"),
            pair("no-such-coin/usd"),
        ];
        let out = cg.fetch_batch(&pairs).await.expect("batch");
        assert_eq!(out.len(), pairs.len());
        assert_eq!(
            out[&pairs[0]].as_ref().expect("btc").price.to_string(),
            "67123"
        );
        assert_eq!(out[&pairs[0]].as_ref().expect("btc").symbol, "bitcoin");
        assert_eq!(
            out[&pairs[1]].as_ref().expect("eur").price.to_string(),
            "62000.5"
        );
        // A coin whose id is `status` is a price, not an error envelope.
        assert_eq!(
            out[&pairs[2]].as_ref().expect("snt").price.to_string(),
            "0.0213"
        );
        for p in &pairs[3..] {
            assert!(
                matches!(out[p], Err(SourceError::PairNotFound { .. })),
                "{p}: {:?}",
                out[p]
            );
        }
        assert_eq!(srv.hits(), 1);
        let q = &srv.seen()[0].query;
        assert_eq!(q["ids"], "bitcoin,dead-coin,ethereum,no-such-coin,status");
        assert_eq!(q["vs_currencies"], "eur,usd");
    }

    #[tokio::test]
    async fn batches_are_split_at_max_batch_size() {
        let srv = MockServer::reply(|_, seen| {
            let cells: Vec<String> = seen.query["ids"]
                .split(',')
                .map(|id| format!(r#""{id}":{{"usd":1.5}}"#))
                .collect();
            Answer::new(200, format!("{{{}}}", cells.join(",")))
        })
        .await;
        let cg = source(&srv.url, json!({"maxBatchSize": 2}));
        assert_eq!(cg.max_batch(), Some(2));
        let pairs: Vec<Pair> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| pair(&format!("{id}/usd")))
            .collect();
        let out = cg.fetch_batch(&pairs).await.expect("batch");
        assert!(out
            .values()
            .all(|r| r.as_ref().is_ok_and(|q| q.price.to_string() == "1.5")));
        assert_eq!(srv.hits(), 3);
        assert_eq!(source(&srv.url, json!({})).max_batch(), Some(100));
    }

    #[tokio::test]
    async fn a_rejected_batch_is_asked_pair_by_pair() {
        let srv = MockServer::reply(|_, seen| {
            if seen.query["ids"].contains("bad..id") {
                Answer::new(400, r#"{"error":"invalid ids"}"#)
            } else {
                Answer::new(200, r#"{"bitcoin":{"usd":67000.1}}"#)
            }
        })
        .await;
        let cg = source(&srv.url, json!({}));
        let pairs = [pair("bitcoin/usd"), pair("bad..id/usd")];
        let out = cg.fetch_batch(&pairs).await.expect("batch");
        assert_eq!(testing::outcomes(&out, &pairs), ["67000.1", "not_found"]);
        assert_eq!(srv.hits(), 3);
    }

    #[tokio::test]
    async fn a_failed_batch_request_fails_the_batch() {
        let srv = MockServer::scripted(vec![Answer::new(500, "oops")]).await;
        let cg = source(&srv.url, json!({}));
        let err = cg
            .fetch_batch(&[pair("bitcoin/usd"), pair("ethereum/usd")])
            .await
            .expect_err("failed");
        assert!(matches!(err, SourceError::Upstream { .. }), "{err:?}");
        assert!(cg.fetch_batch(&[]).await.expect("empty").is_empty());
        assert_eq!(srv.hits(), 1);
    }

    #[tokio::test]
    async fn a_key_goes_in_the_demo_header_on_the_public_host() {
        let srv = MockServer::scripted(vec![Answer::new(200, r#"{"bitcoin":{"usd":1}}"#)]).await;
        let cg = source(&srv.url, json!({"apiKey": KEY}));
        cg.fetch(&pair("bitcoin/usd")).await.expect("quote");
        let seen = &srv.seen()[0];
        assert_eq!(seen.headers[DEMO_KEY_HEADER], KEY);
        assert!(seen.headers.get(PRO_KEY_HEADER).is_none());
        assert!(seen.query.values().all(|v| !v.contains(KEY)));
        assert!(!seen.query.keys().any(|k| k.contains("api_key")));
    }

    #[tokio::test]
    async fn a_key_goes_in_the_pro_header_only_on_the_pro_host() {
        // The test server plays an HTTP proxy, so the request really names the Pro host.
        let srv = MockServer::scripted(vec![Answer::new(200, r#"{"bitcoin":{"usd":2}}"#)]).await;
        let cfg = testing::config(
            ID,
            json!({"baseUrl": "http://pro-api.coingecko.com/api/v3", "apiKey": KEY,
                   "useProxy": srv.url, "maxRetries": 0, "timeoutMs": 1000, "rps": null}),
        );
        let cg = CoinGecko::new(&cfg, None).expect("adapter");
        cg.fetch(&pair("bitcoin/usd")).await.expect("quote");
        let seen = &srv.seen()[0];
        assert_eq!(seen.path, PATH);
        assert_eq!(seen.headers["host"], PRO_HOST);
        assert_eq!(seen.headers[PRO_KEY_HEADER], KEY);
        assert!(seen.headers.get(DEMO_KEY_HEADER).is_none());
        assert!(seen.query.values().all(|v| !v.contains(KEY)));
    }

    #[test]
    fn the_key_header_follows_the_base_url_host() {
        let url = |u: &str| {
            testing::config(ID, json!({"baseUrl": u}))
                .base_url
                .expect("url")
        };
        assert_eq!(key_header(None), DEMO_KEY_HEADER);
        assert_eq!(
            key_header(Some(&url("https://api.coingecko.com/api/v3"))),
            DEMO_KEY_HEADER
        );
        assert_eq!(
            key_header(Some(&url("https://PRO-API.coingecko.com/api/v3"))),
            PRO_KEY_HEADER
        );
        assert_eq!(
            key_header(Some(&url("https://pro-api.coingecko.com.evil/api"))),
            DEMO_KEY_HEADER
        );
        assert_eq!(
            key_header(Some(&url("http://127.0.0.1:8080"))),
            DEMO_KEY_HEADER
        );
    }

    #[tokio::test]
    async fn key_and_plan_errors_are_refusals() {
        let bodies = [
            (
                400,
                r#"{"status":{"error_code":10011,"error_message":"If you are using Demo API key, please change your root URL from pro-api.coingecko.com to api.coingecko.com"}}"#,
            ),
            (
                400,
                r#"{"status":{"error_code":10010,"error_message":"If you are using Pro API key, please change your root URL from api.coingecko.com to pro-api.coingecko.com"}}"#,
            ),
            (
                400,
                r#"{"error":{"status":{"error_code":10002,"error_message":"API Key Missing"}}}"#,
            ),
            (
                200,
                r#"{"status":{"error_code":10005,"error_message":"You may not have access to this endpoint"}}"#,
            ),
        ];
        for (status, body) in bodies {
            let srv = MockServer::scripted(vec![Answer::new(status, body)]).await;
            let err = source(&srv.url, json!({"apiKey": KEY}))
                .fetch(&pair("bitcoin/usd"))
                .await
                .expect_err("refused");
            assert!(
                matches!(err, SourceError::Refused { .. }),
                "{body}: {err:?}"
            );
            shown(&err);
        }
    }

    #[tokio::test]
    async fn rate_limit_bodies_are_rate_limits() {
        let body = r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits."}}"#;
        // HTTP 429 with this body (the client), and the same body under another status.
        for status in [429, 403, 200] {
            let srv = MockServer::scripted(vec![Answer::new(status, body)]).await;
            let err = source(&srv.url, json!({}))
                .fetch(&pair("bitcoin/usd"))
                .await
                .expect_err("limited");
            let expected = if status == 403 {
                // The client judges 403 before the body is read.
                matches!(err, SourceError::Refused { .. })
            } else {
                matches!(err, SourceError::RateLimited { .. })
            };
            assert!(expected, "{status}: {err:?}");
        }
    }

    #[tokio::test]
    async fn rejected_parameters_and_missing_cells_are_not_found() {
        for (status, body) in [
            (400, r#"{"error":"invalid vs_currency"}"#),
            (404, r#"{"error":"coin not found"}"#),
            (200, "{}"),
            (200, r#"{"bitcoin":{}}"#),
            (200, r#"{"bitcoin":{"usd":null}}"#),
            (200, r#"{"bitcoin":{"usd":0}}"#),
        ] {
            let srv = MockServer::scripted(vec![Answer::new(status, body)]).await;
            let err = source(&srv.url, json!({}))
                .fetch(&pair("bitcoin/usd"))
                .await
                .expect_err("not found");
            assert!(
                matches!(err, SourceError::PairNotFound { .. }),
                "{body}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn other_statuses_and_error_bodies_are_upstream_errors() {
        for (status, body) in [(200, r#"{"error":"something broke"}"#), (408, "")] {
            let srv = MockServer::scripted(vec![Answer::new(status, body)]).await;
            let err = source(&srv.url, json!({}))
                .fetch(&pair("bitcoin/usd"))
                .await
                .expect_err("upstream");
            assert!(
                matches!(err, SourceError::Upstream { .. }),
                "{body}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn garbage_and_bad_prices_are_malformed() {
        testing::check_malformed(
            &subject(),
            &[
                "<html>Just a moment...</html>",
                "[1,2]",
                r#"{"bitcoin":{"usd":-3}}"#,
                r#"{"bitcoin":{"usd":"abc"}}"#,
            ],
        )
        .await;
    }

    const SLOW_DOWN: &str = r#"{"status":{"error_code":429,"error_message":"slow down"}}"#;
    const BLOCKED: &str = r#"{"error":"blocked"}"#;

    testing::transport_checks! {
        subject: subject(),
        retried: (SLOW_DOWN, r#"{"bitcoin":{"usd":5}}"#, "5"),
        rate_limited: SLOW_DOWN,
        refused: &[(451, BLOCKED), (403, BLOCKED), (401, BLOCKED)],
        slow: r#"{"bitcoin":{"usd":1}}"#,
    }

    #[tokio::test]
    async fn upstream_messages_never_echo_the_key() {
        let body = format!(
            r#"{{"status":{{"error_code":10010,"error_message":"key {KEY} is a Pro key"}}}}"#
        );
        let err = subject().error_for(Answer::new(400, body)).await;
        assert!(shown(&err).contains("is a Pro key"));
    }
}
