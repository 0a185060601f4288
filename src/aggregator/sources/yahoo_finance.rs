//! Yahoo Finance (unofficial, undocumented chart API):
//! `GET https://query1.finance.yahoo.com/v8/finance/chart/{TICKER}?interval=1d&range=1d`; the price
//! is `chart.result[0].meta.regularMarketPrice` (a JSON number, read from its text) and
//! `chart.result[0].meta.currency` is the currency that price is in.
//!
//! ## Symbol mapping
//!
//! The reference mapped every `X/USD` and `X/EUR` to the bare ticker `X`, so `X/EUR` was priced
//! with the USD listing (reference-solution.md §10 item 25), and `BTC/USD` / `ETH/USD` now hit the
//! Grayscale mini-trust ETFs listed as `BTC` / `ETH`. Here a pair maps to an ordered list of
//! candidate tickers, and an answer counts only if `meta.currency` is the asked quote:
//!
//! 1. both codes are ISO 4217 fiat currencies → the FX ticker `EURUSD=X`;
//! 2. the base already is a Yahoo ticker with an exchange suffix or class (`C3M.PA`, `CSPX.L`,
//!    `BRK-B`, also `BTC-USD`) → that ticker, as given (upper-cased);
//! 3. otherwise → the crypto ticker `BASE-QUOTE` (`BTC-USD`, `ETH-EUR`), and only if Yahoo does
//!    not know it, the bare listing `BASE` (`COIN`, `AAPL`).
//!
//! The currency check is exact (`meta.currency` = the quote as given or upper-cased): `VOD.L`
//! answers in `GBp` (pence), which is not `GBP`, so `VOD.L/GBP` is not found while `VOD.L/GBp`
//! is. A mismatch is `PairNotFound` — never the price of another currency. The fallback to the
//! bare ticker happens only on a definite "not found" of the crypto ticker, never after a
//! timeout or an upstream error; the ticker that answered is remembered per pair, so later
//! fetches cost one request. (Residual ambiguity: where Yahoo lists both a crypto `X-Q` and a
//! stock `X` in `Q`, the crypto wins; name a stock unambiguously by its suffixed ticker where
//! it has one.)
//!
//! ## Errors
//!
//! | answer | `SourceError` |
//! |---|---|
//! | `chart.error.code = "Not Found"` (HTTP 404), empty `result`, no price, currency mismatch | `PairNotFound` (after the last candidate) |
//! | any other `chart.error` | `Upstream` |
//! | 429 (also what Yahoo sends to non-browser User-Agents) | `RateLimited` (client) |
//! | no `meta` / no `meta.currency` / a non-positive price / not JSON | `Malformed` |
//!
//! No API key; requests carry a browser User-Agent, as the reference and its job templates do.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, USER_AGENT};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::aggregator::pair::Pair;
use crate::aggregator::price::Price;
use crate::aggregator::sources::client::{rest_adapter, Response};
use crate::aggregator::sources::{upstream_message, Quote, Source, SourceError};
use crate::config::schema::sources::SourceId;

/// The public endpoint (`baseUrl` replaces it, e.g. with `query2.finance.yahoo.com`).
pub const DEFAULT_BASE_URL: &str = "https://query1.finance.yahoo.com";

/// Yahoo throttles requests without a browser User-Agent.
pub const BROWSER_USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";

const ID: SourceId = SourceId::YahooFinance;
/// Remembered pair → ticker resolutions; the map is emptied when it grows past this.
const MAX_RESOLVED: usize = 4096;

/// Active ISO 4217 national and regional currencies, which Yahoo quotes as `XXXYYY=X` (plus
/// offshore `CNH`); metals and other non-currency units (`XAU`, `XDR`, …) are not included.
const FIAT: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNH", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP",
    "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF",
    "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR",
    "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB",
    "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD",
    "UYU", "UZS", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR",
    "ZMW", "ZWL",
];

fn is_fiat(code: &str) -> bool {
    FIAT.binary_search(&code).is_ok()
}

/// The tickers to try for a pair, in order (rules in the module documentation).
fn candidates(pair: &Pair) -> Vec<String> {
    let Pair { base, quote } = pair.upper();
    if is_fiat(&base) && is_fiat(&quote) {
        vec![format!("{base}{quote}=X")]
    } else if base.contains(['.', '-']) {
        vec![base]
    } else {
        vec![format!("{base}-{quote}"), base]
    }
}

rest_adapter!(
    YahooFinance,
    ID,
    DEFAULT_BASE_URL,
    |_config|
    /// Pairs whose ticker had to be found among several candidates → the ticker that answered.
    resolved: Mutex<HashMap<Pair, String>> = Mutex::new(HashMap::new()),
);

/// One ticker's answer: a price in the asked currency, or a definite "not this one".
enum Lookup {
    Found(Quote),
    Absent(String),
}

#[derive(Deserialize)]
struct Root<'a> {
    #[serde(borrow)]
    chart: Option<Chart<'a>>,
}

#[derive(Deserialize)]
struct Chart<'a> {
    #[serde(borrow)]
    result: Option<Vec<ChartResult<'a>>>,
    error: Option<ChartError>,
}

#[derive(Deserialize)]
struct ChartResult<'a> {
    #[serde(borrow)]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    currency: Option<String>,
    #[serde(borrow)]
    regular_market_price: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChartError {
    code: Option<String>,
    description: Option<String>,
}

impl YahooFinance {
    fn remembered(&self, pair: &Pair) -> Option<String> {
        self.resolved.lock().ok()?.get(pair).cloned()
    }

    fn remember(&self, pair: &Pair, ticker: &str) {
        if let Ok(mut resolved) = self.resolved.lock() {
            if resolved.len() >= MAX_RESOLVED && !resolved.contains_key(pair) {
                resolved.clear();
            }
            resolved.insert(pair.clone(), ticker.to_owned());
        }
    }

    fn forget(&self, pair: &Pair) {
        if let Ok(mut resolved) = self.resolved.lock() {
            resolved.remove(pair);
        }
    }

    async fn lookup(&self, ticker: &str, pair: &Pair) -> Result<Lookup, SourceError> {
        let mut url = self.client.url(&format!("v8/finance/chart/{ticker}"));
        url.query_pairs_mut()
            .append_pair("interval", "1d")
            .append_pair("range", "1d");
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(BROWSER_USER_AGENT));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let response = self.client.get(url, headers).await?;
        parse(ticker, pair, &response)
    }
}

/// Reads one chart answer for `ticker`, asked for `pair`.
fn parse(ticker: &str, pair: &Pair, response: &Response) -> Result<Lookup, SourceError> {
    let status = response.status;
    let chart = match serde_json::from_slice::<Root<'_>>(&response.body) {
        Ok(Root { chart: Some(chart) }) => chart,
        Ok(_) if status.is_success() => {
            return Err(SourceError::malformed(ID, "no \"chart\" object"))
        }
        Err(e) if status.is_success() => {
            return Err(SourceError::malformed(
                ID,
                format!("not a chart answer: {e}"),
            ))
        }
        _ if status == StatusCode::NOT_FOUND => {
            return Ok(Lookup::Absent(format!("{ticker}: HTTP 404")))
        }
        _ => return Err(SourceError::http_status(ID, status)),
    };
    if let Some(error) = chart.error {
        let code = error.code.unwrap_or_default();
        let description = error.description.unwrap_or_default();
        if code.eq_ignore_ascii_case("Not Found") {
            return Ok(Lookup::Absent(upstream_message(
                &format!("{ticker}: {description}"),
                None,
            )));
        }
        return Err(SourceError::upstream(
            ID,
            upstream_message(&format!("{code}: {description}"), None),
        ));
    }
    if !status.is_success() {
        return if status == StatusCode::NOT_FOUND {
            Ok(Lookup::Absent(format!("{ticker}: HTTP 404")))
        } else {
            Err(SourceError::http_status(ID, status))
        };
    }
    let Some(first) = chart.result.and_then(|r| r.into_iter().next()) else {
        return Ok(Lookup::Absent(format!("{ticker}: empty result")));
    };
    let meta = first
        .meta
        .ok_or_else(|| SourceError::malformed(ID, "chart.result[0] has no meta"))?;
    let currency = meta
        .currency
        .ok_or_else(|| SourceError::malformed(ID, "chart.result[0].meta has no currency"))?;
    if currency != pair.quote && currency != pair.quote.to_ascii_uppercase() {
        return Ok(Lookup::Absent(upstream_message(
            &format!("{ticker} is priced in {currency}, not {}", pair.quote),
            None,
        )));
    }
    let raw = match meta.regular_market_price {
        Some(raw) if raw.get().trim() != "null" => raw,
        _ => return Ok(Lookup::Absent(format!("{ticker}: no regularMarketPrice"))),
    };
    let price = Price::from_json(raw)
        .map_err(|e| SourceError::malformed(ID, format!("meta.regularMarketPrice: {e}")))?;
    Ok(Lookup::Found(Quote::now(price, ticker)))
}

#[async_trait]
impl Source for YahooFinance {
    fn id(&self) -> SourceId {
        ID
    }

    /// The ticker that answered for this pair, or else the first candidate.
    fn symbol(&self, pair: &Pair) -> String {
        self.remembered(pair)
            .or_else(|| candidates(pair).into_iter().next())
            .unwrap_or_default()
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let all = candidates(pair);
        let tickers = match self.remembered(pair) {
            Some(ticker) => vec![ticker],
            None => all.clone(),
        };
        for ticker in &tickers {
            match self.lookup(ticker, pair).await? {
                Lookup::Found(quote) => {
                    if all.len() > 1 {
                        self.remember(pair, ticker);
                    }
                    return Ok(quote);
                }
                Lookup::Absent(why) => tracing::debug!(source = %ID, %pair, "no price: {why}"),
            }
        }
        self.forget(pair);
        Err(SourceError::not_found(ID, pair))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregator::sources::testing::{self, pair_of, Answer, MockServer, Subject};

    /// Yahoo's answers (ocr-and-sources.md B.11): a chart for a ticker, and the 404 for unknown ones.
    fn chart(symbol: &str, currency: &str, kind: &str, price: &str) -> String {
        format!(
            r#"{{"chart":{{"result":[{{"meta":{{"currency":"{currency}","symbol":"{symbol}","exchangeName":"NMS","instrumentType":"{kind}","regularMarketPrice":{price},"regularMarketTime":1781308800,"previousClose":200.1,"fullExchangeName":"NasdaqGS"}},"timestamp":[1781308800],"indicators":{{"quote":[{{"close":[{price}]}}]}}}}],"error":null}}}}"#
        )
    }
    const NOT_FOUND: &str = r#"{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}"#;

    fn adapter(url: &str, extra: serde_json::Value) -> YahooFinance {
        testing::adapter(YahooFinance::new, ID, url, extra)
    }

    fn subject() -> Subject {
        Subject::of(ID, YahooFinance::new).pair(pair_of("BTC", "USD"))
    }

    /// A Yahoo-like server: `tickers` maps a ticker to (status, body); others get the 404.
    async fn yahoo(tickers: &[(&str, u16, String)]) -> MockServer {
        let paths: Vec<(String, Answer)> = tickers
            .iter()
            .map(|(t, s, b)| (format!("/v8/finance/chart/{t}"), Answer::new(*s, b.clone())))
            .collect();
        MockServer::per_path(
            paths
                .iter()
                .map(|(p, a)| (p.as_str(), vec![a.clone()]))
                .collect(),
            Answer::new(404, NOT_FOUND),
        )
        .await
    }

    /// The paths the server was asked for, in order.
    fn paths(srv: &MockServer) -> Vec<String> {
        srv.seen().into_iter().map(|s| s.path).collect()
    }

    #[test]
    fn fiat_table_is_sorted_for_binary_search() {
        assert!(FIAT.windows(2).all(|w| w[0] < w[1]));
        assert!(is_fiat("EUR") && is_fiat("USD") && !is_fiat("BTC") && !is_fiat("XAU"));
    }

    #[test]
    fn candidate_tickers() {
        assert_eq!(candidates(&pair_of("eur", "usd")), ["EURUSD=X"]);
        assert_eq!(candidates(&pair_of("C3M.PA", "EUR")), ["C3M.PA"]);
        assert_eq!(candidates(&pair_of("brk-b", "USD")), ["BRK-B"]);
        assert_eq!(candidates(&pair_of("BTC", "USD")), ["BTC-USD", "BTC"]);
        assert_eq!(candidates(&pair_of("X", "EUR")), ["X-EUR", "X"]);
    }

    #[tokio::test]
    async fn an_exchange_listed_ticker_in_its_currency_is_read_exactly() {
        let srv = yahoo(&[(
            "C3M.PA",
            200,
            chart("C3M.PA", "EUR", "EQUITY", "4.2350000000000000001"),
        )])
        .await;
        let source = adapter(&srv.url, json!({}));
        let quote = source
            .fetch(&pair_of("C3M.PA", "EUR"))
            .await
            .expect("quote");
        assert_eq!(quote.price.value().to_string(), "4.2350000000000000001");
        assert_eq!(quote.symbol, "C3M.PA");
        let all = srv.seen();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].path, "/v8/finance/chart/C3M.PA");
        assert_eq!(all[0].raw_query, "interval=1d&range=1d");
        assert_eq!(all[0].headers["user-agent"], BROWSER_USER_AGENT);
    }

    /// reference-solution.md §10 item 25: `X/EUR` must not be priced with the USD listing `X`.
    #[tokio::test]
    async fn x_eur_is_not_the_usd_listing() {
        let srv = yahoo(&[("X", 200, chart("X", "USD", "EQUITY", "38.12"))]).await;
        let source = adapter(&srv.url, json!({}));
        let err = source
            .fetch(&pair_of("X", "EUR"))
            .await
            .expect_err("not found");
        assert_eq!(
            err,
            SourceError::PairNotFound {
                from: ID,
                pair: "X/EUR".into()
            }
        );
        assert_eq!(
            paths(&srv),
            ["/v8/finance/chart/X-EUR", "/v8/finance/chart/X"]
        );
        // In its own currency the listing is found.
        let quote = source.fetch(&pair_of("X", "USD")).await.expect("quote");
        assert_eq!(quote.price.value().to_string(), "38.12");
        assert_eq!(quote.symbol, "X");
    }

    /// `BTC/USD` is the crypto ticker, never the `BTC` ETF in the same currency.
    #[tokio::test]
    async fn crypto_pairs_use_the_crypto_ticker() {
        let srv = yahoo(&[
            (
                "BTC-USD",
                200,
                chart("BTC-USD", "USD", "CRYPTOCURRENCY", "67123.45"),
            ),
            ("BTC", 200, chart("BTC", "USD", "ETF", "41.07")),
        ])
        .await;
        let source = adapter(&srv.url, json!({}));
        assert_eq!(source.symbol(&pair_of("BTC", "USD")), "BTC-USD");
        let quote = source.fetch(&pair_of("BTC", "USD")).await.expect("quote");
        assert_eq!(quote.price.value().to_string(), "67123.45");
        assert_eq!(quote.symbol, "BTC-USD");
        assert_eq!(paths(&srv), ["/v8/finance/chart/BTC-USD"]);
    }

    /// A failing crypto ticker (5xx, timeout) is an error, not a reason to try the bare listing.
    #[tokio::test]
    async fn errors_do_not_fall_back_to_another_instrument() {
        let srv = yahoo(&[
            ("BTC-USD", 500, "oops".into()),
            ("BTC", 200, chart("BTC", "USD", "ETF", "41.07")),
        ])
        .await;
        let err = adapter(&srv.url, json!({}))
            .fetch(&pair_of("BTC", "USD"))
            .await
            .expect_err("error");
        assert_eq!(err.kind(), "upstream_error", "{err:?}");
        assert_eq!(paths(&srv), ["/v8/finance/chart/BTC-USD"]);
    }

    #[tokio::test]
    async fn a_bare_stock_is_found_after_the_crypto_ticker_and_remembered() {
        let srv = yahoo(&[("COIN", 200, chart("COIN", "USD", "EQUITY", "262.82"))]).await;
        let source = adapter(&srv.url, json!({}));
        let quote = source.fetch(&pair_of("COIN", "USD")).await.expect("quote");
        assert_eq!(quote.price.value().to_string(), "262.82");
        assert_eq!(quote.symbol, "COIN");
        assert_eq!(source.symbol(&pair_of("COIN", "USD")), "COIN");
        source
            .fetch(&pair_of("COIN", "USD"))
            .await
            .expect("second quote");
        assert_eq!(
            paths(&srv),
            [
                "/v8/finance/chart/COIN-USD",
                "/v8/finance/chart/COIN",
                "/v8/finance/chart/COIN"
            ]
        );
    }

    #[tokio::test]
    async fn fiat_pairs_use_the_fx_ticker() {
        let srv = yahoo(&[(
            "EURUSD=X",
            200,
            chart("EURUSD=X", "USD", "CURRENCY", "1.0712"),
        )])
        .await;
        let quote = adapter(&srv.url, json!({}))
            .fetch(&pair_of("EUR", "USD"))
            .await
            .expect("quote");
        assert_eq!(quote.price.value().to_string(), "1.0712");
        assert_eq!(quote.symbol, "EURUSD=X");
        assert_eq!(paths(&srv), ["/v8/finance/chart/EURUSD=X"]);
    }

    /// LSE listings answer in pence (`GBp`): that is not `GBP`.
    #[tokio::test]
    async fn pence_are_not_pounds() {
        let srv = yahoo(&[("VOD.L", 200, chart("VOD.L", "GBp", "EQUITY", "72.5"))]).await;
        let source = adapter(&srv.url, json!({}));
        let err = source
            .fetch(&pair_of("VOD.L", "GBP"))
            .await
            .expect_err("not found");
        assert_eq!(err.kind(), "not_found");
        let quote = source.fetch(&pair_of("VOD.L", "GBp")).await.expect("quote");
        assert_eq!(quote.price.value().to_string(), "72.5");
    }

    #[tokio::test]
    async fn unknown_tickers_and_empty_answers_are_not_found() {
        for (status, body) in [
            (404, NOT_FOUND.to_owned()),
            (404, "Not Found".to_owned()),
            (200, NOT_FOUND.to_owned()),
            (200, r#"{"chart":{"result":[],"error":null}}"#.to_owned()),
            (200, r#"{"chart":{"result":null,"error":null}}"#.to_owned()),
            (200, chart("C3M.PA", "EUR", "EQUITY", "null")),
        ] {
            let srv = yahoo(&[("C3M.PA", status, body.clone())]).await;
            let err = adapter(&srv.url, json!({}))
                .fetch(&pair_of("C3M.PA", "EUR"))
                .await
                .expect_err(&body);
            assert_eq!(err.kind(), "not_found", "{body} -> {err:?}");
        }
    }

    #[tokio::test]
    async fn other_chart_errors_are_upstream_errors() {
        let body = r#"{"chart":{"result":null,"error":{"code":"Bad Request","description":"Invalid input - interval=1x is not supported"}}}"#;
        for status in [400, 200] {
            let srv = yahoo(&[("C3M.PA", status, body.to_owned())]).await;
            let err = adapter(&srv.url, json!({}))
                .fetch(&pair_of("C3M.PA", "EUR"))
                .await
                .expect_err("error");
            assert_eq!(err.kind(), "upstream_error", "{err:?}");
            assert!(err.to_string().contains("Bad Request"), "{err}");
        }
        let srv = yahoo(&[("C3M.PA", 400, "<html></html>".into())]).await;
        let err = adapter(&srv.url, json!({}))
            .fetch(&pair_of("C3M.PA", "EUR"))
            .await
            .expect_err("error");
        assert_eq!(err.kind(), "upstream_error", "{err:?}");
    }

    #[tokio::test]
    async fn bodies_that_are_not_the_documented_shape_are_malformed() {
        let zero = chart("C3M.PA", "EUR", "EQUITY", "0");
        let text = chart("C3M.PA", "EUR", "EQUITY", "\"abc\"");
        testing::check_malformed(
            &subject().pair(pair_of("C3M.PA", "EUR")),
            &[
                "<html>oops</html>",
                r#"{"finance":{}}"#,
                r#"{"chart":{"result":[{"timestamp":[1]}],"error":null}}"#,
                r#"{"chart":{"result":[{"meta":{"regularMarketPrice":1.5}}],"error":null}}"#,
                &zero,
                &text,
            ],
        )
        .await;
    }

    testing::transport_checks! {
        subject: subject(),
        retried: ("Too Many Requests", &chart("AAPL", "USD", "EQUITY", "201.5"), "201.5")
            for pair_of("AAPL.MX", "USD"),
        rate_limited: "Too Many Requests",
        refused: &[(451, "blocked"), (403, "blocked")],
        slow: NOT_FOUND,
    }

    #[tokio::test]
    async fn no_batch_and_no_instrument_list() {
        testing::check_no_batch_no_instruments(&subject()).await;
    }
}
