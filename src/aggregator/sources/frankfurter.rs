//! Frankfurter (ECB reference rates, open source):
//! `GET https://api.frankfurter.dev/v1/latest?base=EUR&symbols=USD` →
//! `{"amount":1.0,"base":"EUR","date":"2025-10-24","rates":{"USD":1.0712}}`.
//!
//! - The default base URL is the current `https://api.frankfurter.dev/v1`. The legacy
//!   `https://api.frankfurter.app` (still accepted as `baseUrl`, as are self-hosted instances)
//!   answers `301` to frankfurter.dev; the HTTP client follows redirects.
//! - Symbols: three-letter ISO codes, upper-cased; the price is `rates[QUOTE]` (a JSON number, read
//!   from its text). A code that is not three ASCII letters is `PairNotFound` without a request.
//!   The answer's `base` must be the asked base (else `Malformed`).
//! - No API key. Rates are daily (ECB working days); the aggregator's TTL decides how often to ask.
//!
//! | answer | `SourceError` |
//! |---|---|
//! | 404 `{"message":"not found"}` (unknown currency) | `PairNotFound` |
//! | 422 `{"message":"bad currency pair"}` (base = quote) | `PairNotFound` |
//! | other 422 / 4xx (`invalid amount`, bad date) | `Upstream` |
//! | 200 without the quote in `rates` | `PairNotFound` |

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::price::Price;
use crate::aggregator::sources::client::{rest_adapter, Response};
use crate::aggregator::sources::{upstream_message, Quote, Source, SourceError};
use crate::config::schema::sources::SourceId;

/// The public endpoint (`baseUrl` replaces it, e.g. with a self-hosted instance).
pub const DEFAULT_BASE_URL: &str = "https://api.frankfurter.dev/v1";

const ID: SourceId = SourceId::Frankfurter;

rest_adapter!(Frankfurter, ID, DEFAULT_BASE_URL);

/// An ISO 4217 code as Frankfurter knows them: three ASCII letters, upper-cased.
fn currency(code: &str) -> Option<String> {
    (code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

#[derive(Deserialize)]
struct Body<'a> {
    base: Option<String>,
    #[serde(borrow)]
    rates: Option<BTreeMap<String, &'a RawValue>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

fn parse(pair: &Pair, base: &str, quote: &str, response: &Response) -> Result<Quote, SourceError> {
    let status = response.status;
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&response.body)
            .ok()
            .and_then(|b| b.message)
            .unwrap_or_default();
        return Err(match status {
            StatusCode::NOT_FOUND => SourceError::not_found(ID, pair),
            StatusCode::UNPROCESSABLE_ENTITY if message == "bad currency pair" => {
                SourceError::not_found(ID, pair)
            }
            _ => SourceError::upstream(
                ID,
                upstream_message(&format!("HTTP {status} {message}"), None),
            ),
        });
    }
    let body: Body<'_> = serde_json::from_slice(&response.body)
        .map_err(|e| SourceError::malformed(ID, format!("not a /latest answer: {e}")))?;
    let rates = body
        .rates
        .ok_or_else(|| SourceError::malformed(ID, "no \"rates\" object"))?;
    if let Some(answered) = body.base.as_deref() {
        if !answered.eq_ignore_ascii_case(base) {
            return Err(SourceError::malformed(
                ID,
                upstream_message(&format!("asked for base {base}, got {answered}"), None),
            ));
        }
    }
    let raw = match rates.get(quote) {
        Some(raw) if raw.get().trim() != "null" => *raw,
        _ => return Err(SourceError::not_found(ID, pair)),
    };
    let price = Price::from_json(raw)
        .map_err(|e| SourceError::malformed(ID, format!("rates.{quote}: {e}")))?;
    Ok(Quote::now(price, format!("{base}/{quote}")))
}

#[async_trait]
impl Source for Frankfurter {
    fn id(&self) -> SourceId {
        ID
    }

    /// `EUR/USD` (Frankfurter takes base and quote as separate parameters).
    fn symbol(&self, pair: &Pair) -> String {
        pair.upper().to_string()
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let (Some(base), Some(quote)) = (currency(&pair.base), currency(&pair.quote)) else {
            return Err(SourceError::not_found(ID, pair));
        };
        let mut url = self.client.url("latest");
        url.query_pairs_mut()
            .append_pair("base", &base)
            .append_pair("symbols", &quote);
        let response = self.client.get(url, HeaderMap::new()).await?;
        parse(pair, &base, &quote, &response)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{self, config, pair_of, Answer, MockServer, Subject};

    /// Frankfurter's documented answers (ocr-and-sources.md B.10, frankfurter lib/versions/v1).
    const LATEST_OK: &str =
        r#"{"amount":1.0,"base":"USD","date":"2026-07-29","rates":{"EUR":0.85911}}"#;
    const NOT_FOUND: &str = r#"{"message":"not found"}"#;
    const BAD_PAIR: &str = r#"{"message":"bad currency pair"}"#;

    fn adapter(url: &str, extra: serde_json::Value) -> Frankfurter {
        testing::adapter(Frankfurter::new, ID, url, extra)
    }

    fn subject() -> Subject {
        Subject::of(ID, Frankfurter::new).pair(pair_of("USD", "EUR"))
    }

    #[tokio::test]
    async fn latest_rate_is_read_exactly() {
        let srv = MockServer::always(Answer::new(200, LATEST_OK)).await;
        let source = adapter(&srv.url, json!({}));
        let quote = source.fetch(&pair_of("usd", "eur")).await.expect("quote");
        assert_eq!(quote.price.value().to_string(), "0.85911");
        assert_eq!(quote.symbol, "USD/EUR");
        assert_eq!(source.symbol(&pair_of("usd", "eur")), "USD/EUR");
        let seen = srv.seen();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].uri.starts_with("/latest?"), "{}", seen[0].uri);
        let query = &seen[0].query;
        assert_eq!(query.get("base").map(String::as_str), Some("USD"));
        assert_eq!(query.get("symbols").map(String::as_str), Some("EUR"));

        let body = r#"{"amount":1.0,"base":"EUR","date":"2025-10-24","rates":{"USD":1.071234567890123456789}}"#;
        let url = testing::answering(200, body).await;
        let quote = adapter(&url, json!({}))
            .fetch(&pair_of("EUR", "USD"))
            .await
            .expect("quote");
        assert_eq!(quote.price.value().to_string(), "1.071234567890123456789");
    }

    #[test]
    fn the_default_endpoint_is_the_current_v1() {
        let source = Frankfurter::new(&config(ID, json!({})), None).expect("adapter");
        assert_eq!(
            source.client.url("latest").as_str(),
            "https://api.frankfurter.dev/v1/latest"
        );
    }

    /// The legacy host answers 301 to `/v1/…` on frankfurter.dev; the redirect is followed.
    #[tokio::test]
    async fn the_legacy_redirect_is_followed() {
        let srv = MockServer::reply(|_, seen| match seen.path.as_str() {
            "/latest" => {
                Answer::new(301, "").header("location", format!("/v1/latest?{}", seen.raw_query))
            }
            "/v1/latest" => Answer::new(200, LATEST_OK),
            _ => Answer::new(404, ""),
        })
        .await;
        let quote = adapter(&srv.url, json!({}))
            .fetch(&pair_of("USD", "EUR"))
            .await
            .expect("quote");
        assert_eq!(quote.price.value().to_string(), "0.85911");
        let seen = srv.seen();
        let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["/latest", "/v1/latest"]);
        assert_eq!(seen[1].query.get("base").map(String::as_str), Some("USD"));
    }

    #[tokio::test]
    async fn unknown_currencies_and_same_currency_are_not_found() {
        for (status, body) in [(404, NOT_FOUND), (422, BAD_PAIR)] {
            let url = testing::answering(status, body).await;
            let err = adapter(&url, json!({}))
                .fetch(&pair_of("EUR", "XYZ"))
                .await
                .expect_err(body);
            assert_eq!(
                err,
                SourceError::PairNotFound {
                    from: ID,
                    pair: "EUR/XYZ".into()
                }
            );
        }
        // 200 without the asked quote.
        let url = testing::answering(200, LATEST_OK).await;
        let err = adapter(&url, json!({}))
            .fetch(&pair_of("USD", "GBP"))
            .await
            .expect_err("error");
        assert_eq!(err.kind(), "not_found");
    }

    #[tokio::test]
    async fn other_client_errors_are_upstream_errors() {
        for (status, body) in [
            (422, r#"{"message":"invalid amount"}"#),
            (400, "bad"),
            (405, ""),
        ] {
            let url = testing::answering(status, body).await;
            let err = adapter(&url, json!({}))
                .fetch(&pair_of("USD", "EUR"))
                .await
                .expect_err(body);
            assert_eq!(err.kind(), "upstream_error", "{status} {body} -> {err:?}");
        }
        let url = testing::answering(422, r#"{"message":"invalid amount"}"#).await;
        let err = adapter(&url, json!({}))
            .fetch(&pair_of("USD", "EUR"))
            .await
            .expect_err("error");
        assert!(err.to_string().contains("invalid amount"), "{err}");
    }

    #[tokio::test]
    async fn impossible_codes_cost_no_request() {
        testing::check_not_found_without_request(
            &subject(),
            LATEST_OK,
            &[("USDT", "EUR"), ("EUR", "E"), ("bitcoin", "usd")],
        )
        .await;
    }

    #[tokio::test]
    async fn bodies_that_are_not_the_documented_shape_are_malformed() {
        testing::check_malformed(
            &subject(),
            &[
                "<html>oops</html>",
                r#"{"amount":1.0,"base":"USD","date":"2026-07-29"}"#,
                r#"{"amount":1.0,"base":"EUR","date":"2026-07-29","rates":{"EUR":0.85911}}"#,
                r#"{"amount":1.0,"base":"USD","rates":{"EUR":-1}}"#,
                r#"{"amount":1.0,"base":"USD","rates":{"EUR":"x"}}"#,
            ],
        )
        .await;
    }

    testing::transport_checks! {
        subject: subject(),
        retried: ("", LATEST_OK, "0.85911"),
        rate_limited: "",
        refused: &[(451, "blocked"), (403, "blocked")],
        slow: LATEST_OK,
    }

    #[tokio::test]
    async fn no_batch_and_no_instrument_list() {
        testing::check_no_batch_no_instruments(&subject()).await;
    }
}
