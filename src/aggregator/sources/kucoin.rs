//! KuCoin spot: `GET https://api.kucoin.com/api/v1/market/orderbook/level1?symbol=BTC-USDT` →
//! `{"code":"200000","data":{"time":…,"sequence":…,"price":"0.03715005",…}}`; the price is
//! `data.price`, the last trade price (a string, read exactly). No batch endpoint is used (the
//! reference has none); the instrument list is `GET /api/v2/symbols` (pairs with `enableTrading`).
//!
//! - Symbols: `BASE-QUOTE`, upper-cased (`ENJ/eth` → `ENJ-ETH`).
//! - Public endpoints only: a configured API key is not sent (KuCoin keys need request signing,
//!   which market data does not).
//! - Errors arrive in the body, usually with HTTP 200 (`code` is a string), sometimes with a 4xx:
//!
//! | answer | `SourceError` |
//! |---|---|
//! | `code:"200000"`, `data:null` (unknown symbol on level1) / `data.price:null` | `PairNotFound` |
//! | `900001` (trading pair does not exist), `400100` (parameter error: bad symbol) | `PairNotFound` |
//! | `429000` (too many requests / overloaded), `1015` (Cloudflare IP limit) | `RateLimited` |
//! | `400001`–`400007` (key/signature/IP whitelist/permission), `411100` (user frozen) | `Refused` |
//! | `404000`, `500000`, anything else | `Upstream` |

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::price::Price;
use crate::aggregator::sources::client::{rest_adapter, Response};
use crate::aggregator::sources::{upstream_message, Quote, Source, SourceError};
use crate::config::schema::sources::SourceId;

/// The public endpoint (`baseUrl` replaces it).
pub const DEFAULT_BASE_URL: &str = "https://api.kucoin.com";

const ID: SourceId = SourceId::Kucoin;
const LEVEL1_PATH: &str = "api/v1/market/orderbook/level1";
const SYMBOLS_PATH: &str = "api/v2/symbols";
const SUCCESS: &str = "200000";

rest_adapter!(Kucoin, ID, DEFAULT_BASE_URL);

/// KuCoin's envelope. `code` is documented as a string; a number is accepted too.
#[derive(Deserialize)]
struct Envelope<'a> {
    code: Option<serde_json::Value>,
    msg: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Level1<'a> {
    #[serde(borrow)]
    price: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SymbolInfo {
    base_currency: String,
    quote_currency: String,
    #[serde(default)]
    enable_trading: bool,
}

/// Why a body did not carry data: the pair is unknown, or the call failed.
enum Failure {
    NotFound,
    Error(SourceError),
}

/// The envelope's `data`, checked: `Ok(None)` is `code:"200000"` with `data:null`.
fn unwrap<'a>(response: &'a Response, what: &str) -> Result<Option<&'a RawValue>, Failure> {
    let status = response.status;
    let envelope: Envelope<'a> = response
        .envelope_or(ID, |e| {
            SourceError::malformed(ID, format!("not a {what} answer: {e}"))
        })
        .map_err(Failure::Error)?;
    let code = match &envelope.code {
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ if !status.is_success() => {
            return Err(Failure::Error(SourceError::http_status(ID, status)))
        }
        _ => {
            return Err(Failure::Error(SourceError::malformed(
                ID,
                "no \"code\" in the answer",
            )))
        }
    };
    if code != SUCCESS {
        let reason = upstream_message(
            &format!("code {code}: {}", envelope.msg.as_deref().unwrap_or("")),
            None,
        );
        return Err(match code.as_str() {
            "900001" | "400100" => Failure::NotFound,
            "429000" | "1015" => Failure::Error(SourceError::rate_limited(ID)),
            "400001" | "400002" | "400003" | "400004" | "400005" | "400006" | "400007"
            | "411100" => Failure::Error(SourceError::refused(ID, reason)),
            _ => Failure::Error(SourceError::upstream(ID, reason)),
        });
    }
    response.require_success(ID).map_err(Failure::Error)?;
    Ok(envelope.data.filter(|d| d.get().trim() != "null"))
}

#[async_trait]
impl Source for Kucoin {
    fn id(&self) -> SourceId {
        ID
    }

    /// `BTC-USDT`.
    fn symbol(&self, pair: &Pair) -> String {
        let upper = pair.upper();
        format!("{}-{}", upper.base, upper.quote)
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let symbol = self.symbol(pair);
        let mut url = self.client.url(LEVEL1_PATH);
        url.query_pairs_mut().append_pair("symbol", &symbol);
        let response = self.client.get(url, HeaderMap::new()).await?;
        let data = match unwrap(&response, "level1") {
            Ok(Some(data)) => data,
            Ok(None) | Err(Failure::NotFound) => return Err(SourceError::not_found(ID, pair)),
            Err(Failure::Error(e)) => return Err(e),
        };
        let level1: Level1<'_> = serde_json::from_str(data.get())
            .map_err(|e| SourceError::malformed(ID, format!("level1 data: {e}")))?;
        let raw = match level1.price {
            Some(raw) if raw.get().trim() != "null" => raw,
            _ => return Err(SourceError::not_found(ID, pair)),
        };
        let price = Price::from_json(raw)
            .map_err(|e| SourceError::malformed(ID, format!("data.price: {e}")))?;
        Ok(Quote::now(price, symbol))
    }

    /// `GET /api/v2/symbols`: every symbol with `enableTrading`, as (baseCurrency, quoteCurrency).
    /// Symbols our pair rules cannot hold are skipped.
    async fn instruments(&self) -> Result<Vec<Pair>, SourceError> {
        let response = self
            .client
            .get(self.client.url(SYMBOLS_PATH), HeaderMap::new())
            .await?;
        let data = match unwrap(&response, "symbols") {
            Ok(Some(data)) => data,
            Ok(None) => return Err(SourceError::malformed(ID, "symbols answer without data")),
            Err(Failure::NotFound) => {
                return Err(SourceError::upstream(
                    ID,
                    "the symbol list was refused as a bad request",
                ))
            }
            Err(Failure::Error(e)) => return Err(e),
        };
        let symbols: Vec<SymbolInfo> = serde_json::from_str(data.get())
            .map_err(|e| SourceError::malformed(ID, format!("symbols data: {e}")))?;
        let mut pairs: Vec<Pair> = symbols
            .into_iter()
            .filter(|s| s.enable_trading)
            .filter_map(|s| Pair::new(&s.base_currency, &s.quote_currency).ok())
            .collect();
        pairs.sort();
        pairs.dedup();
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{self, pair_of, Answer, MockServer, Subject};

    /// KuCoin's documented answers (ocr-and-sources.md B.12, kucoin-api-docs).
    const LEVEL1_OK: &str = r#"{"code":"200000","data":{"time":1550653727731,"sequence":"1550467636704","price":"0.03715005","size":"0.17","bestBid":"0.03710768","bestBidSize":"3.803","bestAsk":"0.03715004","bestAskSize":"1.788"}}"#;
    const LEVEL1_UNKNOWN: &str = r#"{"code":"200000","data":null}"#;
    const SYMBOLS_OK: &str = r#"{"code":"200000","data":[{"symbol":"BTC-USDT","name":"BTC-USDT","baseCurrency":"BTC","quoteCurrency":"USDT","feeCurrency":"USDT","market":"USDS","baseMinSize":"0.00001","quoteMinSize":"0.1","baseMaxSize":"10000000000","quoteMaxSize":"99999999","baseIncrement":"0.00000001","quoteIncrement":"0.000001","priceIncrement":"0.1","priceLimitRate":"0.1","minFunds":"0.1","isMarginEnabled":true,"enableTrading":true},{"symbol":"ENJ-ETH","name":"ENJ-ETH","baseCurrency":"ENJ","quoteCurrency":"ETH","feeCurrency":"ETH","market":"ALTS","baseMinSize":"0.01","quoteMinSize":"0.0001","baseMaxSize":"10000000000","quoteMaxSize":"99999999","baseIncrement":"0.0001","quoteIncrement":"0.0000001","priceIncrement":"0.0000001","priceLimitRate":"0.1","minFunds":"0.0001","isMarginEnabled":false,"enableTrading":true},{"symbol":"OLD-BTC","name":"OLD-BTC","baseCurrency":"OLD","quoteCurrency":"BTC","feeCurrency":"BTC","market":"BTC","baseMinSize":"1","quoteMinSize":"0.00001","baseMaxSize":"10000000000","quoteMaxSize":"99999999","baseIncrement":"1","quoteIncrement":"0.00000001","priceIncrement":"0.00000001","priceLimitRate":"0.1","minFunds":"0.00001","isMarginEnabled":false,"enableTrading":false}]}"#;

    const KEY: &str = "kc-key-123";

    fn adapter(url: &str, extra: serde_json::Value) -> Kucoin {
        testing::adapter(Kucoin::new, ID, url, extra)
    }

    fn subject() -> Subject {
        Subject::of(ID, Kucoin::new)
            .pair(pair_of("BTC", "USDT"))
            .key(KEY)
    }

    #[tokio::test]
    async fn level1_price_is_read_exactly() {
        let srv = MockServer::always(Answer::new(200, LEVEL1_OK)).await;
        let source = adapter(&srv.url, json!({}));
        let quote = source.fetch(&pair_of("enj", "eth")).await.expect("quote");
        assert_eq!(quote.price.value().to_string(), "0.03715005");
        assert_eq!(quote.symbol, "ENJ-ETH");
        assert_eq!(source.symbol(&pair_of("enj", "eth")), "ENJ-ETH");
        let seen = srv.seen();
        assert_eq!(seen.len(), 1);
        assert!(
            seen[0].uri.starts_with("/api/v1/market/orderbook/level1?"),
            "{}",
            seen[0].uri
        );
        assert_eq!(
            seen[0].query.get("symbol").map(String::as_str),
            Some("ENJ-ETH")
        );

        let body = r#"{"code":"200000","data":{"time":1729766400000,"sequence":"1","price":"67123.45000000","size":"10","bestBid":"67123.4","bestBidSize":"1","bestAsk":"67123.5","bestAskSize":"1"}}"#;
        let url = testing::answering(200, body).await;
        let quote = adapter(&url, json!({}))
            .fetch(&pair_of("BTC", "USDT"))
            .await
            .expect("quote");
        assert_eq!(quote.price.to_string(), "67123.45");
        assert_eq!(quote.price.value().to_string(), "67123.45000000");
    }

    #[tokio::test]
    async fn a_configured_key_is_not_sent() {
        let subject = subject().pair(pair_of("ENJ", "ETH"));
        let (outcome, _) = testing::check_key_not_sent(&subject, Answer::new(200, LEVEL1_OK)).await;
        outcome.expect("quote");
    }

    #[tokio::test]
    async fn unknown_symbols_are_not_found() {
        for (status, body) in [
            (200, LEVEL1_UNKNOWN),
            (200, r#"{"code":"200000"}"#),
            (
                200,
                r#"{"code":"200000","data":{"time":1,"sequence":"1","price":null}}"#,
            ),
            (
                200,
                r#"{"code":"900001","msg":"Trading pair XYZ-USDT does not exist."}"#,
            ),
            (200, r#"{"code":"400100","msg":"Invalid Parameter."}"#),
            (400, r#"{"code":"400100","msg":"Invalid Parameter."}"#),
        ] {
            let url = testing::answering(status, body).await;
            let err = adapter(&url, json!({}))
                .fetch(&pair_of("XYZ", "USDT"))
                .await
                .expect_err(body);
            assert_eq!(
                err,
                SourceError::PairNotFound {
                    from: ID,
                    pair: "XYZ/USDT".into()
                },
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn error_codes_map_to_their_kinds() {
        for (status, body, kind) in [
            (
                200,
                r#"{"code":"429000","msg":"Too Many Requests"}"#,
                "rate_limited",
            ),
            (
                200,
                r#"{"code":1015,"msg":"IP rate limited"}"#,
                "rate_limited",
            ),
            (
                200,
                r#"{"code":"400001","msg":"Please check the header of your request for KC-API-KEY"}"#,
                "refused",
            ),
            (
                200,
                r#"{"code":"400006","msg":"The requested IP address is not in the API whitelist"}"#,
                "refused",
            ),
            (
                200,
                r#"{"code":"411100","msg":"User is frozen"}"#,
                "refused",
            ),
            (
                200,
                r#"{"code":"500000","msg":"Internal Server Error"}"#,
                "upstream_error",
            ),
            (
                404,
                r#"{"code":"404000","msg":"Url Not Found"}"#,
                "upstream_error",
            ),
            (
                200,
                r#"{"code":"123456","msg":"something new"}"#,
                "upstream_error",
            ),
        ] {
            let url = testing::answering(status, body).await;
            let err = adapter(&url, json!({}))
                .fetch(&pair_of("BTC", "USDT"))
                .await
                .expect_err(body);
            assert_eq!(err.kind(), kind, "{body} -> {err:?}");
            if let SourceError::RateLimited { retry_after, .. } = err {
                assert_eq!(retry_after, None);
            }
        }
        let url =
            testing::answering(200, r#"{"code":"500000","msg":"Internal Server Error"}"#).await;
        let err = adapter(&url, json!({}))
            .fetch(&pair_of("BTC", "USDT"))
            .await
            .expect_err("error");
        assert!(err.to_string().contains("500000"), "{err}");
    }

    #[tokio::test]
    async fn bodies_that_are_not_the_documented_shape_are_malformed() {
        testing::check_malformed(
            &subject(),
            &[
                "<html>oops</html>",
                r#"{"data":{"price":"1"}}"#,
                r#"{"code":"200000","data":[1,2]}"#,
                r#"{"code":"200000","data":{"price":"0"}}"#,
                r#"{"code":"200000","data":{"price":"abc"}}"#,
            ],
        )
        .await;
        // Garbage with an error status is the status's error (e.g. a proxy's HTML page).
        let url = testing::answering(400, "<html>bad request</html>").await;
        let err = adapter(&url, json!({}))
            .fetch(&pair_of("BTC", "USDT"))
            .await
            .expect_err("error");
        assert_eq!(err.kind(), "upstream_error", "{err:?}");
    }

    #[tokio::test]
    async fn instruments_are_the_tradable_symbols() {
        let srv = MockServer::always(Answer::new(200, SYMBOLS_OK)).await;
        let pairs = adapter(&srv.url, json!({}))
            .instruments()
            .await
            .expect("instruments");
        assert_eq!(pairs, vec![pair_of("BTC", "USDT"), pair_of("ENJ", "ETH")]);
        let uris: Vec<String> = srv.seen().into_iter().map(|s| s.uri).collect();
        assert_eq!(uris, vec!["/api/v2/symbols".to_owned()]);

        for (body, kind) in [
            (
                r#"{"code":"500000","msg":"Internal Server Error"}"#,
                "upstream_error",
            ),
            (r#"{"code":"200000","data":null}"#, "malformed"),
            (r#"{"code":"200000","data":{"x":1}}"#, "malformed"),
            ("garbage", "malformed"),
        ] {
            let url = testing::answering(200, body).await;
            let err = adapter(&url, json!({}))
                .instruments()
                .await
                .expect_err(body);
            assert_eq!(err.kind(), kind, "{body} -> {err:?}");
        }
    }

    testing::transport_checks! {
        subject: subject(),
        retried: ("", LEVEL1_OK, "0.03715005") for pair_of("ENJ", "ETH"),
        rate_limited: r#"{"code":"429000","msg":"Too Many Requests"}"#,
        refused: &[(451, "blocked"), (403, "blocked")],
        slow: LEVEL1_OK,
    }

    #[tokio::test]
    async fn geo_blocked_and_forbidden_instrument_lists_are_refused() {
        subject()
            .check_instrument_errors(&[(451, "blocked", "refused"), (403, "blocked", "refused")])
            .await;
    }

    #[tokio::test]
    async fn no_batch_endpoint() {
        assert_eq!(adapter("http://127.0.0.1:9", json!({})).max_batch(), None);
    }
}
