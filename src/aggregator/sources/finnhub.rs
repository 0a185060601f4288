//! Finnhub: `GET {base}/quote?symbol=BINANCE:BTCUSDT` →
//! `{"c":67123.4,"d":120.5,"dp":0.18,"h":67500,"l":66800,"o":67000,"pc":67002.9,"t":1729766400}`
//! (`c` = current price). No batch endpoint (one symbol per call).
//!
//! - **Symbols**: the reference's rule, crypto on Binance: `BINANCE:` + upper(base + quote)
//!   (`BTC/USDT` → `BINANCE:BTCUSDT`), so pairs use Binance's quote currencies (USDT, not USD).
//! - **API key**: the documented `X-Finnhub-Token` header (marked sensitive), not the `token`
//!   query parameter, so the key never sits in a URL.
//! - **Errors**: an unknown or uncovered symbol is HTTP 200 with an all-zero quote
//!   `{"c":0,"d":null,"dp":null,"h":0,"l":0,"o":0,"pc":0,"t":0}` → `PairNotFound` (as is a
//!   `null` current price). Auth and limit failures are non-2xx with `{"error":"…"}`: 401/403 →
//!   `Refused` and 429 → `RateLimited` (the shared client); an `{"error":"…"}` under any other
//!   status (200 included) is read by its text: "…limit…" → `RateLimited`; API key / token /
//!   access / plan → `Refused`; "…symbol…" → `PairNotFound`; else `Upstream`. A body without `c`
//!   is `Malformed`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::sources::client::SourceClient;
use crate::aggregator::sources::{
    key_headers, price_of, upstream_message, Quote, Source, SourceError,
};
use crate::config::schema::sources::{SourceConfig, SourceId};
use crate::config::secret::Secret;
use crate::config::values::RedactedUrl;

pub const DEFAULT_BASE_URL: &str = "https://finnhub.io/api/v1";
pub const TOKEN_HEADER: &str = "x-finnhub-token";
/// The exchange prefix of crypto symbols.
pub const EXCHANGE: &str = "BINANCE";

const ID: SourceId = SourceId::Finnhub;

pub struct Finnhub {
    client: SourceClient,
    headers: HeaderMap,
    api_key: Option<Secret<String>>,
}

impl Finnhub {
    pub fn new(
        config: &SourceConfig,
        global_proxy: Option<&RedactedUrl>,
    ) -> Result<Self, SourceError> {
        let client = SourceClient::new(ID, config, DEFAULT_BASE_URL, global_proxy)?;
        let (headers, api_key) = key_headers(ID, config, TOKEN_HEADER, str::to_owned)?;
        Ok(Self {
            client,
            headers,
            api_key,
        })
    }

    /// An `{"error":"…"}` message, judged by its text.
    fn judge_message(&self, pair: &Pair, status: StatusCode, message: &str) -> SourceError {
        let lower = message.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        if has(&["limit"]) {
            SourceError::rate_limited(ID)
        } else if has(&[
            "api key",
            "apikey",
            "token",
            "access",
            "subscription",
            "plan",
            "premium",
            "permission",
        ]) {
            SourceError::refused(ID, self.clean(message))
        } else if has(&["symbol"]) {
            SourceError::not_found(ID, pair)
        } else {
            SourceError::upstream(ID, format!("HTTP {status}: {}", self.clean(message)))
        }
    }

    fn clean(&self, message: &str) -> String {
        upstream_message(message, self.api_key.as_ref().map(|k| k.expose().trim()))
    }
}

#[async_trait]
impl Source for Finnhub {
    fn id(&self) -> SourceId {
        ID
    }

    /// `BINANCE:BTCUSDT`.
    fn symbol(&self, pair: &Pair) -> String {
        let upper = pair.upper();
        format!("{EXCHANGE}:{}{}", upper.base, upper.quote)
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let symbol = self.symbol(pair);
        let mut url = self.client.url("quote");
        url.query_pairs_mut().append_pair("symbol", &symbol);
        let response = self.client.get(url, self.headers.clone()).await?;
        let top: Option<BTreeMap<String, Box<RawValue>>> =
            serde_json::from_slice(&response.body).ok();
        let message = top
            .as_ref()
            .and_then(|t| t.get("error"))
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        if let Some(message) = message {
            return Err(self.judge_message(pair, response.status, &message));
        }
        if response.status != StatusCode::OK {
            return Err(SourceError::http_status(ID, response.status));
        }
        let top = top.ok_or_else(|| SourceError::malformed(ID, "the body is not a JSON object"))?;
        let current = top
            .get("c")
            .ok_or_else(|| SourceError::malformed(ID, "no current price `c`"))?;
        Ok(Quote::now(price_of(ID, current, pair)?, symbol))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{self, pair, Answer, MockServer, Subject};

    const KEY: &str = "fh-c0ffee0123456789";

    fn subject() -> Subject {
        Subject::of(ID, Finnhub::new)
            .pair(pair("BTC/USDT"))
            .key(KEY)
    }

    /// The adapter against a test server (`url` plays the host; the API path is Finnhub's).
    fn source(url: &str, extra: serde_json::Value) -> Box<dyn Source> {
        subject().source(&format!("{url}/api/v1"), extra)
    }

    async fn error_for(status: u16, body: &str) -> SourceError {
        subject().error_for(Answer::new(status, body)).await
    }

    #[tokio::test]
    async fn quote_keeps_the_exact_decimal_and_sends_the_token_header() {
        let srv = MockServer::scripted(vec![Answer::new(
            200,
            r#"{"c":67123.40000000001,"d":120.5,"dp":0.18,"h":67500,"l":66800,"o":67000,"pc":67002.9,"t":1729766400}"#,
        )])
        .await;
        let fh = source(&srv.url, json!({}));
        let q = fh.fetch(&pair("btc-usdt")).await.expect("quote");
        assert_eq!(q.price.value().to_string(), "67123.40000000001");
        assert_eq!(q.symbol, "BINANCE:BTCUSDT");
        let seen = &srv.seen()[0];
        assert_eq!(seen.path, "/api/v1/quote");
        assert_eq!(seen.query["symbol"], "BINANCE:BTCUSDT");
        assert_eq!(seen.headers[TOKEN_HEADER], KEY);
        assert!(!seen.query.contains_key("token"));
        assert!(seen.query.values().all(|v| !v.contains(KEY)));
        assert_eq!(fh.max_batch(), None);
    }

    #[tokio::test]
    async fn the_documented_stock_quote_parses() {
        let srv = MockServer::scripted(vec![Answer::new(
            200,
            r#"{"c":261.74,"h":263.31,"l":260.68,"o":261.07,"pc":259.45,"t":1582641000}"#,
        )])
        .await;
        let q = source(&srv.url, json!({}))
            .fetch(&pair("ETH/USDT"))
            .await
            .expect("quote");
        assert_eq!(q.price.to_string(), "261.74");
    }

    #[tokio::test]
    async fn the_all_zero_quote_is_not_found() {
        for body in [
            r#"{"c":0,"d":null,"dp":null,"h":0,"l":0,"o":0,"pc":0,"t":0}"#,
            r#"{"c":null,"d":null,"dp":null,"h":null,"l":null,"o":null,"pc":null,"t":0}"#,
        ] {
            let err = error_for(200, body).await;
            assert_eq!(
                err,
                SourceError::PairNotFound {
                    from: ID,
                    pair: "BTC/USDT".into()
                },
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn error_messages_are_judged_by_their_text() {
        let cases: [(u16, &str, &str); 6] = [
            (
                200,
                r#"{"error":"API limit reached. Please try again later. Remaining Limit: 0"}"#,
                "rate_limited",
            ),
            (400, r#"{"error":"Invalid API key."}"#, "refused"),
            (
                200,
                r#"{"error":"You don't have access to this resource."}"#,
                "refused",
            ),
            (422, r#"{"error":"Symbol not supported."}"#, "not_found"),
            (400, r#"{"error":"Wrong resolution"}"#, "upstream_error"),
            (200, r#"{"error":"Internal error"}"#, "upstream_error"),
        ];
        for (status, body, kind) in cases {
            let err = error_for(status, body).await;
            assert_eq!(err.kind(), kind, "{status} {body}: {err:?}");
        }
    }

    #[tokio::test]
    async fn the_documented_auth_and_limit_statuses_are_refused_and_rate_limited() {
        let err = error_for(401, r#"{"error":"Invalid API key"}"#).await;
        assert!(matches!(err, SourceError::Refused { .. }), "{err:?}");
        let err = error_for(
            429,
            r#"{"error":"API limit reached. Please try again later. Remaining Limit: 0"}"#,
        )
        .await;
        assert!(matches!(err, SourceError::RateLimited { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn other_statuses_are_upstream_errors() {
        for status in [404, 418] {
            let err = error_for(status, "Not Found").await;
            assert!(
                matches!(err, SourceError::Upstream { .. }),
                "{status}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn garbage_and_bad_prices_are_malformed() {
        testing::check_malformed(
            &subject(),
            &[
                "<html>",
                "[0]",
                r#"{"d":1}"#,
                r#"{"c":-5,"t":1}"#,
                r#"{"c":"abc"}"#,
            ],
        )
        .await;
    }

    const LIMIT_REACHED: &str =
        r#"{"error":"API limit reached. Please try again later. Remaining Limit: 0"}"#;

    const BLOCKED: &str = r#"{"error":"blocked"}"#;

    testing::transport_checks! {
        subject: subject(),
        retried: (LIMIT_REACHED, r#"{"c":3.25,"t":1}"#, "3.25"),
        rate_limited: LIMIT_REACHED,
        refused: &[(451, BLOCKED), (403, BLOCKED)],
        slow: r#"{"c":1,"t":1}"#,
    }

    #[tokio::test]
    async fn upstream_messages_never_echo_the_key() {
        let err = error_for(200, &format!(r#"{{"error":"Invalid API key {KEY}"}}"#)).await;
        assert!(matches!(err, SourceError::Refused { .. }), "{err:?}");
        assert!(subject().shown(&err).contains("Invalid API key ***"));
    }
}
