//! Coinbase App API v2 public prices: `GET /v2/prices/BTC-USD/spot` →
//! `{"data":{"amount":"…","base":"BTC","currency":"USD"}}` (the reference's endpoint). Default
//! host `https://api.coinbase.com`; `baseUrl` overrides it. No batch endpoint, no instrument
//! list (the v2 API lists currencies, not pairs).
//!
//! Symbols are `BASE-QUOTE` upper-cased (`btc/usd` → `BTC-USD`). Errors come as
//! `{"errors":[{"id":…,"message":…}]}`: on HTTP 400/404 (or in a 200 body) ids `not_found`,
//! `invalid_request`, `validation_error` (e.g. `Invalid currency (X)`) → not found, the pair
//! being the request's only input; `rate_limit_exceeded` → rate limited; authentication ids →
//! refused; anything else → upstream error. A 4xx without Coinbase's error body is an upstream
//! error (a wrong `baseUrl` must not deregister every pair).
//!
//! The API key, if configured, is not sent: prices are public, and Coinbase's authenticated
//! API needs a signed JWT that a key alone cannot give.

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::sources::client::rest_adapter;
use crate::aggregator::sources::{clip, exchange_price, Quote, Source, SourceError};
use crate::config::schema::sources::SourceId;

const ID: SourceId = SourceId::Coinbase;

/// The public endpoint used when the configuration gives no `baseUrl`.
pub const DEFAULT_BASE_URL: &str = "https://api.coinbase.com";

rest_adapter!(Coinbase, ID, DEFAULT_BASE_URL);

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    data: Option<Spot<'a>>,
    errors: Option<Vec<ApiError>>,
}

#[derive(Deserialize)]
struct Spot<'a> {
    #[serde(borrow)]
    amount: &'a RawValue,
    base: String,
    currency: String,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

/// The symbol of a pair: `BASE-QUOTE` upper-cased, the product id (`BTC-USD`).
/// The stream's topics use it too.
pub(crate) fn symbol(pair: &Pair) -> String {
    format!("{}-{}", pair.base, pair.quote).to_ascii_uppercase()
}

#[async_trait]
impl Source for Coinbase {
    fn id(&self) -> SourceId {
        ID
    }

    fn symbol(&self, pair: &Pair) -> String {
        symbol(pair)
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let symbol = self.symbol(pair);
        // The symbol is [A-Z0-9._-] with a '-' in it: safe as one path segment.
        let url = self.client.url(&format!("/v2/prices/{symbol}/spot"));
        let response = self.client.get(url, HeaderMap::new()).await?;
        let answer: Answer<'_> = response.envelope(ID)?;
        if let Some(errors) = answer.errors.as_deref().filter(|e| !e.is_empty()) {
            return Err(in_band(response.status, errors, pair));
        }
        response.require_success(ID)?;
        let spot = answer
            .data
            .ok_or_else(|| SourceError::malformed_clipped(ID, "no data"))?;
        if !spot.base.eq_ignore_ascii_case(&pair.base)
            || !spot.currency.eq_ignore_ascii_case(&pair.quote)
        {
            return Err(SourceError::malformed_clipped(
                ID,
                format!(
                    "asked {symbol}, got {}-{}",
                    clip(&spot.base),
                    clip(&spot.currency)
                ),
            ));
        }
        let price = exchange_price(ID, spot.amount, pair, "amount")?;
        Ok(Quote::now(price, symbol))
    }
}

/// Coinbase's `errors[]` ids.
fn in_band(status: StatusCode, errors: &[ApiError], pair: &Pair) -> SourceError {
    let has = |ids: &[&str]| errors.iter().any(|e| ids.contains(&e.id.as_str()));
    let described = || {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.id, e.message))
            .collect();
        clip(&format!("HTTP {status}: {}", parts.join("; ")))
    };
    if has(&["rate_limit_exceeded"]) {
        SourceError::rate_limited(ID)
    } else if has(&[
        "authentication_error",
        "invalid_token",
        "expired_token",
        "revoked_token",
        "invalid_scope",
        "personal_details_required",
        "unverified_email",
    ]) {
        SourceError::refused(ID, described())
    } else if has(&["not_found", "invalid_request", "validation_error"])
        && !status.is_server_error()
    {
        SourceError::not_found(ID, pair)
    } else {
        SourceError::upstream(ID, described())
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;

    use super::*;
    use crate::aggregator::sources::testing::{self, answering, dec, pair, Answer, Subject};

    /// Live capture (ocr-and-sources.md B.5).
    const BTC: &str = r#"{"data":{"amount":"83894.035","base":"BTC","currency":"USD"}}"#;
    const INVALID: &str =
        r#"{"errors":[{"id":"invalid_request","message":"Invalid currency (FOO)"}]}"#;
    const NOT_FOUND: &str = r#"{"errors":[{"id":"not_found","message":"Invalid currency"}]}"#;
    const TOO_MANY: &str =
        r#"{"errors":[{"id":"rate_limit_exceeded","message":"Too many requests"}]}"#;
    const KEY: &str = "coinbase-key-5ecr3t";

    fn source(url: &str) -> Coinbase {
        testing::adapter(Coinbase::new, ID, url, serde_json::json!({}))
    }

    fn subject() -> Subject {
        Subject::of(ID, Coinbase::new).key(KEY)
    }

    #[tokio::test]
    async fn spot_price_keeps_the_exact_decimal() {
        let router = Router::new().route(
            "/v2/prices/{symbol}/spot",
            get(|Path(symbol): Path<String>| async move {
                match symbol.as_str() {
                    "BTC-USD" => (StatusCode::OK, BTC),
                    _ => (StatusCode::BAD_REQUEST, INVALID),
                }
            }),
        );
        let s = source(&testing::serve(router).await);
        assert!(s.max_batch().is_none());
        let q = s.fetch(&pair("btc-usd")).await.expect("quote");
        assert_eq!(q.symbol, "BTC-USD");
        assert_eq!(q.price.value(), dec("83894.035"));
        assert_eq!(
            s.fetch(&pair("FOO/USD")).await,
            Err(SourceError::PairNotFound {
                from: ID,
                pair: "FOO/USD".into()
            })
        );
    }

    #[tokio::test]
    async fn error_bodies_are_mapped() {
        for (status, body) in [(400, INVALID), (404, NOT_FOUND), (200, NOT_FOUND)] {
            let s = source(&answering(status, body).await);
            assert!(
                matches!(
                    s.fetch(&pair("FOO/USD")).await,
                    Err(SourceError::PairNotFound { .. })
                ),
                "{status} {body}"
            );
        }
        subject()
            .check_errors(&[
                (
                    400,
                    r#"{"errors":[{"id":"validation_error","message":"Invalid currency pair"}]}"#,
                    "FOO/USD",
                    "not_found",
                ),
                (
                    400,
                    r#"{"errors":[{"id":"authentication_error","message":"invalid api key"}]}"#,
                    "BTC/USD",
                    "refused",
                ),
            ])
            .await;
        let s = source(&answering(200, TOO_MANY).await);
        assert_eq!(
            s.fetch(&pair("BTC/USD")).await,
            Err(SourceError::RateLimited {
                from: ID,
                retry_after: None
            })
        );
        let s = source(
            &answering(
                400,
                r#"{"errors":[{"id":"param_required","message":"Missing parameter"}]}"#,
            )
            .await,
        );
        let e = s.fetch(&pair("BTC/USD")).await.expect_err("error");
        assert!(
            matches!(&e, SourceError::Upstream { reason, .. } if reason.contains("param_required")),
            "{e:?}"
        );
        // A 404 that is not Coinbase's (wrong baseUrl) must not read as "unknown pair".
        subject()
            .check_errors(&[(404, "<html>Not Found</html>", "BTC/USD", "upstream_error")])
            .await;
    }

    #[tokio::test]
    async fn zero_amount_and_wrong_currency() {
        subject()
            .check_errors(&[
                (
                    200,
                    r#"{"data":{"amount":"0.00","base":"DEAD","currency":"USD"}}"#,
                    "DEAD/USD",
                    "not_found",
                ),
                (
                    200,
                    r#"{"data":{"amount":"1.07","base":"EUR","currency":"USD"}}"#,
                    "BTC/USD",
                    "malformed",
                ),
                (
                    200,
                    r#"{"data":{"amount":"-5","base":"BTC","currency":"USD"}}"#,
                    "BTC/USD",
                    "malformed",
                ),
            ])
            .await;
    }

    testing::transport_checks! {
        subject: subject(),
        retried: (TOO_MANY, BTC, "83894.035"),
        rate_limited: TOO_MANY,
        refused: &[(451, ""), (403, "")],
        slow: BTC,
        garbage: (
            &[r#"{"data":{"base":"BTC","currency":"USD"}}"#, "{}"],
            instruments: false,
        ),
    }

    #[tokio::test]
    async fn no_batch_no_instruments() {
        let s = source(&answering(200, BTC).await);
        assert!(matches!(
            s.instruments().await,
            Err(SourceError::Unsupported { .. })
        ));
        let pairs = [pair("BTC/USD"), pair("ETH/USD")];
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert!(out[&pairs[0]].is_ok());
        assert!(
            matches!(out[&pairs[1]], Err(SourceError::Malformed { .. })),
            "BTC answer for ETH"
        );
    }

    #[tokio::test]
    async fn api_key_is_never_sent_nor_shown() {
        let seen =
            testing::check_key_never_sent(subject(), "FOO/USD", Answer::new(404, NOT_FOUND)).await;
        assert!(
            seen.uri.starts_with("/v2/prices/FOO-USD/spot"),
            "{}",
            seen.uri
        );
    }
}
