//! Bybit v5 REST: `GET /v5/market/tickers?category=spot&symbol=BTCUSDT` (one pair),
//! `GET /v5/market/instruments-info?category=spot&limit=1000` (instrument list). Default host
//! `https://api.bybit.com`; `baseUrl` overrides it (e.g. `https://api.bytick.com`). No batch:
//! the configuration schema gives Bybit no `maxBatchSize` (the reference fetched one symbol per
//! request).
//!
//! Symbols are `BASE+QUOTE` upper-cased (`btc/usdt` → `BTCUSDT`). Bybit answers errors as HTTP
//! 200 `{"retCode":<non-zero>,"retMsg":…,"result":{}}`: `10001` (parameter error, e.g. `Not
//! supported symbols`; the symbol is the only variable parameter) → not found; `10006` (`Too
//! many visits!`), `10018` (IP rate limit), `10429` (frequency protection) → rate limited;
//! `10003`/`10004`/`10005`/`10009`/`10010` (key, signature, permission, IP ban) → refused;
//! anything else → upstream error. `retCode:0` with an empty list → not found. HTTP 403 (IP ban,
//! CloudFront geo-block) is the client's refusal.
//!
//! The API key, if configured, is not sent: market data is public and Bybit authentication
//! needs a signature.

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::sources::client::rest_adapter;
use crate::aggregator::sources::{
    check_echoed_symbol, clip, exchange_price, parse_json, Quote, Source, SourceError,
};
use crate::config::schema::sources::SourceId;

const ID: SourceId = SourceId::Bybit;

/// The public endpoint used when the configuration gives no `baseUrl`.
pub const DEFAULT_BASE_URL: &str = "https://api.bybit.com";

const TICKERS: &str = "/v5/market/tickers";
const INSTRUMENTS: &str = "/v5/market/instruments-info";
/// Spot instruments come in one page; follow `nextPageCursor` at most this many times anyway.
const MAX_PAGES: usize = 20;

rest_adapter!(Bybit, ID, DEFAULT_BASE_URL);

impl Bybit {
    /// GET `path?query`, check the status and `retCode`, return the `result` object.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        asked: &str,
    ) -> Result<T, SourceError> {
        let mut url = self.client.url(path);
        url.query_pairs_mut().extend_pairs(query);
        let response = self.client.get(url, HeaderMap::new()).await?;
        // The code first: an error's `result` (`{}`) need not have the success shape.
        let head: Head = response.envelope(ID)?;
        if head.ret_code != 0 {
            return Err(in_band(head.ret_code, &head.ret_msg, asked));
        }
        response.require_success(ID)?;
        let envelope: Envelope<T> = parse_json(ID, &response.body)?;
        envelope
            .result
            .ok_or_else(|| SourceError::malformed_clipped(ID, "retCode 0 without result"))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    ret_code: i64,
    #[serde(default)]
    ret_msg: String,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct Envelope<T> {
    result: Option<T>,
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    list: Vec<T>,
    #[serde(rename = "nextPageCursor", default)]
    next_page_cursor: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ticker {
    symbol: String,
    /// Kept as the upstream text (owned: the envelope is generic over owned results).
    last_price: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Instrument {
    base_coin: String,
    quote_coin: String,
    status: String,
}

/// The symbol of a pair: `BASE+QUOTE` upper-cased (`BTCUSDT`). The stream's topics use it too.
pub(crate) fn symbol(pair: &Pair) -> String {
    format!("{}{}", pair.base, pair.quote).to_ascii_uppercase()
}

#[async_trait]
impl Source for Bybit {
    fn id(&self) -> SourceId {
        ID
    }

    fn symbol(&self, pair: &Pair) -> String {
        symbol(pair)
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let symbol = self.symbol(pair);
        let result: List<Ticker> = self
            .call(
                TICKERS,
                &[("category", "spot"), ("symbol", &symbol)],
                &pair.to_string(),
            )
            .await?;
        let ticker = result
            .list
            .first()
            .ok_or_else(|| SourceError::not_found(ID, pair))?;
        check_echoed_symbol(ID, &symbol, &ticker.symbol)?;
        let price = exchange_price(ID, &ticker.last_price, pair, "lastPrice")?;
        Ok(Quote::now(price, symbol))
    }

    /// Spot instruments with status `Trading`.
    async fn instruments(&self) -> Result<Vec<Pair>, SourceError> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![("category", "spot"), ("limit", "1000")];
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let page: List<Instrument> = self
                .call(INSTRUMENTS, &query, "the spot instruments")
                .await?;
            out.extend(
                page.list
                    .into_iter()
                    .filter(|i| i.status == "Trading")
                    .filter_map(|i| Pair::new(&i.base_coin, &i.quote_coin).ok()),
            );
            if page.next_page_cursor.is_empty() || page.next_page_cursor == cursor {
                break;
            }
            cursor = page.next_page_cursor;
        }
        Ok(out)
    }
}

/// Bybit's `retCode`s.
fn in_band(code: i64, msg: &str, asked: &str) -> SourceError {
    match code {
        10001 => SourceError::PairNotFound {
            from: ID,
            pair: asked.to_owned(),
        },
        10006 | 10018 | 10429 => SourceError::rate_limited(ID),
        10003 | 10004 | 10005 | 10009 | 10010 => {
            SourceError::refused(ID, format!("retCode {code}: {}", clip(msg)))
        }
        _ => SourceError::upstream(ID, format!("retCode {code}: {}", clip(msg))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::Query;
    use axum::http::Uri;
    use axum::routing::get;
    use axum::Router;
    use serde_json::{json, Value};

    use super::*;
    use crate::aggregator::sources::testing::{self, answering, dec, pair, Answer, Subject};

    /// Documented example (ocr-and-sources.md B.13).
    const BTC: &str = r#"{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"BTCUSDT","bid1Price":"20517.96","bid1Size":"2","ask1Price":"20527.77","ask1Size":"1.862172","lastPrice":"20533.13","prevPrice24h":"20393.48","price24hPcnt":"0.0068","highPrice24h":"21128.12","lowPrice24h":"20318.89","turnover24h":"243765620.65899866","volume24h":"11801.27771","usdIndexPrice":"20784.12009279"}]},"retExtInfo":{},"time":1673859087947}"#;
    const NOT_SUPPORTED: &str = r#"{"retCode":10001,"retMsg":"Not supported symbols","result":{},"retExtInfo":{},"time":1726147060461}"#;
    const TOO_MANY: &str = r#"{"retCode":10006,"retMsg":"Too many visits!","result":{},"retExtInfo":{},"time":1726147060461}"#;
    const CLOUDFRONT: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\"><HTML><HEAD><TITLE>ERROR: The request could not be satisfied</TITLE></HEAD><BODY><H1>403 ERROR</H1><H2>The request could not be satisfied.</H2>The Amazon CloudFront distribution is configured to block access from your country.</BODY></HTML>";
    const KEY: &str = "bybit-key-5ecr3t";

    fn source_with(url: &str, extra: Value) -> Bybit {
        testing::adapter(Bybit::new, ID, url, extra)
    }

    fn source(url: &str) -> Bybit {
        source_with(url, json!({}))
    }

    fn subject() -> Subject {
        Subject::of(ID, Bybit::new).pair(pair("BTC/USDT")).key(KEY)
    }

    #[tokio::test]
    async fn ticker_price_keeps_the_exact_decimal() {
        let router = Router::new().route(
            TICKERS,
            get(|Query(q): Query<HashMap<String, String>>| async move {
                assert_eq!(q.get("category").map(String::as_str), Some("spot"));
                match q.get("symbol").map(String::as_str) {
                    Some("BTCUSDT") => BTC,
                    _ => NOT_SUPPORTED,
                }
            }),
        );
        let s = source(&testing::serve(router).await);
        assert!(s.max_batch().is_none());
        let q = s.fetch(&pair("btc/usdt")).await.expect("quote");
        assert_eq!(q.symbol, "BTCUSDT");
        assert_eq!(q.price.value(), dec("20533.13"));
        assert_eq!(
            s.fetch(&pair("FOO/BAR")).await,
            Err(SourceError::PairNotFound {
                from: ID,
                pair: "FOO/BAR".into()
            })
        );
    }

    #[tokio::test]
    async fn precision_is_kept_to_the_last_digit() {
        let s = source(&answering(200, r#"{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"PEPEUSDT","lastPrice":"0.0000089012345678901","bid1Price":"0.0000089"}]},"retExtInfo":{},"time":1729766400000}"#).await);
        let q = s.fetch(&pair("PEPE/USDT")).await.expect("quote");
        assert_eq!(q.price.value().to_string(), "0.0000089012345678901");
    }

    #[tokio::test]
    async fn ret_codes_are_mapped() {
        subject()
            .check_errors(&[
            (200, NOT_SUPPORTED, "FOO/BAR", "not_found"),
            (200, r#"{"retCode":10001,"retMsg":"params error: symbol invalid","result":{},"retExtInfo":{},"time":1}"#, "FOO/BAR", "not_found"),
            ])
            .await;
        for code in [10006, 10018, 10429] {
            let body: &'static str = Box::leak(
                format!(r#"{{"retCode":{code},"retMsg":"Too many visits!","result":{{}},"retExtInfo":{{}},"time":1}}"#).into_boxed_str(),
            );
            let s = source(&answering(200, body).await);
            assert_eq!(
                s.fetch(&pair("BTC/USDT")).await,
                Err(SourceError::RateLimited {
                    from: ID,
                    retry_after: None
                }),
                "{code}"
            );
        }
        for code in [10003, 10004, 10005, 10009, 10010] {
            let body: &'static str = Box::leak(
                format!(r#"{{"retCode":{code},"retMsg":"IP has been banned.","result":{{}},"retExtInfo":{{}},"time":1}}"#)
                    .into_boxed_str(),
            );
            let s = source(&answering(200, body).await);
            assert!(
                matches!(
                    s.fetch(&pair("BTC/USDT")).await,
                    Err(SourceError::Refused { .. })
                ),
                "{code}"
            );
        }
        let s = source(&answering(200, r#"{"retCode":10016,"retMsg":"Internal server error.","result":{},"retExtInfo":{},"time":1}"#).await);
        let e = s.fetch(&pair("BTC/USDT")).await.expect_err("error");
        assert!(
            matches!(&e, SourceError::Upstream { reason, .. } if reason.contains("10016")),
            "{e:?}"
        );
        // Same envelope on a 4xx.
        subject()
            .check_errors(&[
                (400, NOT_SUPPORTED, "FOO/BAR", "not_found"),
                (404, "<html>404</html>", "BTC/USDT", "upstream_error"),
            ])
            .await;
    }

    #[tokio::test]
    async fn empty_list_empty_price_and_wrong_symbol() {
        subject()
            .check_errors(&[
            (200, r#"{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[]},"retExtInfo":{},"time":1}"#, "BTC/USDT", "not_found"),
            (200, r#"{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"NEWUSDT","lastPrice":""}]},"retExtInfo":{},"time":1}"#, "NEW/USDT", "not_found"),
            (200, r#"{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"ETHUSDT","lastPrice":"2600"}]},"retExtInfo":{},"time":1}"#, "BTC/USDT", "malformed"),
            ])
            .await;
    }

    #[tokio::test]
    async fn instruments_are_the_trading_spot_pairs() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        let body = r#"{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"BTCUSDT","baseCoin":"BTC","quoteCoin":"USDT","innovation":"0","status":"Trading","marginTrading":"utaOnly","stTag":"0","lotSizeFilter":{"basePrecision":"0.000001","quotePrecision":"0.00000001","minOrderQty":"0.000048","maxOrderQty":"71.73956243","minOrderAmt":"1","maxOrderAmt":"2000000"},"priceFilter":{"tickSize":"0.01"},"riskParameters":{"priceLimitRatioX":"0.01","priceLimitRatioY":"0.02"}},{"symbol":"OLDUSDT","baseCoin":"OLD","quoteCoin":"USDT","status":"Closed"},{"symbol":"ETHBTC","baseCoin":"ETH","quoteCoin":"BTC","status":"Trading"}],"nextPageCursor":""},"retExtInfo":{},"time":1672712468011}"#;
        let router = Router::new().route(
            INSTRUMENTS,
            get(move |uri: Uri| {
                let h = h.clone();
                async move {
                    h.lock().expect("lock").push(uri.to_string());
                    body
                }
            }),
        );
        let s = source(&testing::serve(router).await);
        assert_eq!(
            s.instruments().await.expect("list"),
            vec![pair("BTC/USDT"), pair("ETH/BTC")]
        );
        assert_eq!(
            hits.lock().expect("lock").as_slice(),
            ["/v5/market/instruments-info?category=spot&limit=1000"]
        );
    }

    #[tokio::test]
    async fn instruments_follow_the_cursor() {
        let router = Router::new().route(
            INSTRUMENTS,
            get(|Query(q): Query<HashMap<String, String>>| async move {
                match q.get("cursor").map(String::as_str) {
                    None => r#"{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"BTCUSDT","baseCoin":"BTC","quoteCoin":"USDT","status":"Trading"}],"nextPageCursor":"page2"},"retExtInfo":{},"time":1}"#,
                    Some("page2") => r#"{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"ETHUSDT","baseCoin":"ETH","quoteCoin":"USDT","status":"Trading"}],"nextPageCursor":""},"retExtInfo":{},"time":1}"#,
                    Some(_) => NOT_SUPPORTED,
                }
            }),
        );
        let s = source(&testing::serve(router).await);
        assert_eq!(
            s.instruments().await.expect("list"),
            vec![pair("BTC/USDT"), pair("ETH/USDT")]
        );
    }

    testing::transport_checks! {
        subject: subject(),
        retried: (TOO_MANY, BTC, "20533.13"),
        rate_limited: TOO_MANY,
        refused: &[(451, CLOUDFRONT), (403, CLOUDFRONT)],
        slow: BTC,
        garbage: (
            &[
                r#"{"retCode":0,"retMsg":"OK"}"#,
                r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"symbol":"BTCUSDT"}]}}"#,
            ],
            instruments: true,
        ),
        key_never_sent: ("FOO/BAR", Answer::new(200, NOT_SUPPORTED)),
    }
}
