//! OKX v5 REST: `GET /api/v5/market/ticker?instId=BTC-USDT` (one pair),
//! `GET /api/v5/market/tickers?instType=SPOT` (every spot ticker: the batch, looked up locally),
//! `GET /api/v5/public/instruments?instType=SPOT` (instrument list). Default host
//! `https://www.okx.com`; `baseUrl` overrides it (e.g. `https://my.okx.com`).
//!
//! Symbols are `BASE-QUOTE` upper-cased (`btc/usdt` → `BTC-USDT`). OKX answers errors as
//! HTTP 200 (or 4xx) `{"code":"<non-zero>","msg":…,"data":[]}`: `51001` (instrument does not
//! exist) and `51000` about `instId` → not found; `50011`/`50061` (rate limit) → rate limited;
//! any other code → upstream error. `code:"0"` with no data → not found.
//!
//! The API key, if configured, is not sent: market data is public and OKX authentication needs
//! a signature (secret and passphrase) that a key alone cannot give.

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::aggregator::pair::Pair;
use crate::aggregator::sources::client::{rest_adapter, Response};
use crate::aggregator::sources::{
    batch_size, check_echoed_symbol, clip, exchange_price, parse_json, BatchResult, Quote, Source,
    SourceError,
};
use crate::config::schema::sources::SourceId;

const ID: SourceId = SourceId::Okx;

/// The public endpoint used when the configuration gives no `baseUrl`.
pub const DEFAULT_BASE_URL: &str = "https://www.okx.com";

const TICKER: &str = "/api/v5/market/ticker";
const TICKERS: &str = "/api/v5/market/tickers";
const INSTRUMENTS: &str = "/api/v5/public/instruments";

rest_adapter!(
    Okx,
    ID,
    DEFAULT_BASE_URL,
    |config| max_batch: usize = batch_size(config, ID, 1),
);

impl Okx {
    /// GET `path?query` and unwrap OKX's envelope; `asked` names what a "not found" is about.
    async fn call(
        &self,
        path: &str,
        query: &[(&str, &str)],
        asked: &str,
    ) -> Result<Response, SourceError> {
        let mut url = self.client.url(path);
        url.query_pairs_mut().extend_pairs(query);
        let response = self.client.get(url, HeaderMap::new()).await?;
        // Errors come as 200 or 4xx with the same envelope; check the code before the data.
        let head: Result<Head, _> = serde_json::from_slice(&response.body);
        match head {
            Ok(h) if response.status.is_success() && h.code() == "0" => Ok(response),
            Ok(h) if h.code.is_some() && h.code() != "0" => Err(in_band(&h.code(), &h.msg, asked)),
            _ if !response.status.is_success() => {
                Err(SourceError::http_status(ID, response.status))
            }
            Ok(_) => Err(SourceError::malformed_clipped(ID, "no code in the answer")),
            Err(e) => Err(SourceError::malformed_clipped(ID, e.to_string())),
        }
    }
}

/// The envelope's status part.
#[derive(Deserialize)]
struct Head {
    code: Option<Value>,
    #[serde(default)]
    msg: String,
}

impl Head {
    fn code(&self) -> String {
        match &self.code {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }
}

#[derive(Deserialize)]
struct Data<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ticker<'a> {
    inst_id: String,
    #[serde(borrow)]
    last: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Instrument {
    base_ccy: String,
    quote_ccy: String,
    state: String,
}

/// The symbol of a pair: `BASE-QUOTE` upper-cased, the instrument id (`BTC-USDT`).
/// The stream's topics use it too.
pub(crate) fn symbol(pair: &Pair) -> String {
    format!("{}-{}", pair.base, pair.quote).to_ascii_uppercase()
}

#[async_trait]
impl Source for Okx {
    fn id(&self) -> SourceId {
        ID
    }

    fn symbol(&self, pair: &Pair) -> String {
        symbol(pair)
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let symbol = self.symbol(pair);
        let response = self
            .call(TICKER, &[("instId", &symbol)], &pair.to_string())
            .await?;
        let data: Data<Ticker<'_>> = parse_json(ID, &response.body)?;
        let ticker = data
            .data
            .first()
            .ok_or_else(|| SourceError::not_found(ID, pair))?;
        check_echoed_symbol(ID, &symbol, &ticker.inst_id)?;
        let price = exchange_price(ID, ticker.last, pair, "price")?;
        Ok(Quote::now(price, symbol))
    }

    fn max_batch(&self) -> Option<usize> {
        Some(self.max_batch)
    }

    /// OKX has no multi-instrument ticker: one `tickers?instType=SPOT` request answers every
    /// pair of the batch, each looked up by its `instId` (absent → not found).
    async fn fetch_batch(&self, pairs: &[Pair]) -> Result<BatchResult, SourceError> {
        let mut out = BatchResult::new();
        if let [pair] = pairs {
            out.insert(pair.clone(), self.fetch(pair).await);
            return Ok(out);
        }
        if pairs.is_empty() {
            return Ok(out);
        }
        let response = match self
            .call(TICKERS, &[("instType", "SPOT")], "the spot tickers")
            .await
        {
            Ok(r) => r,
            Err(e) => {
                out.extend(pairs.iter().map(|p| (p.clone(), Err(e.clone()))));
                return Ok(out);
            }
        };
        let data: Data<Ticker<'_>> = match parse_json(ID, &response.body) {
            Ok(d) => d,
            Err(e) => {
                out.extend(pairs.iter().map(|p| (p.clone(), Err(e.clone()))));
                return Ok(out);
            }
        };
        let mut by_id: HashMap<&str, &RawValue> = HashMap::with_capacity(data.data.len());
        for t in &data.data {
            by_id.entry(t.inst_id.as_str()).or_insert(t.last);
        }
        let received_at = SystemTime::now();
        for pair in pairs {
            let symbol = self.symbol(pair);
            let result = match by_id.get(symbol.as_str()) {
                Some(raw) => exchange_price(ID, raw, pair, "price").map(|price| Quote {
                    price,
                    symbol,
                    received_at,
                }),
                None => Err(SourceError::not_found(ID, pair)),
            };
            out.insert(pair.clone(), result);
        }
        Ok(out)
    }

    /// Spot instruments in state `live`.
    async fn instruments(&self) -> Result<Vec<Pair>, SourceError> {
        let response = self
            .call(INSTRUMENTS, &[("instType", "SPOT")], "the spot instruments")
            .await?;
        let data: Data<Instrument> = parse_json(ID, &response.body)?;
        Ok(data
            .data
            .into_iter()
            .filter(|i| i.state == "live")
            .filter_map(|i| Pair::new(&i.base_ccy, &i.quote_ccy).ok())
            .collect())
    }
}

/// OKX's in-band error codes.
fn in_band(code: &str, msg: &str, asked: &str) -> SourceError {
    match code {
        // "Instrument ID does not exist" / "Instrument ID, Instrument ID code, or Spread ID doesn't exist."
        "51001" => SourceError::PairNotFound {
            from: ID,
            pair: asked.to_owned(),
        },
        // "Parameter instId error": an instId OKX cannot have.
        "51000" if msg.contains("instId") => SourceError::PairNotFound {
            from: ID,
            pair: asked.to_owned(),
        },
        // "Rate limit reached" / "Requests too frequent".
        "50011" | "50061" => SourceError::rate_limited(ID),
        _ => SourceError::upstream(ID, format!("code {}: {}", clip(code), clip(msg))),
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
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{self, answering, dec, pair, Answer, Subject};

    /// Live capture (ocr-and-sources.md B.2).
    const BTC: &str = r#"{"code":"0","data":[{"instType":"SPOT","instId":"BTC-USDT","last":"84070.9","lastSz":"0.06810322","askPx":"84071","askSz":"0.61943805","bidPx":"84070.9","bidSz":"4.80941911","open24h":"84515.8","high24h":"84944.4","low24h":"82874.5","volCcy24h":"511984068.580413188","vol24h":"6094.07117965","ts":"1790323049365","sodUtc0":"84409.9","sodUtc8":"84419.6"}],"msg":""}"#;
    const NO_INSTRUMENT: &str =
        r#"{"code":"51001","data":[],"msg":"Instrument ID does not exist"}"#;
    const NO_INSTRUMENT_NEW: &str = r#"{"code":"51001","data":[],"msg":"Instrument ID, Instrument ID code, or Spread ID doesn't exist."}"#;
    const KEY: &str = "okx-key-5ecr3t";

    const TOO_MANY: &str = r#"{"msg":"Too Many Requests","code":"50011"}"#;

    fn source_with(url: &str, extra: Value) -> Okx {
        testing::adapter(Okx::new, ID, url, extra)
    }

    fn source(url: &str) -> Okx {
        source_with(url, json!({}))
    }

    fn subject() -> Subject {
        Subject::of(ID, Okx::new).pair(pair("BTC/USDT")).key(KEY)
    }

    fn ticker(inst_id: &str, last: &str) -> String {
        format!(
            r#"{{"instType":"SPOT","instId":"{inst_id}","last":"{last}","lastSz":"0.1","askPx":"{last}","askSz":"1","bidPx":"{last}","bidSz":"1","open24h":"1","high24h":"1","low24h":"1","volCcy24h":"1","vol24h":"1","ts":"1790323049365","sodUtc0":"1","sodUtc8":"1"}}"#
        )
    }

    /// A ticker answer holding only `ticker(inst_id, last)` (leaked: the checks take `&'static
    /// str` bodies).
    fn one_ticker(inst_id: &str, last: &str) -> &'static str {
        let body = format!(
            r#"{{"code":"0","msg":"","data":[{}]}}"#,
            ticker(inst_id, last)
        );
        Box::leak(body.into_boxed_str())
    }

    #[tokio::test]
    async fn single_price_keeps_the_exact_decimal() {
        let router = Router::new().route(
            TICKER,
            get(|Query(q): Query<HashMap<String, String>>| async move {
                match q.get("instId").map(String::as_str) {
                    Some("BTC-USDT") => BTC,
                    _ => NO_INSTRUMENT,
                }
            }),
        );
        let s = source(&testing::serve(router).await);
        let q = s.fetch(&pair("btc-usdt")).await.expect("quote");
        assert_eq!(q.symbol, "BTC-USDT");
        assert_eq!(q.price.value(), dec("84070.9"));
        let e = s.fetch(&pair("FOO/BAR")).await.expect_err("unknown");
        assert_eq!(
            e,
            SourceError::PairNotFound {
                from: ID,
                pair: "FOO/BAR".into()
            }
        );
    }

    #[tokio::test]
    async fn precision_is_kept_to_the_last_digit() {
        let body = one_ticker("SHIB-USDT", "0.000012345678901234567");
        let s = source(&answering(200, body).await);
        let q = s.fetch(&pair("SHIB/USDT")).await.expect("quote");
        assert_eq!(q.price.value().to_string(), "0.000012345678901234567");
    }

    #[tokio::test]
    async fn in_band_errors_are_mapped() {
        for body in [
            NO_INSTRUMENT,
            NO_INSTRUMENT_NEW,
            r#"{"code":"51000","data":[],"msg":"Parameter instId error"}"#,
        ] {
            let s = source(&answering(200, body).await);
            assert!(
                matches!(
                    s.fetch(&pair("FOO/BAR")).await,
                    Err(SourceError::PairNotFound { .. })
                ),
                "{body}"
            );
        }
        // Same envelope on an HTTP 400.
        subject()
            .check_errors(&[(400, NO_INSTRUMENT, "FOO/BAR", "not_found")])
            .await;

        for body in [
            r#"{"msg":"Too Many Requests","code":"50011"}"#,
            r#"{"code":"50061","data":[],"msg":"Sub-account rate limit exceeded"}"#,
        ] {
            let s = source(&answering(200, body).await);
            assert_eq!(
                s.fetch(&pair("BTC/USDT")).await,
                Err(SourceError::RateLimited {
                    from: ID,
                    retry_after: None
                }),
                "{body}"
            );
        }
        let s = source(&answering(200, r#"{"code":"50001","data":[],"msg":"Service temporarily unavailable. Please try again later."}"#).await);
        let e = s.fetch(&pair("BTC/USDT")).await.expect_err("error");
        assert!(
            matches!(&e, SourceError::Upstream { reason, .. } if reason.contains("50001")),
            "{e:?}"
        );
        subject()
            .check_errors(&[(
                200,
                r#"{"code":"51000","data":[],"msg":"Parameter instType error"}"#,
                "BTC/USDT",
                "upstream_error",
            )])
            .await;
    }

    #[tokio::test]
    async fn empty_data_zero_price_and_wrong_instrument() {
        subject()
            .check_errors(&[(
                200,
                r#"{"code":"0","msg":"","data":[]}"#,
                "BTC/USDT",
                "not_found",
            )])
            .await;
        let body = one_ticker("NEW-USDT", "");
        subject()
            .check_errors(&[(200, body, "NEW/USDT", "not_found")])
            .await;
        let body = one_ticker("ETH-USDT", "2600");
        subject()
            .check_errors(&[
                (200, body, "BTC/USDT", "malformed"),
                (404, "<html>404</html>", "BTC/USDT", "upstream_error"),
            ])
            .await;
    }

    #[tokio::test]
    async fn batch_is_one_tickers_request_and_every_pair_gets_an_answer() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        let body = format!(
            r#"{{"code":"0","msg":"","data":[{},{},{}]}}"#,
            ticker("BTC-USDT", "67123.40000000"),
            ticker("ETH-USDT", "2600.12"),
            ticker("NEW-USDT", "")
        );
        let router = Router::new().route(
            TICKERS,
            get(move |uri: Uri| {
                let h = h.clone();
                let body = body.clone();
                async move {
                    h.lock().expect("lock").push(uri.to_string());
                    body
                }
            }),
        );
        let s = source(&testing::serve(router).await);
        assert_eq!(s.max_batch(), Some(200));
        let (pairs, out) = testing::check_batch(
            &s,
            &["BTC/USDT", "eth/usdt", "FOO/BAR", "NEW/USDT"],
            &["67123.4", "2600.12", "not_found", "not_found"],
        )
        .await;
        assert_eq!(out[&pairs[0]].as_ref().expect("btc").symbol, "BTC-USDT");
        assert_eq!(
            hits.lock().expect("lock").as_slice(),
            ["/api/v5/market/tickers?instType=SPOT"]
        );
    }

    #[tokio::test]
    async fn batch_failure_reaches_every_pair() {
        let s = source_with(
            &answering(200, r#"{"msg":"Too Many Requests","code":"50011"}"#).await,
            json!({"maxBatchSize": 50}),
        );
        assert_eq!(s.max_batch(), Some(50));
        let pairs = [pair("BTC/USDT"), pair("ETH/USDT")];
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert!(out
            .values()
            .all(|r| matches!(r, Err(SourceError::RateLimited { .. }))));
        let s = source(&answering(200, "not json").await);
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert!(out
            .values()
            .all(|r| matches!(r, Err(SourceError::Malformed { .. }))));
    }

    #[tokio::test]
    async fn instruments_are_the_live_spot_instruments() {
        let body = r#"{"code":"0","msg":"","data":[{"alias":"","baseCcy":"BTC","category":"1","ctMult":"","ctType":"","ctVal":"","ctValCcy":"","expTime":"","instFamily":"","instId":"BTC-USDT","instType":"SPOT","lever":"10","listTime":"1548133413000","lotSz":"0.00000001","maxIcebergSz":"9999999999","maxLmtSz":"9999999999","maxMktSz":"1000000","minSz":"0.00001","quoteCcy":"USDT","settleCcy":"","state":"live","tickSz":"0.1","uly":""},{"baseCcy":"OLD","instId":"OLD-USDT","instType":"SPOT","quoteCcy":"USDT","state":"suspend"},{"baseCcy":"ETH","instId":"ETH-BTC","instType":"SPOT","quoteCcy":"BTC","state":"live"}]}"#;
        let router = Router::new().route(
            INSTRUMENTS,
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                assert_eq!(q.get("instType").map(String::as_str), Some("SPOT"));
                body
            }),
        );
        let s = source(&testing::serve(router).await);
        assert_eq!(
            s.instruments().await.expect("list"),
            vec![pair("BTC/USDT"), pair("ETH/BTC")]
        );
    }

    /// The body OKX sends with its refusals.
    const REFUSAL: &str = r#"{"msg":"","code":"51155"}"#;

    testing::transport_checks! {
        subject: subject(),
        retried: (TOO_MANY, BTC, "84070.9"),
        rate_limited: TOO_MANY,
        refused: &[(451, REFUSAL), (403, REFUSAL)],
        slow: BTC,
        garbage: (
            &[
                r#"{"data":[]}"#,
                r#"{"code":"0","msg":"","data":[{"instId":"BTC-USDT"}]}"#,
            ],
            instruments: true,
        ),
        key_never_sent: ("FOO/BAR", Answer::new(200, NO_INSTRUMENT)),
    }
}
