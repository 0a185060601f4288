//! Alpha Vantage: `GET {base}/query?function=CURRENCY_EXCHANGE_RATE&from_currency=BTC&to_currency=USD&apikey=<key>`
//! → `{"Realtime Currency Exchange Rate":{"1. From_Currency Code":"BTC",…,"5. Exchange Rate":"68508.68000000",…}}`
//! (fiat and crypto alike). No batch endpoint.
//!
//! - **Symbols**: base and quote uppercased; the symbol shown is `BTC/USD`.
//! - **Base URL**: the host root (default `https://www.alphavantage.co`); a `baseUrl` that already
//!   ends in `/query` (the form the API documentation prints) is used as the endpoint itself.
//! - **API key**: the `apikey` query parameter, the only way Alpha Vantage takes it. The URL is
//!   never logged or put in an error (the shared client strips URLs from transport errors), and
//!   upstream messages are scrubbed of the key.
//! - **Errors** all come as HTTP 200:
//!   - `"Error Message"` about the API key ("the parameter apikey is invalid or missing") →
//!     `Refused`; any other `"Error Message"` ("Invalid API call. …": unknown currency) →
//!     `PairNotFound`;
//!   - `"Note"` and `"Information"` (the daily/minute limit; newer responses use `Information`,
//!     which the reference missed, §10 item 26) → `RateLimited`;
//!   - an exchange rate of zero → `PairNotFound`; a body without the rate, or a rate for other
//!     currencies than asked → `Malformed`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::sources::client::SourceClient;
use crate::aggregator::sources::{
    configured_key, price_of, upstream_message, Quote, Source, SourceError,
};
use crate::config::schema::sources::{SourceConfig, SourceId};
use crate::config::secret::Secret;
use crate::config::values::RedactedUrl;

pub const DEFAULT_BASE_URL: &str = "https://www.alphavantage.co";
pub const FUNCTION: &str = "CURRENCY_EXCHANGE_RATE";

const ID: SourceId = SourceId::AlphaVantage;
const RATE: &str = "Realtime Currency Exchange Rate";

pub struct AlphaVantage {
    client: SourceClient,
    /// `…/query`, without parameters.
    endpoint: Url,
    api_key: Option<Secret<String>>,
}

impl AlphaVantage {
    pub fn new(
        config: &SourceConfig,
        global_proxy: Option<&RedactedUrl>,
    ) -> Result<Self, SourceError> {
        let client = SourceClient::new(ID, config, DEFAULT_BASE_URL, global_proxy)?;
        let endpoint = match &config.base_url {
            Some(base) if base.path().trim_end_matches('/').ends_with("/query") => {
                base.expose().clone()
            }
            _ => client.url("query"),
        };
        let api_key = configured_key(config);
        Ok(Self {
            client,
            endpoint,
            api_key,
        })
    }

    /// `"Error Message"`, `"Note"` or `"Information"`, if the body carries one.
    fn in_band_error(
        &self,
        pair: &Pair,
        top: &BTreeMap<String, Box<RawValue>>,
    ) -> Option<SourceError> {
        let text = |field: &str| {
            top.get(field)
                .map(|raw| serde_json::from_str::<String>(raw.get()).unwrap_or_default())
        };
        if let Some(message) = text("Error Message") {
            let lower = message.to_ascii_lowercase();
            return Some(if lower.contains("apikey") || lower.contains("api key") {
                SourceError::refused(
                    ID,
                    upstream_message(&message, self.api_key.as_ref().map(|k| k.expose().trim())),
                )
            } else {
                SourceError::not_found(ID, pair)
            });
        }
        if text("Note").is_some() || text("Information").is_some() {
            return Some(SourceError::rate_limited(ID));
        }
        None
    }
}

#[async_trait]
impl Source for AlphaVantage {
    fn id(&self) -> SourceId {
        ID
    }

    /// `BTC/USD` (from/to currency, uppercased).
    fn symbol(&self, pair: &Pair) -> String {
        pair.upper().to_string()
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let upper = pair.upper();
        let mut url = self.endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("function", FUNCTION)
                .append_pair("from_currency", &upper.base)
                .append_pair("to_currency", &upper.quote);
            if let Some(key) = &self.api_key {
                query.append_pair("apikey", key.expose().trim());
            }
        }
        let response = self.client.get(url, HeaderMap::new()).await?;
        let top: Option<BTreeMap<String, Box<RawValue>>> =
            serde_json::from_slice(&response.body).ok();
        if let Some(e) = top.as_ref().and_then(|t| self.in_band_error(pair, t)) {
            return Err(e);
        }
        if response.status != StatusCode::OK {
            return Err(SourceError::http_status(ID, response.status));
        }
        let top = top.ok_or_else(|| SourceError::malformed(ID, "the body is not a JSON object"))?;
        let rate: BTreeMap<String, Box<RawValue>> = top
            .get(RATE)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .ok_or_else(|| {
                SourceError::malformed(ID, "no \"Realtime Currency Exchange Rate\" object")
            })?;
        for (field, asked) in [
            ("1. From_Currency Code", &upper.base),
            ("3. To_Currency Code", &upper.quote),
        ] {
            if let Some(raw) = rate.get(field) {
                let code = serde_json::from_str::<String>(raw.get()).unwrap_or_default();
                if !code.eq_ignore_ascii_case(asked) {
                    return Err(SourceError::malformed(
                        ID,
                        format!("a rate for {field} {code:.16}, asked {asked}"),
                    ));
                }
            }
        }
        let raw = rate
            .get("5. Exchange Rate")
            .ok_or_else(|| SourceError::malformed(ID, "no \"5. Exchange Rate\""))?;
        Ok(Quote::now(price_of(ID, raw, pair)?, self.symbol(pair)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{self, pair, Answer, MockServer, Subject};

    const KEY: &str = "AVKEY0123456789XYZ";

    const RATE_BODY: &str = r#"{"Realtime Currency Exchange Rate":{"1. From_Currency Code":"BTC","2. From_Currency Name":"Bitcoin","3. To_Currency Code":"USD","4. To_Currency Name":"United States Dollar","5. Exchange Rate":"68508.68000000","6. Last Refreshed":"2024-03-15 06:44:02","7. Time Zone":"UTC","8. Bid Price":"68508.67000000","9. Ask Price":"68508.68000000"}}"#;

    fn subject() -> Subject {
        Subject::of(ID, AlphaVantage::new).key(KEY)
    }

    async fn error_for(status: u16, body: &str) -> SourceError {
        subject().error_for(Answer::new(status, body)).await
    }

    #[tokio::test]
    async fn the_rate_keeps_the_exact_decimal_and_the_key_is_the_apikey_parameter() {
        let srv = MockServer::always(Answer::new(200, RATE_BODY)).await;
        let av = subject().source(&srv.url, json!({}));
        let q = av.fetch(&pair("btc-usd")).await.expect("quote");
        assert_eq!(q.price.to_string(), "68508.68");
        assert_eq!(q.price.value().to_string(), "68508.68000000");
        assert_eq!(q.symbol, "BTC/USD");
        let seen = &srv.seen()[0];
        assert_eq!(seen.path, "/query");
        assert_eq!(seen.query["function"], "CURRENCY_EXCHANGE_RATE");
        assert_eq!(seen.query["from_currency"], "BTC");
        assert_eq!(seen.query["to_currency"], "USD");
        assert_eq!(seen.query["apikey"], KEY);
        assert_eq!(av.max_batch(), None);
    }

    #[tokio::test]
    async fn a_base_url_ending_in_query_is_the_endpoint() {
        let srv = MockServer::always(Answer::new(200, RATE_BODY)).await;
        let av = subject().source(&format!("{}/query", srv.url), json!({}));
        av.fetch(&pair("BTC/USD")).await.expect("quote");
        let prefixed = subject().source(&format!("{}/av", srv.url), json!({}));
        prefixed.fetch(&pair("BTC/USD")).await.expect("quote");
        let paths: Vec<String> = srv.seen().into_iter().map(|s| s.path).collect();
        assert_eq!(paths, ["/query", "/av/query"]);
    }

    #[tokio::test]
    async fn an_older_capture_without_bid_and_ask_parses() {
        let body = r#"{"Realtime Currency Exchange Rate":{"1. From_Currency Code":"EUR","2. From_Currency Name":"Euro","3. To_Currency Code":"USD","4. To_Currency Name":"United States Dollar","5. Exchange Rate":"1.07120000","6. Last Refreshed":"2025-10-24 12:00:01","7. Time Zone":"UTC"}}"#;
        let srv = MockServer::always(Answer::new(200, body)).await;
        let q = subject()
            .source(&srv.url, json!({}))
            .fetch(&pair("eur/usd"))
            .await
            .expect("quote");
        assert_eq!(q.price.to_string(), "1.0712");
    }

    #[tokio::test]
    async fn error_message_is_not_found_or_refused() {
        let err = error_for(200, r#"{"Error Message":"Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) for CURRENCY_EXCHANGE_RATE."}"#).await;
        assert_eq!(
            err,
            SourceError::PairNotFound {
                from: ID,
                pair: "BTC/USD".into()
            }
        );
        let err = error_for(200, r#"{"Error Message":"the parameter apikey is invalid or missing. Please claim your free API key on (https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."}"#).await;
        assert!(matches!(err, SourceError::Refused { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn note_and_information_are_rate_limits() {
        for body in [
            r#"{"Note":"Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API call frequency."}"#,
            r#"{"Information":"Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."}"#,
            r#"{"Information":"The **demo** API key is for demo purposes only. Please claim your free API key at (https://www.alphavantage.co/support/#api-key) to explore our full API offerings. It takes fewer than 20 seconds."}"#,
        ] {
            let err = error_for(200, body).await;
            assert_eq!(
                err,
                SourceError::RateLimited {
                    from: ID,
                    retry_after: None
                },
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn a_zero_rate_is_not_found() {
        let body = RATE_BODY.replace("\"68508.68000000\",\"6.", "\"0.00000000\",\"6.");
        assert!(body.contains("0.00000000"));
        let err = error_for(200, &body).await;
        assert!(matches!(err, SourceError::PairNotFound { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn garbage_empty_and_mismatched_bodies_are_malformed() {
        let other = RATE_BODY.replace(
            "\"3. To_Currency Code\":\"USD\"",
            "\"3. To_Currency Code\":\"EUR\"",
        );
        testing::check_malformed(
            &subject(),
            &[
                "<html>",
                "{}",
                "[]",
                r#"{"Realtime Currency Exchange Rate":{}}"#,
                r#"{"Realtime Currency Exchange Rate":{"5. Exchange Rate":"abc"}}"#,
                other.as_str(),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn other_statuses_are_upstream_errors() {
        let err = error_for(404, "Not Found").await;
        assert!(matches!(err, SourceError::Upstream { .. }), "{err:?}");
    }

    testing::transport_checks! {
        subject: subject(),
        retried: ("{}", RATE_BODY, "68508.68000000"),
        rate_limited: "{}",
        refused: &[(451, ""), (403, "")],
        slow: RATE_BODY,
    }

    #[tokio::test]
    async fn an_unreachable_host_is_unreachable_without_the_url() {
        let s = subject();
        let err = testing::check_unreachable(&s).await;
        assert!(!s.shown(&err).contains("apikey"));
    }

    #[tokio::test]
    async fn upstream_messages_never_echo_the_key() {
        let body = format!(r#"{{"Error Message":"the parameter apikey {KEY} is invalid"}}"#);
        let err = error_for(200, &body).await;
        assert!(matches!(err, SourceError::Refused { .. }), "{err:?}");
        assert!(subject().shown(&err).contains("apikey *** is invalid"));
    }
}
