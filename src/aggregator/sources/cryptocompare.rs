//! CryptoCompare (min-api, now CoinDesk Data): `GET {base}/data/price?fsym=BTC&tsyms=USD` →
//! `{"USD":30801.96}`, batch `GET {base}/data/pricemulti?fsyms=BTC,ETH&tsyms=USD,EUR` →
//! `{"BTC":{"USD":…,"EUR":…},"ETH":{…}}` (missing pairs are omitted).
//!
//! - **Symbols**: base and quote uppercased (`BTC`, `USD`); the symbol shown is `BTC/USD`.
//! - **API key**: the documented `Authorization: Apikey <key>` header (marked sensitive), not the
//!   `api_key` query parameter, so the key never sits in a URL.
//! - **Batch**: at most `maxBatchSize` pairs (default 50) per request, and CryptoCompare's
//!   parameter limits (`fsyms` ≤ 300 characters, `tsyms` ≤ 100) are kept by splitting the pairs
//!   over several requests. The answer is the cross product; each asked pair takes its own cell.
//! - **Errors** come as HTTP 200 (sometimes 4xx) with `{"Response":"Error","Message":…,"Type":…,
//!   "ParamWithError"?:…,"RateLimit":{…}}`:
//!   - `Type` 99 or a message about the rate limit → `RateLimited`, `retry_after` = the longest
//!     exhausted window of `RateLimit` (`calls_made` ≥ `max_calls`: second, minute, hour, day,
//!     month);
//!   - a message about the API key or authorization → `Refused`;
//!   - "… market does not exist for this coin pair", "There is no data for …", or a
//!     `ParamWithError` naming `fsym`/`fsyms`/`tsyms` → `PairNotFound` (the reference re-wrapped
//!     this as a 502, so such pairs were never dropped, §10 item 22);
//!   - any other message → `Upstream`.
//!
//!   A pair missing from a successful answer, or priced `0`/`null`, is `PairNotFound`. HTTP
//!   400/404 without that envelope → `PairNotFound`. When a multi-pair request is rejected as a
//!   whole with a not-found error, its pairs are asked one by one, so one unknown symbol does not
//!   make every pair of the batch "not found".

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, AUTHORIZATION};
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

pub const DEFAULT_BASE_URL: &str = "https://min-api.cryptocompare.com";
/// `pricemulti` parameter limits (characters of the comma-joined list).
pub const MAX_FSYMS_CHARS: usize = 300;
pub const MAX_TSYMS_CHARS: usize = 100;

const ID: SourceId = SourceId::CryptoCompare;
/// Rate-limit windows of the `RateLimit` object, longest first.
const WINDOWS: [(&str, u64); 5] = [
    ("month", 31 * 86_400),
    ("day", 86_400),
    ("hour", 3_600),
    ("minute", 60),
    ("second", 1),
];

pub struct CryptoCompare {
    client: SourceClient,
    headers: HeaderMap,
    api_key: Option<Secret<String>>,
    max_batch: usize,
}

/// What one request brought back.
enum Reply {
    /// The answer's top-level object, keys uppercased.
    Found(BTreeMap<String, Box<RawValue>>),
    /// The request's symbols were rejected (not-found error, HTTP 400/404).
    Rejected,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    response: Option<String>,
    message: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<i64>,
    param_with_error: Option<String>,
    rate_limit: Option<RateLimit>,
}

#[derive(Deserialize)]
struct RateLimit {
    calls_made: Option<BTreeMap<String, serde_json::Value>>,
    max_calls: Option<BTreeMap<String, serde_json::Value>>,
}

impl RateLimit {
    /// The longest window whose calls are used up.
    fn exhausted(&self) -> Option<Duration> {
        let (made, max) = (self.calls_made.as_ref()?, self.max_calls.as_ref()?);
        WINDOWS.iter().find_map(|(name, secs)| {
            let used = made.get(*name)?.as_u64()?;
            let limit = max.get(*name)?.as_u64()?;
            (used >= limit).then(|| Duration::from_secs(*secs))
        })
    }
}

impl CryptoCompare {
    pub fn new(
        config: &SourceConfig,
        global_proxy: Option<&RedactedUrl>,
    ) -> Result<Self, SourceError> {
        let client = SourceClient::new(ID, config, DEFAULT_BASE_URL, global_proxy)?;
        let (headers, api_key) =
            key_headers(ID, config, AUTHORIZATION, |key| format!("Apikey {key}"))?;
        Ok(Self {
            client,
            headers,
            api_key,
            max_batch: batch_size(config, ID, 50),
        })
    }

    async fn request(&self, path: &str, query: &[(&str, &str)]) -> Result<Reply, SourceError> {
        let mut url = self.client.url(path);
        url.query_pairs_mut().extend_pairs(query);
        let response = self.client.get(url, self.headers.clone()).await?;
        if let Ok(envelope) = serde_json::from_slice::<Envelope>(&response.body) {
            if envelope
                .response
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("error"))
            {
                return self.classify(&envelope);
            }
        }
        match response.status {
            StatusCode::OK => {
                let top: BTreeMap<String, Box<RawValue>> =
                    serde_json::from_slice(&response.body)
                        .map_err(|_| SourceError::malformed(ID, "the body is not a JSON object"))?;
                Ok(Reply::Found(
                    top.into_iter()
                        .map(|(k, v)| (k.to_ascii_uppercase(), v))
                        .collect(),
                ))
            }
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => Ok(Reply::Rejected),
            status => Err(SourceError::http_status(ID, status)),
        }
    }

    /// A `{"Response":"Error",…}` envelope.
    fn classify(&self, envelope: &Envelope) -> Result<Reply, SourceError> {
        let message = envelope.message.as_deref().unwrap_or("");
        let lower = message.to_ascii_lowercase();
        if envelope.kind == Some(99) || lower.contains("rate limit") {
            return Err(SourceError::RateLimited {
                from: ID,
                retry_after: envelope.rate_limit.as_ref().and_then(RateLimit::exhausted),
            });
        }
        if ["api key", "api_key", "apikey", "authorization"]
            .iter()
            .any(|k| lower.contains(k))
        {
            return Err(SourceError::refused(ID, self.clean(message)));
        }
        let bad_param = envelope
            .param_with_error
            .as_deref()
            .is_some_and(|p| ["fsym", "fsyms", "tsym", "tsyms"].contains(&p));
        if bad_param
            || lower.contains("does not exist for this coin pair")
            || lower.contains("there is no data for")
        {
            return Ok(Reply::Rejected);
        }
        Err(SourceError::upstream(ID, self.clean(message)))
    }

    fn clean(&self, message: &str) -> String {
        upstream_message(message, self.api_key.as_ref().map(|k| k.expose().trim()))
    }

    fn quote(&self, pair: &Pair, raw: Option<&RawValue>) -> Result<Quote, SourceError> {
        let raw = raw.ok_or_else(|| SourceError::not_found(ID, pair))?;
        Ok(Quote::now(price_of(ID, raw, pair)?, self.symbol(pair)))
    }

    /// Pairs grouped into `pricemulti` requests within the batch size and parameter limits.
    fn chunks<'a>(&self, pairs: &'a [Pair]) -> Vec<Vec<&'a Pair>> {
        let mut out = Vec::new();
        let mut chunk: Vec<&Pair> = Vec::new();
        let (mut fsyms, mut tsyms) = (BTreeSet::new(), BTreeSet::new());
        for pair in pairs {
            let (base, quote) = (
                pair.base.to_ascii_uppercase(),
                pair.quote.to_ascii_uppercase(),
            );
            let grows = |set: &BTreeSet<String>, s: &str| {
                let added = if set.contains(s) { 0 } else { s.len() + 1 };
                joined_len(set) + added
            };
            let fits = chunk.len() < self.max_batch
                && grows(&fsyms, &base) <= MAX_FSYMS_CHARS
                && grows(&tsyms, &quote) <= MAX_TSYMS_CHARS;
            if !fits && !chunk.is_empty() {
                out.push(std::mem::take(&mut chunk));
                fsyms.clear();
                tsyms.clear();
            }
            chunk.push(pair);
            fsyms.insert(base);
            tsyms.insert(quote);
        }
        if !chunk.is_empty() {
            out.push(chunk);
        }
        out
    }

    async fn fetch_chunk(&self, pairs: &[&Pair]) -> Result<BatchResult, SourceError> {
        let fsyms: BTreeSet<String> = pairs.iter().map(|p| p.base.to_ascii_uppercase()).collect();
        let tsyms: BTreeSet<String> = pairs.iter().map(|p| p.quote.to_ascii_uppercase()).collect();
        let (fsyms, tsyms) = (comma_joined(&fsyms), comma_joined(&tsyms));
        let mut out = BatchResult::new();
        match self
            .request("data/pricemulti", &[("fsyms", &fsyms), ("tsyms", &tsyms)])
            .await?
        {
            Reply::Found(top) => {
                for pair in pairs {
                    let cells = top
                        .get(&pair.base.to_ascii_uppercase())
                        .and_then(|raw| {
                            serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get()).ok()
                        })
                        .map(|cells| {
                            cells
                                .into_iter()
                                .map(|(k, v)| (k.to_ascii_uppercase(), v))
                                .collect::<BTreeMap<_, _>>()
                        })
                        .unwrap_or_default();
                    let raw = cells.get(&pair.quote.to_ascii_uppercase());
                    out.insert((*pair).clone(), self.quote(pair, raw.map(|r| &**r)));
                }
            }
            Reply::Rejected if pairs.len() == 1 => {
                out.insert(pairs[0].clone(), Err(SourceError::not_found(ID, pairs[0])));
            }
            Reply::Rejected => {
                for pair in pairs {
                    out.insert((*pair).clone(), self.fetch(pair).await);
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Source for CryptoCompare {
    fn id(&self) -> SourceId {
        ID
    }

    /// `BTC/USD` (fsym/tsym, uppercased).
    fn symbol(&self, pair: &Pair) -> String {
        pair.upper().to_string()
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let upper = pair.upper();
        let query = [
            ("fsym", upper.base.as_str()),
            ("tsyms", upper.quote.as_str()),
        ];
        match self.request("data/price", &query).await? {
            Reply::Found(top) => self.quote(pair, top.get(&upper.quote).map(|r| &**r)),
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
        let chunks = self.chunks(pairs);
        for chunk in &chunks {
            match self.fetch_chunk(chunk).await {
                Ok(results) => out.extend(results),
                Err(e) => {
                    failed_chunks += 1;
                    for pair in chunk {
                        out.insert((*pair).clone(), Err(e.clone()));
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

/// Length of the comma-joined list.
fn joined_len(items: &BTreeSet<String>) -> usize {
    items
        .iter()
        .map(|s| s.len() + 1)
        .sum::<usize>()
        .saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{self, pair, Answer, MockServer, Subject};

    const KEY: &str = "cc0123456789abcdef0123456789abcdef";

    fn subject() -> Subject {
        Subject::of(ID, CryptoCompare::new).key(KEY)
    }

    fn source(url: &str, extra: serde_json::Value) -> Box<dyn Source> {
        subject().source(url, extra)
    }

    fn shown(e: &SourceError) -> String {
        subject().shown(e)
    }

    async fn single_error(status: u16, body: &str) -> SourceError {
        subject().error_for(Answer::new(status, body)).await
    }

    const RATE_LIMITED: &str = r#"{"Response":"Error","Message":"You are over your rate limit please upgrade your account!","HasWarning":false,"Type":99,"RateLimit":{"calls_made":{"second":1,"minute":1,"hour":1,"day":106,"month":75771,"total_calls":75771},"max_calls":{"second":20,"minute":300,"hour":3000,"day":10000,"month":75000}},"Data":{}}"#;

    #[tokio::test]
    async fn single_price_keeps_the_exact_decimal_and_sends_the_key_in_a_header() {
        let srv =
            MockServer::scripted(vec![Answer::new(200, r#"{"USD":30801.96000000000001}"#)]).await;
        let cc = source(&srv.url, json!({}));
        let q = cc.fetch(&pair("btc-usd")).await.expect("quote");
        assert_eq!(q.price.value().to_string(), "30801.96000000000001");
        assert_eq!(q.symbol, "BTC/USD");
        let seen = &srv.seen()[0];
        assert_eq!(seen.path, "/data/price");
        assert_eq!(seen.query["fsym"], "BTC");
        assert_eq!(seen.query["tsyms"], "USD");
        assert_eq!(
            seen.headers["authorization"],
            format!("Apikey {KEY}").as_str()
        );
        assert!(!seen.query.contains_key("api_key"));
        assert!(seen.query.values().all(|v| !v.contains(KEY)));
    }

    #[tokio::test]
    async fn batch_uses_pricemulti_and_reports_every_pair() {
        let srv = MockServer::scripted(vec![Answer::new(
            200,
            r#"{"BTC":{"USD":30801.96,"ILS":114850},"ETH":{"USD":1941.88,"ILS":7235.42}}"#,
        )])
        .await;
        let cc = source(&srv.url, json!({}));
        let (pairs, out) = testing::check_batch(
            &*cc,
            &["BTC/USD", "eth/ils", "BTC/EUR", "NOPE/USD"],
            &["30801.96", "7235.42", "not_found", "not_found"],
        )
        .await;
        assert_eq!(out[&pairs[1]].as_ref().expect("eth").symbol, "ETH/ILS");
        assert_eq!(srv.hits(), 1);
        let seen = &srv.seen()[0];
        assert_eq!(seen.path, "/data/pricemulti");
        assert_eq!(seen.query["fsyms"], "BTC,ETH,NOPE");
        assert_eq!(seen.query["tsyms"], "EUR,ILS,USD");
        assert_eq!(
            seen.headers["authorization"],
            format!("Apikey {KEY}").as_str()
        );
    }

    #[tokio::test]
    async fn batches_respect_the_batch_size_and_parameter_lengths() {
        let srv = MockServer::reply(|_, seen| {
            let tsyms: Vec<&str> = seen.query["tsyms"].split(',').collect();
            let cells: Vec<String> = seen.query["fsyms"]
                .split(',')
                .map(|f| {
                    let inner: Vec<String> =
                        tsyms.iter().map(|t| format!(r#""{t}":2.5"#)).collect();
                    format!(r#""{f}":{{{}}}"#, inner.join(","))
                })
                .collect();
            Answer::new(200, format!("{{{}}}", cells.join(",")))
        })
        .await;
        let cc = source(&srv.url, json!({"maxBatchSize": 3}));
        assert_eq!(cc.max_batch(), Some(3));
        assert_eq!(source(&srv.url, json!({})).max_batch(), Some(50));
        let pairs: Vec<Pair> = (0..7).map(|i| pair(&format!("C{i}/USD"))).collect();
        let out = cc.fetch_batch(&pairs).await.expect("batch");
        assert_eq!(out.len(), 7);
        assert!(out.values().all(|r| r.is_ok()));
        assert_eq!(srv.hits(), 3);

        // Long symbols: fsyms stays within 300 characters per request.
        let srv2 = MockServer::reply(|_, _| Answer::new(200, "{}")).await;
        let cc = source(&srv2.url, json!({}));
        let long: Vec<Pair> = (0..10)
            .map(|i| pair(&format!("{}{i}/USD", "A".repeat(63))))
            .collect();
        let out = cc.fetch_batch(&long).await.expect("batch");
        assert_eq!(out.len(), 10);
        let seen = srv2.seen();
        assert!(seen.len() >= 3, "{}", seen.len());
        assert!(seen
            .iter()
            .all(|s| s.query["fsyms"].len() <= MAX_FSYMS_CHARS));
        let asked: usize = seen
            .iter()
            .map(|s| s.query["fsyms"].split(',').count())
            .sum();
        assert_eq!(asked, 10);
    }

    #[tokio::test]
    async fn a_rejected_batch_is_asked_pair_by_pair() {
        let srv = MockServer::reply(|_, seen| match seen.path.as_str() {
            "/data/pricemulti" => Answer::new(200, r#"{"Response":"Error","Message":"There is no data for the symbol XYZ .","HasWarning":false,"Type":2,"RateLimit":{},"Data":{},"ParamWithError":"fsyms"}"#),
            _ if seen.query["fsym"] == "BTC" => Answer::new(200, r#"{"USD":67123.45}"#),
            _ => Answer::new(200, r#"{"Response":"Error","Message":"cccagg_or_exchange market does not exist for this coin pair (XYZ-USD)","HasWarning":false,"Type":1,"RateLimit":{},"Data":{}}"#),
        })
        .await;
        let cc = source(&srv.url, json!({}));
        let pairs = [pair("BTC/USD"), pair("XYZ/USD")];
        let out = cc.fetch_batch(&pairs).await.expect("batch");
        assert_eq!(testing::outcomes(&out, &pairs), ["67123.45", "not_found"]);
        assert_eq!(srv.hits(), 3);
    }

    #[tokio::test]
    async fn a_rate_limited_batch_fails_the_batch() {
        let srv = MockServer::scripted(vec![Answer::new(200, RATE_LIMITED)]).await;
        let err = source(&srv.url, json!({}))
            .fetch_batch(&[pair("BTC/USD"), pair("ETH/USD")])
            .await
            .expect_err("limited");
        assert!(matches!(err, SourceError::RateLimited { .. }), "{err:?}");
        assert_eq!(srv.hits(), 1);
    }

    #[tokio::test]
    async fn rate_limit_envelopes_are_rate_limits_with_the_exhausted_window() {
        let err = single_error(200, RATE_LIMITED).await;
        assert_eq!(
            err,
            SourceError::RateLimited {
                from: ID,
                retry_after: Some(Duration::from_secs(31 * 86_400))
            }
        );
        let per_second = r#"{"Response":"Error","Message":"You are over your rate limit please upgrade your account!","HasWarning":false,"Type":99,"RateLimit":{"calls_made":{"second":20,"minute":21},"max_calls":{"second":20,"minute":300}},"Data":{}}"#;
        let err = single_error(200, per_second).await;
        assert_eq!(
            err,
            SourceError::RateLimited {
                from: ID,
                retry_after: Some(Duration::from_secs(1))
            }
        );
        let bare = r#"{"Response":"Error","Message":"Rate limit excedeed!","Type":1,"RateLimit":{},"Data":{}}"#;
        let err = single_error(200, bare).await;
        assert_eq!(
            err,
            SourceError::RateLimited {
                from: ID,
                retry_after: None
            }
        );
    }

    #[tokio::test]
    async fn unknown_pairs_are_not_found_not_upstream_errors() {
        for (status, body) in [
            (
                200,
                r#"{"Response":"Error","Message":"cccagg_or_exchange market does not exist for this coin pair (BTC-XYZ)","HasWarning":false,"Type":1,"RateLimit":{},"Data":{}}"#,
            ),
            (
                200,
                r#"{"Response":"Error","Message":"There is no data for any of the toSymbols XYZ .","HasWarning":true,"Type":2,"RateLimit":{},"Data":{},"Warning":"There is no data for the toSymbol/s XYZ ","ParamWithError":"tsyms"}"#,
            ),
            (
                400,
                r#"{"Response":"Error","Message":"There is no data for any of the toSymbols AAA .","Type":1,"Aggregated":false,"Data":[],"Warning":"There is no data for the toSymbol/s AAA ","HasWarning":true}"#,
            ),
            (
                200,
                r#"{"Response":"Error","Message":"fsym param is invalid. (fsym length is higher than maxlength: 30)","HasWarning":false,"Type":2,"RateLimit":{},"Data":{},"ParamWithError":"fsym"}"#,
            ),
            (404, "Not Found"),
            (200, r#"{"EUR":0.92}"#),
            (200, r#"{"USD":0}"#),
            (200, "{}"),
        ] {
            let err = single_error(status, body).await;
            assert!(
                matches!(err, SourceError::PairNotFound { .. }),
                "{body}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn key_errors_are_refusals_and_do_not_echo_the_key() {
        let body = format!(
            r#"{{"Response":"Error","Message":"You are using an invalid api key: {KEY}","HasWarning":false,"Type":1,"RateLimit":{{}},"Data":{{}}}}"#
        );
        let err = single_error(200, &body).await;
        assert!(matches!(err, SourceError::Refused { .. }), "{err:?}");
        assert!(shown(&err).contains("invalid api key"));
    }

    #[tokio::test]
    async fn other_error_envelopes_and_statuses_are_upstream_errors() {
        for (status, body) in [
            (
                200,
                r#"{"Response":"Error","Message":"Something went wrong on our side","HasWarning":false,"Type":1,"RateLimit":{},"Data":{}}"#,
            ),
            (418, "teapot"),
        ] {
            let err = single_error(status, body).await;
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
            &["<html>oops</html>", "[]", r#"{"USD":-1}"#, r#"{"USD":"x"}"#],
        )
        .await;
    }

    testing::transport_checks! {
        subject: subject(),
        retried: (RATE_LIMITED, r#"{"USD":5.5}"#, "5.5"),
        rate_limited: RATE_LIMITED,
        refused: &[(451, "{}"), (403, "{}"), (401, "{}")],
        slow: r#"{"USD":1}"#,
    }
}
