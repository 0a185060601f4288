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

use std::time::SystemTime;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::price::Price;
use crate::aggregator::sources::client::{Response, SourceClient};
use crate::aggregator::sources::{Quote, Source, SourceError};
use crate::config::schema::sources::{SourceConfig, SourceId};
use crate::config::values::RedactedUrl;

/// The public endpoint (`baseUrl` replaces it).
pub const DEFAULT_BASE_URL: &str = "https://api.kucoin.com";

const ID: SourceId = SourceId::Kucoin;
const LEVEL1_PATH: &str = "api/v1/market/orderbook/level1";
const SYMBOLS_PATH: &str = "api/v2/symbols";
const SUCCESS: &str = "200000";
/// Upstream messages quoted in errors are cut to this many characters.
const MAX_MESSAGE: usize = 200;

pub struct Kucoin {
    client: SourceClient,
}

impl Kucoin {
    pub fn new(
        config: &SourceConfig,
        global_proxy: Option<&RedactedUrl>,
    ) -> Result<Self, SourceError> {
        Ok(Self {
            client: SourceClient::new(ID, config, DEFAULT_BASE_URL, global_proxy)?,
        })
    }
}

fn short(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_MESSAGE)
        .collect()
}

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
    let envelope: Envelope<'a> = match serde_json::from_slice(&response.body) {
        Ok(envelope) => envelope,
        Err(_) if !status.is_success() => {
            return Err(Failure::Error(SourceError::Upstream {
                from: ID,
                reason: format!("HTTP {status}"),
            }))
        }
        Err(e) => {
            return Err(Failure::Error(SourceError::Malformed {
                from: ID,
                reason: format!("not a {what} answer: {e}"),
            }))
        }
    };
    let code = match &envelope.code {
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ if !status.is_success() => {
            return Err(Failure::Error(SourceError::Upstream {
                from: ID,
                reason: format!("HTTP {status}"),
            }))
        }
        _ => {
            return Err(Failure::Error(SourceError::Malformed {
                from: ID,
                reason: "no \"code\" in the answer".into(),
            }))
        }
    };
    if code != SUCCESS {
        let reason = short(&format!(
            "code {code}: {}",
            envelope.msg.as_deref().unwrap_or("")
        ));
        return Err(match code.as_str() {
            "900001" | "400100" => Failure::NotFound,
            "429000" | "1015" => Failure::Error(SourceError::RateLimited {
                from: ID,
                retry_after: None,
            }),
            "400001" | "400002" | "400003" | "400004" | "400005" | "400006" | "400007"
            | "411100" => Failure::Error(SourceError::Refused { from: ID, reason }),
            _ => Failure::Error(SourceError::Upstream { from: ID, reason }),
        });
    }
    if !status.is_success() {
        return Err(Failure::Error(SourceError::Upstream {
            from: ID,
            reason: format!("HTTP {status}"),
        }));
    }
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
        let not_found = || SourceError::PairNotFound {
            from: ID,
            pair: pair.to_string(),
        };
        let mut url = self.client.url(LEVEL1_PATH);
        url.query_pairs_mut().append_pair("symbol", &symbol);
        let response = self.client.get(url, HeaderMap::new()).await?;
        let data = match unwrap(&response, "level1") {
            Ok(Some(data)) => data,
            Ok(None) | Err(Failure::NotFound) => return Err(not_found()),
            Err(Failure::Error(e)) => return Err(e),
        };
        let level1: Level1<'_> =
            serde_json::from_str(data.get()).map_err(|e| SourceError::Malformed {
                from: ID,
                reason: format!("level1 data: {e}"),
            })?;
        let raw = match level1.price {
            Some(raw) if raw.get().trim() != "null" => raw,
            _ => return Err(not_found()),
        };
        let price = Price::from_json(raw).map_err(|e| SourceError::Malformed {
            from: ID,
            reason: format!("data.price: {e}"),
        })?;
        Ok(Quote {
            price,
            symbol,
            received_at: SystemTime::now(),
        })
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
            Ok(None) => {
                return Err(SourceError::Malformed {
                    from: ID,
                    reason: "symbols answer without data".into(),
                })
            }
            Err(Failure::NotFound) => {
                return Err(SourceError::Upstream {
                    from: ID,
                    reason: "the symbol list was refused as a bad request".into(),
                })
            }
            Err(Failure::Error(e)) => return Err(e),
        };
        let symbols: Vec<SymbolInfo> =
            serde_json::from_str(data.get()).map_err(|e| SourceError::Malformed {
                from: ID,
                reason: format!("symbols data: {e}"),
            })?;
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
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use axum::http::{StatusCode, Uri};
    use axum::Router;
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{config, serve};

    /// KuCoin's documented answers (ocr-and-sources.md B.12, kucoin-api-docs).
    const LEVEL1_OK: &str = r#"{"code":"200000","data":{"time":1550653727731,"sequence":"1550467636704","price":"0.03715005","size":"0.17","bestBid":"0.03710768","bestBidSize":"3.803","bestAsk":"0.03715004","bestAskSize":"1.788"}}"#;
    const LEVEL1_UNKNOWN: &str = r#"{"code":"200000","data":null}"#;
    const SYMBOLS_OK: &str = r#"{"code":"200000","data":[{"symbol":"BTC-USDT","name":"BTC-USDT","baseCurrency":"BTC","quoteCurrency":"USDT","feeCurrency":"USDT","market":"USDS","baseMinSize":"0.00001","quoteMinSize":"0.1","baseMaxSize":"10000000000","quoteMaxSize":"99999999","baseIncrement":"0.00000001","quoteIncrement":"0.000001","priceIncrement":"0.1","priceLimitRate":"0.1","minFunds":"0.1","isMarginEnabled":true,"enableTrading":true},{"symbol":"ENJ-ETH","name":"ENJ-ETH","baseCurrency":"ENJ","quoteCurrency":"ETH","feeCurrency":"ETH","market":"ALTS","baseMinSize":"0.01","quoteMinSize":"0.0001","baseMaxSize":"10000000000","quoteMaxSize":"99999999","baseIncrement":"0.0001","quoteIncrement":"0.0000001","priceIncrement":"0.0000001","priceLimitRate":"0.1","minFunds":"0.0001","isMarginEnabled":false,"enableTrading":true},{"symbol":"OLD-BTC","name":"OLD-BTC","baseCurrency":"OLD","quoteCurrency":"BTC","feeCurrency":"BTC","market":"BTC","baseMinSize":"1","quoteMinSize":"0.00001","baseMaxSize":"10000000000","quoteMaxSize":"99999999","baseIncrement":"1","quoteIncrement":"0.00000001","priceIncrement":"0.00000001","priceLimitRate":"0.1","minFunds":"0.00001","isMarginEnabled":false,"enableTrading":false}]}"#;

    fn pair(base: &str, quote: &str) -> Pair {
        Pair::new(base, quote).expect("pair")
    }

    fn adapter(url: &str, extra: serde_json::Value) -> Kucoin {
        let mut json = json!({"baseUrl": url, "maxRetries": 0, "timeoutMs": 1000});
        if let (Some(obj), serde_json::Value::Object(more)) = (json.as_object_mut(), extra) {
            obj.extend(more);
        }
        Kucoin::new(&config(ID, json), None).expect("adapter")
    }

    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<(String, axum::http::HeaderMap)>>>);

    impl Seen {
        fn uris(&self) -> Vec<String> {
            self.0
                .lock()
                .expect("lock")
                .iter()
                .map(|(u, _)| u.clone())
                .collect()
        }
    }

    /// A server answering every request with `status`, `headers` and `body`.
    async fn fixed(
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: &str,
    ) -> (String, Seen) {
        let seen = Seen::default();
        let record = seen.clone();
        let headers: Vec<_> = headers.to_vec();
        let body = body.to_owned();
        let router =
            Router::new().fallback(move |uri: Uri, request_headers: axum::http::HeaderMap| {
                let record = record.clone();
                let headers = headers.clone();
                let body = body.clone();
                async move {
                    record
                        .0
                        .lock()
                        .expect("lock")
                        .push((uri.to_string(), request_headers));
                    let mut map = axum::http::HeaderMap::new();
                    for (k, v) in headers {
                        map.insert(k, v.parse().expect("header"));
                    }
                    (StatusCode::from_u16(status).expect("status"), map, body)
                }
            });
        (serve(router).await, seen)
    }

    async fn hanging() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        format!("http://{addr}")
    }

    fn query_of(uri: &str) -> HashMap<String, String> {
        let url = reqwest::Url::parse(&format!("http://x{uri}")).expect("uri");
        url.query_pairs().into_owned().collect()
    }

    #[tokio::test]
    async fn level1_price_is_read_exactly() {
        let (url, seen) = fixed(200, &[], LEVEL1_OK).await;
        let source = adapter(&url, json!({}));
        let quote = source.fetch(&pair("enj", "eth")).await.expect("quote");
        assert_eq!(quote.price.value().to_string(), "0.03715005");
        assert_eq!(quote.symbol, "ENJ-ETH");
        assert_eq!(source.symbol(&pair("enj", "eth")), "ENJ-ETH");
        let uris = seen.uris();
        assert_eq!(uris.len(), 1);
        assert!(
            uris[0].starts_with("/api/v1/market/orderbook/level1?"),
            "{}",
            uris[0]
        );
        assert_eq!(
            query_of(&uris[0]).get("symbol").map(String::as_str),
            Some("ENJ-ETH")
        );

        let body = r#"{"code":"200000","data":{"time":1729766400000,"sequence":"1","price":"67123.45000000","size":"10","bestBid":"67123.4","bestBidSize":"1","bestAsk":"67123.5","bestAskSize":"1"}}"#;
        let (url, _) = fixed(200, &[], body).await;
        let quote = adapter(&url, json!({}))
            .fetch(&pair("BTC", "USDT"))
            .await
            .expect("quote");
        assert_eq!(quote.price.to_string(), "67123.45");
        assert_eq!(quote.price.value().to_string(), "67123.45000000");
    }

    #[tokio::test]
    async fn a_configured_key_is_not_sent() {
        let (url, seen) = fixed(200, &[], LEVEL1_OK).await;
        adapter(&url, json!({"apiKey": "kc-key-123"}))
            .fetch(&pair("ENJ", "ETH"))
            .await
            .expect("quote");
        let (uri, headers) = seen.0.lock().expect("lock")[0].clone();
        assert!(!uri.contains("kc-key-123"));
        assert!(headers.values().all(|v| v
            .to_str()
            .map(|s| !s.contains("kc-key-123"))
            .unwrap_or(true)));
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
            let (url, _) = fixed(status, &[], body).await;
            let err = adapter(&url, json!({}))
                .fetch(&pair("XYZ", "USDT"))
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
            let (url, _) = fixed(status, &[], body).await;
            let err = adapter(&url, json!({}))
                .fetch(&pair("BTC", "USDT"))
                .await
                .expect_err(body);
            assert_eq!(err.kind(), kind, "{body} -> {err:?}");
            if let SourceError::RateLimited { retry_after, .. } = err {
                assert_eq!(retry_after, None);
            }
        }
        let (url, _) = fixed(
            200,
            &[],
            r#"{"code":"500000","msg":"Internal Server Error"}"#,
        )
        .await;
        let err = adapter(&url, json!({}))
            .fetch(&pair("BTC", "USDT"))
            .await
            .expect_err("error");
        assert!(err.to_string().contains("500000"), "{err}");
    }

    #[tokio::test]
    async fn bodies_that_are_not_the_documented_shape_are_malformed() {
        for body in [
            "<html>oops</html>",
            r#"{"data":{"price":"1"}}"#,
            r#"{"code":"200000","data":[1,2]}"#,
            r#"{"code":"200000","data":{"price":"0"}}"#,
            r#"{"code":"200000","data":{"price":"abc"}}"#,
        ] {
            let (url, _) = fixed(200, &[], body).await;
            let err = adapter(&url, json!({}))
                .fetch(&pair("BTC", "USDT"))
                .await
                .expect_err(body);
            assert_eq!(err.kind(), "malformed", "{body} -> {err:?}");
        }
        // Garbage with an error status is the status's error (e.g. a proxy's HTML page).
        let (url, _) = fixed(400, &[], "<html>bad request</html>").await;
        let err = adapter(&url, json!({}))
            .fetch(&pair("BTC", "USDT"))
            .await
            .expect_err("error");
        assert_eq!(err.kind(), "upstream_error", "{err:?}");
    }

    #[tokio::test]
    async fn instruments_are_the_tradable_symbols() {
        let (url, seen) = fixed(200, &[], SYMBOLS_OK).await;
        let pairs = adapter(&url, json!({}))
            .instruments()
            .await
            .expect("instruments");
        assert_eq!(pairs, vec![pair("BTC", "USDT"), pair("ENJ", "ETH")]);
        assert_eq!(seen.uris(), vec!["/api/v2/symbols".to_owned()]);

        for (body, kind) in [
            (
                r#"{"code":"500000","msg":"Internal Server Error"}"#,
                "upstream_error",
            ),
            (r#"{"code":"200000","data":null}"#, "malformed"),
            (r#"{"code":"200000","data":{"x":1}}"#, "malformed"),
            ("garbage", "malformed"),
        ] {
            let (url, _) = fixed(200, &[], body).await;
            let err = adapter(&url, json!({}))
                .instruments()
                .await
                .expect_err(body);
            assert_eq!(err.kind(), kind, "{body} -> {err:?}");
        }
    }

    #[tokio::test]
    async fn http_429_is_retried_after_retry_after() {
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let router = Router::new().fallback(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    let mut h = axum::http::HeaderMap::new();
                    h.insert("retry-after", "1".parse().expect("header"));
                    (StatusCode::TOO_MANY_REQUESTS, h, "")
                } else {
                    (StatusCode::OK, axum::http::HeaderMap::new(), LEVEL1_OK)
                }
            }
        });
        let url = serve(router).await;
        let start = Instant::now();
        let quote = adapter(&url, json!({"maxRetries": 1}))
            .fetch(&pair("ENJ", "ETH"))
            .await
            .expect("quote after the retry");
        assert_eq!(quote.price.value().to_string(), "0.03715005");
        assert_eq!(count.load(Ordering::SeqCst), 2);
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn http_429_without_retries_is_rate_limited_with_its_retry_after() {
        let (url, _) = fixed(
            429,
            &[("retry-after", "1")],
            r#"{"code":"429000","msg":"Too Many Requests"}"#,
        )
        .await;
        let err = adapter(&url, json!({}))
            .fetch(&pair("BTC", "USDT"))
            .await
            .expect_err("error");
        assert_eq!(
            err,
            SourceError::RateLimited {
                from: ID,
                retry_after: Some(Duration::from_secs(1))
            }
        );
    }

    #[tokio::test]
    async fn geo_blocks_and_forbidden_are_refused() {
        for status in [451, 403] {
            let (url, _) = fixed(status, &[], "blocked").await;
            let err = adapter(&url, json!({}))
                .fetch(&pair("BTC", "USDT"))
                .await
                .expect_err("error");
            assert_eq!(err.kind(), "refused", "{status}: {err:?}");
            let err = adapter(&url, json!({}))
                .instruments()
                .await
                .expect_err("error");
            assert_eq!(err.kind(), "refused", "{status}: {err:?}");
        }
    }

    #[tokio::test]
    async fn a_slow_answer_times_out() {
        let router = Router::new().fallback(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            LEVEL1_OK
        });
        let url = serve(router).await;
        let start = Instant::now();
        let err = adapter(&url, json!({}))
            .fetch(&pair("BTC", "USDT"))
            .await
            .expect_err("error");
        assert!(matches!(err, SourceError::Timeout { .. }), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_hanging_connection_times_out() {
        let url = hanging().await;
        let err = adapter(&url, json!({}))
            .fetch(&pair("BTC", "USDT"))
            .await
            .expect_err("error");
        assert_eq!(
            err,
            SourceError::Timeout {
                from: ID,
                timeout: Duration::from_secs(1)
            }
        );
    }

    #[tokio::test]
    async fn no_batch_endpoint() {
        assert_eq!(adapter("http://127.0.0.1:9", json!({})).max_batch(), None);
    }
}
