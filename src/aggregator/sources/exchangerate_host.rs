//! exchangerate.host (an APILayer product, currencylayer-compatible):
//! `GET https://api.exchangerate.host/live?source=EUR&currencies=USD[&access_key=K]`.
//!
//! - Symbols: ISO-style three-letter codes, upper-cased; the price of `EUR/USD` is `quotes["EURUSD"]`
//!   (a JSON number, read from its text). A base or quote that is not three ASCII letters cannot
//!   exist upstream and is answered `PairNotFound` without spending a request (the free plan has
//!   100 requests a month).
//! - `access_key` goes in the query only when an API key is configured. It never appears in an
//!   error: the client strips URLs, and upstream messages are scrubbed of it here.
//! - Errors come as HTTP 200 `{"success":false,"error":{"code":N,"type":…,"info":…}}`, so the body
//!   is checked, never only the status:
//!
//! | `error.code` | meaning | `SourceError` |
//! |---|---|---|
//! | 101, 102 | missing/invalid key, inactive account | `Refused` |
//! | 103, 106, 404 | no such function/resource, no results | `PairNotFound` |
//! | 201, 202 | invalid source / currency codes | `PairNotFound` |
//! | 104 | monthly request allowance used up | `RateLimited` (no `Retry-After`) |
//! | 105 | not on the subscription plan (e.g. source switching) | `Refused` |
//! | anything else | | `Upstream` |

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::price::Price;
use crate::aggregator::sources::client::{rest_adapter, Response};
use crate::aggregator::sources::{upstream_message, Quote, Source, SourceError};
use crate::config::schema::sources::SourceId;
use crate::config::secret::Secret;

/// The public endpoint (`baseUrl` replaces it).
pub const DEFAULT_BASE_URL: &str = "https://api.exchangerate.host";

const ID: SourceId = SourceId::ExchangeRateHost;

rest_adapter!(
    ExchangeRateHost,
    ID,
    DEFAULT_BASE_URL,
    |config| api_key: Option<Secret<String>> = config.api_key.clone(),
);

impl ExchangeRateHost {
    /// An upstream message fit for an error: without the API key (as sent), bounded in length.
    fn scrub(&self, text: &str) -> String {
        upstream_message(text, self.api_key.as_ref().map(|k| k.expose().as_str()))
    }

    fn parse(&self, pair: &Pair, symbol: &str, response: &Response) -> Result<Quote, SourceError> {
        let body: Body<'_> = response.envelope_or(ID, |e| {
            SourceError::malformed(ID, format!("not a /live answer: {e}"))
        })?;
        if body.success == Some(false) || body.error.is_some() {
            return Err(self.in_band_error(pair, body.error.as_ref()));
        }
        response.require_success(ID)?;
        if body.success != Some(true) {
            return Err(SourceError::malformed(ID, "no \"success\" flag"));
        }
        let quotes = body
            .quotes
            .ok_or_else(|| SourceError::malformed(ID, "no \"quotes\" object"))?;
        let raw = match quotes.get(symbol) {
            Some(raw) if raw.get().trim() != "null" => *raw,
            _ => return Err(SourceError::not_found(ID, pair)),
        };
        let price = Price::from_json(raw)
            .map_err(|e| SourceError::malformed(ID, format!("quotes.{symbol}: {e}")))?;
        Ok(Quote::now(price, symbol))
    }

    /// `success:false`: the error code decides the kind (table in the module documentation).
    fn in_band_error(&self, pair: &Pair, error: Option<&ApiError>) -> SourceError {
        let Some(error) = error else {
            return SourceError::upstream(ID, "success:false without an error object");
        };
        let code = error.code.as_ref().and_then(code_number);
        let reason = self.scrub(&format!(
            "{} {}: {}",
            code.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
            error.kind.as_deref().unwrap_or(""),
            error.info.as_deref().unwrap_or(""),
        ));
        match code {
            Some(101 | 102 | 105) => SourceError::refused(ID, reason),
            Some(103 | 106 | 404 | 201 | 202) => SourceError::not_found(ID, pair),
            Some(104) => SourceError::rate_limited(ID),
            _ => SourceError::upstream(ID, reason),
        }
    }
}

/// `error.code` as a number (documented as an integer; a numeric string is accepted too).
fn code_number(code: &serde_json::Value) -> Option<i64> {
    match code {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A currency code as exchangerate.host knows them: three ASCII letters, upper-cased.
fn currency(code: &str) -> Option<String> {
    (code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

#[derive(Deserialize)]
struct Body<'a> {
    success: Option<bool>,
    error: Option<ApiError>,
    #[serde(borrow)]
    quotes: Option<BTreeMap<String, &'a RawValue>>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
    info: Option<String>,
}

#[async_trait]
impl Source for ExchangeRateHost {
    fn id(&self) -> SourceId {
        ID
    }

    /// `EURUSD`: the key of the price in `quotes`.
    fn symbol(&self, pair: &Pair) -> String {
        let upper = pair.upper();
        format!("{}{}", upper.base, upper.quote)
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let (Some(source), Some(target)) = (currency(&pair.base), currency(&pair.quote)) else {
            return Err(SourceError::not_found(ID, pair));
        };
        let mut url = self.client.url("live");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("source", &source);
            query.append_pair("currencies", &target);
            if let Some(key) = &self.api_key {
                query.append_pair("access_key", key.expose());
            }
        }
        let response = self.client.get(url, HeaderMap::new()).await?;
        self.parse(pair, &format!("{source}{target}"), &response)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{self, pair_of, Answer, MockServer, Subject};

    /// exchangerate.host's documented answers (ocr-and-sources.md B.9).
    const LIVE_OK: &str = r#"{"success":true,"terms":"https://currencylayer.com/terms","privacy":"https://currencylayer.com/privacy","timestamp":1743009363,"source":"USD","quotes":{"USDEUR":0.89851,"USDGBP":0.822435}}"#;
    const MISSING_KEY: &str = r#"{"success":false,"error":{"code":101,"type":"missing_access_key","info":"You have not supplied an API Access Key. [Required format: access_key=YOUR_ACCESS_KEY]"}}"#;
    const KEY: &str = "s3cr3t-key-42";

    fn error_body(code: i64, kind: &str, info: &str) -> String {
        json!({"success": false, "error": {"code": code, "type": kind, "info": info}}).to_string()
    }

    fn adapter(url: &str, extra: serde_json::Value) -> ExchangeRateHost {
        testing::adapter(ExchangeRateHost::new, ID, url, extra)
    }

    fn subject() -> Subject {
        Subject::of(ID, ExchangeRateHost::new)
            .pair(pair_of("USD", "EUR"))
            .key(KEY)
    }

    #[tokio::test]
    async fn live_quote_is_read_exactly_and_without_a_key_none_is_sent() {
        let srv = MockServer::always(Answer::new(200, LIVE_OK)).await;
        let source = adapter(&srv.url, json!({}));
        let quote = source.fetch(&pair_of("usd", "eur")).await.expect("quote");
        assert_eq!(quote.price.value().to_string(), "0.89851");
        assert_eq!(quote.symbol, "USDEUR");
        assert_eq!(source.symbol(&pair_of("usd", "eur")), "USDEUR");
        let seen = srv.seen();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].uri.starts_with("/live?"), "{}", seen[0].uri);
        let query = &seen[0].query;
        assert_eq!(query.get("source").map(String::as_str), Some("USD"));
        assert_eq!(query.get("currencies").map(String::as_str), Some("EUR"));
        assert!(!query.contains_key("access_key"), "{query:?}");
    }

    #[tokio::test]
    async fn digits_beyond_f64_survive() {
        let body = r#"{"success":true,"timestamp":1729766400,"source":"EUR","quotes":{"EURUSD":1.071234567890123456789}}"#;
        let url = testing::answering(200, body).await;
        let quote = adapter(&url, json!({}))
            .fetch(&pair_of("EUR", "USD"))
            .await
            .expect("quote");
        assert_eq!(quote.price.value().to_string(), "1.071234567890123456789");
    }

    #[tokio::test]
    async fn the_key_goes_in_the_query_and_never_into_errors() {
        // The upstream message even echoes the key back: it must not reach the error.
        let body = error_body(999, "odd_error", &format!("something about {KEY}"));
        let srv = MockServer::always(Answer::new(200, body)).await;
        let source = adapter(&srv.url, json!({"apiKey": KEY}));
        let err = source
            .fetch(&pair_of("EUR", "USD"))
            .await
            .expect_err("error");
        assert!(matches!(err, SourceError::Upstream { .. }), "{err:?}");
        assert_eq!(
            srv.seen()[0].query.get("access_key").map(String::as_str),
            Some(KEY)
        );
        assert!(!err.to_string().contains(KEY), "{err}");
        assert!(!format!("{err:?}").contains(KEY), "{err:?}");

        // A transport error (nobody listening) carries no URL, hence no key either.
        testing::check_unreachable(&subject()).await;
    }

    #[tokio::test]
    async fn success_false_codes_map_to_their_kinds() {
        let cases: Vec<(String, &str)> = vec![
            (MISSING_KEY.to_owned(), "refused"),
            (
                error_body(
                    101,
                    "invalid_access_key",
                    "You have not supplied a valid API Access Key.",
                ),
                "refused",
            ),
            (
                error_body(
                    102,
                    "inactive_user",
                    "The current user account is not active.",
                ),
                "refused",
            ),
            (
                error_body(
                    103,
                    "invalid_api_function",
                    "This API Function does not exist.",
                ),
                "not_found",
            ),
            (
                error_body(
                    104,
                    "usage_limit_reached",
                    "Your monthly usage limit has been reached.",
                ),
                "rate_limited",
            ),
            (
                error_body(
                    105,
                    "function_access_restricted",
                    "Source Currency Switching is not supported.",
                ),
                "refused",
            ),
            (
                error_body(
                    106,
                    "no_rates_available",
                    "Your query did not return any results.",
                ),
                "not_found",
            ),
            (
                error_body(
                    201,
                    "invalid_source_currency",
                    "You have supplied an invalid Source Currency.",
                ),
                "not_found",
            ),
            (
                error_body(
                    202,
                    "invalid_currency_codes",
                    "You have provided one or more invalid Currency Codes.",
                ),
                "not_found",
            ),
            (
                error_body(
                    404,
                    "404_not_found",
                    "The requested resource does not exist.",
                ),
                "not_found",
            ),
            (
                error_body(301, "invalid_date", "You have entered an invalid date."),
                "upstream_error",
            ),
            (r#"{"success":false}"#.to_owned(), "upstream_error"),
        ];
        for (body, kind) in cases {
            let url = testing::answering(200, body.clone()).await;
            let err = adapter(&url, json!({}))
                .fetch(&pair_of("EUR", "USD"))
                .await
                .expect_err(&body);
            assert_eq!(err.kind(), kind, "{body} -> {err:?}");
            if let SourceError::RateLimited { retry_after, .. } = err {
                assert_eq!(retry_after, None);
            }
        }
        // The same envelope on a non-200 status is read the same way.
        let url = testing::answering(400, MISSING_KEY).await;
        let err = adapter(&url, json!({}))
            .fetch(&pair_of("EUR", "USD"))
            .await
            .expect_err("error");
        assert_eq!(err.kind(), "refused", "{err:?}");
    }

    #[tokio::test]
    async fn a_currency_missing_from_quotes_is_not_found() {
        let url = testing::answering(200, LIVE_OK).await;
        let err = adapter(&url, json!({}))
            .fetch(&pair_of("USD", "JPY"))
            .await
            .expect_err("error");
        assert_eq!(
            err,
            SourceError::PairNotFound {
                from: ID,
                pair: "USD/JPY".into()
            }
        );
        let body = r#"{"success":true,"source":"USD","quotes":{"USDJPY":null}}"#;
        let url = testing::answering(200, body).await;
        let err = adapter(&url, json!({}))
            .fetch(&pair_of("USD", "JPY"))
            .await
            .expect_err("error");
        assert_eq!(err.kind(), "not_found");
    }

    #[tokio::test]
    async fn impossible_codes_cost_no_request() {
        testing::check_not_found_without_request(
            &subject(),
            LIVE_OK,
            &[
                ("BTCX", "USD"),
                ("EUR", "US"),
                ("E1R", "USD"),
                ("stader-bnbx", "usd"),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn bodies_that_are_not_the_documented_shape_are_malformed() {
        testing::check_malformed(
            &subject(),
            &[
                "<html>oops</html>",
                r#"{"success":true,"source":"USD"}"#,
                r#"{"source":"USD","quotes":{"USDEUR":0.9}}"#,
                r#"{"success":true,"quotes":{"USDEUR":0}}"#,
                r#"{"success":true,"quotes":{"USDEUR":"abc"}}"#,
            ],
        )
        .await;
        // Garbage with an error status is the status's error.
        let url = testing::answering(404, "<html>no</html>").await;
        let err = adapter(&url, json!({}))
            .fetch(&pair_of("USD", "EUR"))
            .await
            .expect_err("error");
        assert_eq!(err.kind(), "upstream_error", "{err:?}");
    }

    testing::transport_checks! {
        subject: subject(),
        retried: ("", LIVE_OK, "0.822435") for pair_of("USD", "GBP"),
        rate_limited: "Too Many Requests",
        refused: &[(451, "blocked"), (403, "blocked"), (401, "blocked")],
        slow: LIVE_OK,
    }

    #[tokio::test]
    async fn no_batch_and_no_instrument_list() {
        testing::check_no_batch_no_instruments(&subject()).await;
    }
}
