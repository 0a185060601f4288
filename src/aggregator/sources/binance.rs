//! Binance spot REST: `GET /api/v3/ticker/price` (one symbol, or a `symbols` list as the batch),
//! `GET /api/v3/exchangeInfo` (instrument list). Default host: `https://api.binance.us` (the
//! reference's choice — api.binance.com answers 451 from restricted locations); `baseUrl`
//! overrides it (e.g. `https://data-api.binance.vision`).
//!
//! Symbols are `BASE+QUOTE` upper-cased (`BTC/USDT` → `BTCUSDT`). Errors: HTTP 400
//! `{"code":-1121,"msg":"Invalid symbol."}` (and `-1100` illegal characters) → not found; HTTP
//! 418 (IP auto-ban after ignored 429s) and code `-1003` → rate limited; any other code →
//! upstream error. 429/5xx/403/451 are the client's. A zero price (a symbol without trades, e.g.
//! in `BREAK`) is "no price": not found.
//!
//! The API key, if configured, is not sent: the ticker and exchange-information endpoints are
//! public (security type NONE) and a key gives them nothing.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::OnceCell;

use crate::aggregator::pair::Pair;
use crate::aggregator::sources::client::{rest_adapter, Response};
use crate::aggregator::sources::{
    batch_size, check_echoed_symbol, clip, parse_json, BatchResult, PriceRead, Quote, Source,
    SourceError,
};
use crate::config::schema::sources::SourceId;

const ID: SourceId = SourceId::Binance;

/// The public endpoint used when the configuration gives no `baseUrl`.
pub const DEFAULT_BASE_URL: &str = "https://api.binance.us";

const TICKER_PRICE: &str = "/api/v3/ticker/price";
const EXCHANGE_INFO: &str = "/api/v3/exchangeInfo";

/// Binance error codes meaning "no such symbol" (`Invalid symbol.`, illegal characters in it).
const INVALID_SYMBOL: i64 = -1121;
const ILLEGAL_CHARS: i64 = -1100;
/// `Too many requests` / `Way too much request weight used; IP banned until …`.
const TOO_MANY_REQUESTS: i64 = -1003;

/// Longest `symbols=[…]` list sent; a larger batch asks for the full list instead (same request
/// weight, 4), which keeps the URL short (500 symbols would be ~10 kB of query).
const MAX_SYMBOLS_PARAM: usize = 100;

/// Ticker prices by symbol.
type Prices = HashMap<String, PriceRead>;

rest_adapter!(
    Binance,
    ID,
    DEFAULT_BASE_URL,
    |config| max_batch: usize = batch_size(config, ID, 1),
);

impl Binance {
    /// `ticker/price` for a list of symbols, or (`None`) every symbol.
    async fn tickers(&self, symbols: Option<&[String]>) -> Result<Prices, SourceError> {
        let mut url = self.client.url(TICKER_PRICE);
        if let Some(symbols) = symbols {
            let list = serde_json::to_string(symbols)
                .map_err(|e| SourceError::malformed_clipped(ID, e.to_string()))?;
            url.query_pairs_mut().append_pair("symbols", &list);
        }
        let response = self.client.get(url, HeaderMap::new()).await?;
        if !response.status.is_success() {
            return Err(error_answer(&response, "one of the asked symbols"));
        }
        let tickers: Vec<Ticker<'_>> = parse_json(ID, &response.body)?;
        let mut out = HashMap::with_capacity(tickers.len());
        for t in tickers {
            out.entry(t.symbol)
                .or_insert_with(|| PriceRead::of(t.price));
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct Ticker<'a> {
    symbol: String,
    #[serde(borrow)]
    price: &'a RawValue,
}

#[derive(Deserialize)]
struct ApiError {
    code: i64,
    #[serde(default)]
    msg: String,
}

#[derive(Deserialize)]
struct ExchangeInfo {
    symbols: Vec<SymbolInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SymbolInfo {
    status: String,
    base_asset: String,
    quote_asset: String,
}

/// The symbol of a pair: `BASE+QUOTE` upper-cased (`BTCUSDT`). The stream's topics use it too.
pub(crate) fn symbol(pair: &Pair) -> String {
    format!("{}{}", pair.base, pair.quote).to_ascii_uppercase()
}

#[async_trait]
impl Source for Binance {
    fn id(&self) -> SourceId {
        ID
    }

    fn symbol(&self, pair: &Pair) -> String {
        symbol(pair)
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let symbol = self.symbol(pair);
        let mut url = self.client.url(TICKER_PRICE);
        url.query_pairs_mut().append_pair("symbol", &symbol);
        let response = self.client.get(url, HeaderMap::new()).await?;
        if !response.status.is_success() {
            return Err(error_answer(&response, &pair.to_string()));
        }
        let ticker: Ticker<'_> = parse_json(ID, &response.body)?;
        check_echoed_symbol(ID, &symbol, &ticker.symbol)?;
        PriceRead::of(ticker.price).quote(ID, pair, symbol)
    }

    fn max_batch(&self) -> Option<usize> {
        Some(self.max_batch)
    }

    /// One `symbols=[…]` request per `max_batch` pairs (the full list past
    /// [`MAX_SYMBOLS_PARAM`]). Binance fails the whole list when one symbol is unknown
    /// (`-1121`); then the full ticker list (same request weight) is fetched once and every pair
    /// is looked up in it, so each pair still gets its own answer. A failed request gives its
    /// error to each pair it carried.
    async fn fetch_batch(&self, pairs: &[Pair]) -> Result<BatchResult, SourceError> {
        let mut out = BatchResult::new();
        let all = OnceCell::new();
        for chunk in pairs.chunks(self.max_batch) {
            if let [pair] = chunk {
                out.insert(pair.clone(), self.fetch(pair).await);
                continue;
            }
            let symbols: Vec<String> = chunk
                .iter()
                .map(symbol)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let listed = if symbols.len() <= MAX_SYMBOLS_PARAM {
                self.tickers(Some(&symbols)).await
            } else {
                Err(SourceError::PairNotFound {
                    from: ID,
                    pair: "more symbols than one list takes".into(),
                })
            };
            let answer = match listed {
                Err(SourceError::PairNotFound { .. }) => {
                    all.get_or_init(|| self.tickers(None)).await.clone()
                }
                other => other,
            };
            for pair in chunk {
                let symbol = self.symbol(pair);
                let result = match &answer {
                    Ok(prices) => match prices.get(&symbol) {
                        Some(price) => price.quote(ID, pair, symbol),
                        None => Err(SourceError::not_found(ID, pair)),
                    },
                    Err(e) => Err(e.clone()),
                };
                out.insert(pair.clone(), result);
            }
        }
        Ok(out)
    }

    /// Symbols with status `TRADING` from `exchangeInfo`.
    async fn instruments(&self) -> Result<Vec<Pair>, SourceError> {
        let response = self
            .client
            .get(self.client.url(EXCHANGE_INFO), HeaderMap::new())
            .await?;
        if !response.status.is_success() {
            return Err(error_answer(&response, "exchange information"));
        }
        let info: ExchangeInfo = parse_json(ID, &response.body)?;
        Ok(info
            .symbols
            .into_iter()
            .filter(|s| s.status == "TRADING")
            .filter_map(|s| Pair::new(&s.base_asset, &s.quote_asset).ok())
            .collect())
    }
}

/// A non-2xx answer that reached the adapter (400, 404, 418, …): Binance's `{code, msg}`.
fn error_answer(response: &Response, asked: &str) -> SourceError {
    let status = response.status;
    let body: Option<ApiError> = serde_json::from_slice(&response.body).ok();
    match body {
        Some(e) if e.code == INVALID_SYMBOL || e.code == ILLEGAL_CHARS => {
            SourceError::PairNotFound {
                from: ID,
                pair: asked.to_owned(),
            }
        }
        Some(e) if e.code == TOO_MANY_REQUESTS => SourceError::rate_limited(ID),
        _ if status == StatusCode::IM_A_TEAPOT => SourceError::rate_limited(ID),
        Some(e) => SourceError::upstream(
            ID,
            format!("HTTP {status}: code {} {}", e.code, clip(&e.msg)),
        ),
        None => SourceError::http_status(ID, status),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

    use axum::extract::Query;
    use axum::http::{StatusCode, Uri};
    use axum::routing::get;
    use axum::Router;
    use serde_json::{json, Value};

    use super::*;
    use crate::aggregator::sources::testing::{self, answering, dec, pair, Answer, Subject};

    const BTC: &str = r#"{"symbol":"BTCUSDT","price":"67123.45000000"}"#;
    const INVALID: &str = r#"{"code":-1121,"msg":"Invalid symbol."}"#;
    const GEO: &str = r#"{"code":0,"msg":"Service unavailable from a restricted location according to 'b. Eligibility' in https://www.binance.com/en/terms. Please contact customer service if you believe you received this message in error."}"#;
    const KEY: &str = "binance-key-5ecr3t";

    const TOO_MANY: &str = r#"{"code":-1003,"msg":"Too many requests."}"#;

    fn source_with(url: &str, extra: Value) -> Binance {
        testing::adapter(Binance::new, ID, url, extra)
    }

    fn source(url: &str) -> Binance {
        source_with(url, json!({}))
    }

    fn subject() -> Subject {
        Subject::of(ID, Binance::new)
            .pair(pair("BTC/USDT"))
            .key(KEY)
    }

    #[tokio::test]
    async fn single_price_keeps_the_exact_decimal() {
        let router = Router::new().route(
            TICKER_PRICE,
            get(|Query(q): Query<HashMap<String, String>>| async move {
                match q.get("symbol").map(String::as_str) {
                    Some("BTCUSDT") => (StatusCode::OK, BTC),
                    _ => (StatusCode::BAD_REQUEST, INVALID),
                }
            }),
        );
        let s = source(&testing::serve(router).await);
        let q = s.fetch(&pair("btc/usdt")).await.expect("quote");
        assert_eq!(q.symbol, "BTCUSDT");
        assert_eq!(q.price.value(), dec("67123.45"));
        assert_eq!(q.price.to_string(), "67123.45");
        assert!(q.received_at <= SystemTime::now());
    }

    #[tokio::test]
    async fn invalid_symbol_is_not_found() {
        let s = source(&answering(400, INVALID).await);
        let e = s.fetch(&pair("FOO/BAR")).await.expect_err("error");
        assert_eq!(
            e,
            SourceError::PairNotFound {
                from: ID,
                pair: "FOO/BAR".into()
            }
        );
        subject()
            .check_errors(&[
            (400, r#"{"code":-1100,"msg":"Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."}"#, "A.B/C", "not_found"),
            ])
            .await;
    }

    #[tokio::test]
    async fn other_codes_are_upstream_errors_and_418_is_a_rate_limit() {
        let s = source(&answering(400, r#"{"code":-1104,"msg":"Not all sent parameters were read; read '1' parameter(s) but was sent '2'."}"#).await);
        let e = s.fetch(&pair("BTC/USDT")).await.expect_err("error");
        assert!(
            matches!(&e, SourceError::Upstream { reason, .. } if reason.contains("-1104")),
            "{e:?}"
        );

        subject()
            .check_errors(&[
            (418, r#"{"code":-1003,"msg":"Way too much request weight used; IP banned until 1563869190000. Please use WebSocket Streams for live updates to avoid bans."}"#, "BTC/USDT", "rate_limited"),
            (418, "", "BTC/USDT", "rate_limited"),
            ])
            .await;

        let s = source(&answering(404, "<html>not here</html>").await);
        let e = s.fetch(&pair("BTC/USDT")).await.expect_err("error");
        assert!(
            matches!(&e, SourceError::Upstream { reason, .. } if reason.contains("404")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn wrong_symbol_zero_price_and_bad_price() {
        subject()
            .check_errors(&[
                (
                    200,
                    r#"{"symbol":"ETHUSDT","price":"2600.1"}"#,
                    "BTC/USDT",
                    "malformed",
                ),
                (
                    200,
                    r#"{"symbol":"BTCUSDT","price":"0.00000000"}"#,
                    "BTC/USDT",
                    "not_found",
                ),
                (
                    200,
                    r#"{"symbol":"BTCUSDT","price":"-1"}"#,
                    "BTC/USDT",
                    "malformed",
                ),
            ])
            .await;
    }

    /// A ticker/price endpoint that behaves like Binance: `symbol` answers one object,
    /// `symbols` fails entirely on one unknown symbol, no parameter lists everything.
    fn batch_server(hits: Arc<Mutex<Vec<String>>>) -> Router {
        Router::new().route(
            TICKER_PRICE,
            get(move |uri: Uri, Query(q): Query<HashMap<String, String>>| {
                let hits = hits.clone();
                async move {
                    hits.lock().expect("lock").push(uri.to_string());
                    let known = [
                        ("BTCUSDT", "\"67123.45000000\""),
                        ("ETHUSDT", "\"2600.12000000\""),
                        ("BNBUSDT", "\"0.00000000\""),
                        ("LTCBTC", "\"4.00000200\""),
                    ];
                    let render = |items: Vec<(&str, &str)>| {
                        let parts: Vec<String> = items
                            .iter()
                            .map(|(s, p)| format!(r#"{{"symbol":"{s}","price":{p}}}"#))
                            .collect();
                        format!("[{}]", parts.join(","))
                    };
                    if let Some(one) = q.get("symbol") {
                        return match known.iter().find(|(s, _)| s == one) {
                            Some((s, p)) => {
                                (StatusCode::OK, format!(r#"{{"symbol":"{s}","price":{p}}}"#))
                            }
                            None => (StatusCode::BAD_REQUEST, INVALID.to_owned()),
                        };
                    }
                    match q.get("symbols") {
                        None => (StatusCode::OK, render(known.to_vec())),
                        Some(list) => {
                            let asked: Vec<String> = serde_json::from_str(list).expect("JSON list");
                            let found: Vec<_> = known
                                .iter()
                                .copied()
                                .filter(|(s, _)| asked.iter().any(|a| a == s))
                                .collect();
                            if found.len() == asked.len() {
                                (StatusCode::OK, render(found))
                            } else {
                                (StatusCode::BAD_REQUEST, INVALID.to_owned())
                            }
                        }
                    }
                }
            }),
        )
    }

    /// A source against [`batch_server`], and the requests that server sees.
    async fn batch_source() -> (Binance, Arc<Mutex<Vec<String>>>) {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let url = testing::serve(batch_server(hits.clone())).await;
        (source(&url), hits)
    }

    #[tokio::test]
    async fn batch_of_known_symbols_is_one_request() {
        let (s, hits) = batch_source().await;
        let (pairs, out) = testing::check_batch(
            &s,
            &["BTC/USDT", "ETH/USDT", "LTC/BTC"],
            &["67123.45", "2600.12", "4.000002"],
        )
        .await;
        assert_eq!(out[&pairs[2]].as_ref().expect("ltc").symbol, "LTCBTC");
        let hits = hits.lock().expect("lock");
        assert_eq!(hits.len(), 1);
        assert!(hits[0].contains("symbols=%5B%22"), "{}", hits[0]);
    }

    #[tokio::test]
    async fn batch_with_an_unknown_symbol_still_answers_every_pair() {
        let (s, hits) = batch_source().await;
        // A zero price (BNB) is "no price", not a quote.
        let (pairs, out) = testing::check_batch(
            &s,
            &["BTC/USDT", "FOO/BAR", "BNB/USDT", "eth-usdt"],
            &["67123.45", "not_found", "not_found", "2600.12"],
        )
        .await;
        assert_eq!(out[&pairs[3]].as_ref().expect("eth").symbol, "ETHUSDT");
        let hits = hits.lock().expect("lock");
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert_eq!(hits[1], TICKER_PRICE);
    }

    #[tokio::test]
    async fn batch_respects_max_batch_size_and_reports_request_failures_per_pair() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let url = testing::serve(batch_server(hits.clone())).await;
        let s = source_with(&url, json!({"maxBatchSize": 2}));
        assert_eq!(s.max_batch(), Some(2));
        let pairs = [pair("BTC/USDT"), pair("ETH/USDT"), pair("LTC/BTC")];
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert!(out.values().all(Result::is_ok));
        assert_eq!(hits.lock().expect("lock").len(), 2);
        assert_eq!(source(&url).max_batch(), Some(500));

        let s = source(&answering(503, "").await);
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert_eq!(out.len(), 3);
        assert!(out
            .values()
            .all(|r| matches!(r, Err(SourceError::Upstream { .. }))));
    }

    #[tokio::test]
    async fn a_long_batch_asks_for_the_full_list() {
        let (s, hits) = batch_source().await;
        let mut pairs = vec![pair("BTC/USDT")];
        pairs.extend((0..MAX_SYMBOLS_PARAM).map(|i| pair(&format!("C{i}/USDT"))));
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert_eq!(out.len(), MAX_SYMBOLS_PARAM + 1);
        assert_eq!(
            out[&pairs[0]].as_ref().expect("btc").price.value(),
            dec("67123.45")
        );
        assert!(out
            .iter()
            .skip(1)
            .all(|(_, r)| matches!(r, Err(SourceError::PairNotFound { .. }))));
        assert_eq!(hits.lock().expect("lock").as_slice(), [TICKER_PRICE]);
    }

    #[tokio::test]
    async fn instruments_are_the_trading_symbols() {
        let body = r#"{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}],"exchangeFilters":[],"symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","baseAssetPrecision":8,"quoteAsset":"BTC","quotePrecision":8,"quoteAssetPrecision":8,"orderTypes":["LIMIT","MARKET"],"icebergAllowed":true,"isSpotTradingAllowed":true,"filters":[],"permissions":[]},{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","baseAssetPrecision":8,"quoteAsset":"USDT","quotePrecision":8,"quoteAssetPrecision":8,"orderTypes":["LIMIT"],"filters":[]},{"symbol":"OLDUSDT","status":"BREAK","baseAsset":"OLD","baseAssetPrecision":8,"quoteAsset":"USDT","quotePrecision":8,"quoteAssetPrecision":8,"orderTypes":["LIMIT"],"filters":[]}]}"#;
        let router = Router::new().route(EXCHANGE_INFO, get(move || async move { body }));
        let s = source(&testing::serve(router).await);
        let list = s.instruments().await.expect("instruments");
        assert_eq!(list, vec![pair("ETH/BTC"), pair("BTC/USDT")]);
    }

    testing::transport_checks! {
        subject: subject(),
        retried: (TOO_MANY, BTC, "67123.45000000"),
        rate_limited: TOO_MANY,
        refused: &[(451, GEO), (403, "")],
        slow: BTC,
        garbage: (&[r#"{"symbol":"BTCUSDT"}"#], instruments: true),
        key_never_sent: ("FOO/BAR", Answer::new(400, INVALID)),
    }
}
