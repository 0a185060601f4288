//! Kraken spot REST: `GET /0/public/Ticker?pair=XBTUSD[,ETHUSD…]` (one pair or a batch),
//! `GET /0/public/AssetPairs` (instrument list). Default host `https://api.kraken.com`;
//! `baseUrl` overrides it. The client sends the `User-Agent` Kraken requires.
//!
//! Symbols: Kraken's asset codes, upper-cased, concatenated — `BTC` is `XBT` and `DOGE` is
//! `XDG` (`BTC/USD` → `XBTUSD`), which Kraken accepts as the pair's altname. Kraken answers with
//! its own pair names as result keys: legacy `X…Z…` names (`XXBTZUSD`, `XETHXXBT`,
//! `USDTZUSD`) or the altname (`SOLUSD`, `XBTUSDT`). A single fetch takes the one entry of
//! the result; a batch matches each key to the asked pair by Kraken's naming rules (legacy
//! `X`/`Z` prefixes, XBT↔BTC, XDG↔DOGE) — the reference's batch dropped the legacy keys.
//!
//! Errors are HTTP 200 `{"error":["EQuery:Unknown asset pair"]}` without `result`:
//! unknown pair (or `EGeneral:Invalid arguments`, the pair list being the only argument) → not
//! found (in a batch one unknown pair fails the whole request, so the adapter then fetches the
//! full ticker list once and looks every pair up in it);
//! `EAPI:Rate limit exceeded` / `EGeneral:Too many requests` → rate limited;
//! `EGeneral:Permission denied` → refused; any other `E…` → upstream error. `W…` entries are
//! warnings and ignored.
//!
//! The API key, if configured, is not sent: public endpoints take none, and Kraken's private
//! API needs a signature.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::OnceCell;

use crate::aggregator::pair::Pair;
use crate::aggregator::sources::client::{rest_adapter, Response};
use crate::aggregator::sources::{
    batch_size, clip, comma_joined, parse_json, BatchResult, PriceRead, Quote, Source, SourceError,
};
use crate::config::schema::sources::SourceId;

const ID: SourceId = SourceId::Kraken;

/// The public endpoint used when the configuration gives no `baseUrl`.
pub const DEFAULT_BASE_URL: &str = "https://api.kraken.com";

const TICKER: &str = "/0/public/Ticker";
const ASSET_PAIRS: &str = "/0/public/AssetPairs";

/// Prices by Kraken pair name (the result keys).
type Prices = BTreeMap<String, PriceRead>;

rest_adapter!(
    Kraken,
    ID,
    DEFAULT_BASE_URL,
    |config| max_batch: usize = batch_size(config, ID, 1),
);

impl Kraken {
    /// `Ticker` for a comma-separated list of pairs, or (`None`) every pair Kraken trades.
    async fn tickers(&self, pairs: Option<&str>, asked: &str) -> Result<Prices, SourceError> {
        let mut url = self.client.url(TICKER);
        if let Some(list) = pairs {
            url.query_pairs_mut().append_pair("pair", list);
        }
        let response = self.client.get(url, HeaderMap::new()).await?;
        let answer: BTreeMap<String, Ticker<'_>> = read_answer(&response, pairs.map(|_| asked))?;
        Ok(answer
            .into_iter()
            .map(|(key, t)| {
                let price = match t.c.first() {
                    Some(raw) => PriceRead::of(raw),
                    None => PriceRead::Bad("no last trade price (c)".to_owned()),
                };
                (key, price)
            })
            .collect())
    }

    fn quote(&self, pair: &Pair, price: &PriceRead) -> Result<Quote, SourceError> {
        price.quote(ID, pair, self.symbol(pair))
    }
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    error: Vec<String>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct Envelope<T> {
    result: Option<T>,
}

#[derive(Deserialize)]
struct Ticker<'a> {
    /// `[last trade price, lot volume]`.
    #[serde(borrow)]
    c: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct AssetPair {
    wsname: Option<String>,
    status: Option<String>,
}

/// Checks the status and Kraken's `error` list, then returns `result`.
fn read_answer<'a, T: Deserialize<'a>>(
    response: &'a Response,
    asked: Option<&str>,
) -> Result<T, SourceError> {
    // The error list first: an error answer's other fields need not have the success shape.
    let head: Head = response.envelope(ID)?;
    if let Some(e) = in_band(&head.error, asked) {
        return Err(e);
    }
    response.require_success(ID)?;
    let envelope: Envelope<T> = parse_json(ID, &response.body)?;
    envelope
        .result
        .ok_or_else(|| SourceError::malformed_clipped(ID, "no result and no error"))
}

/// Kraken's `error` entries (`<severity><category>:<message>`; `W…` are warnings).
/// `asked` names the pairs sent, when the request had a `pair` argument: an unknown pair or
/// invalid arguments (the pair list is the only argument) are then "not found".
fn in_band(errors: &[String], asked: Option<&str>) -> Option<SourceError> {
    let errors: Vec<&str> = errors
        .iter()
        .map(String::as_str)
        .filter(|e| !e.starts_with('W'))
        .collect();
    if errors.is_empty() {
        return None;
    }
    let any = |f: &dyn Fn(&str) -> bool| errors.iter().any(|e| f(e));
    let about_the_pairs = |e: &str| {
        e.starts_with("EQuery:Unknown asset pair") || e.starts_with("EGeneral:Invalid arguments")
    };
    Some(
        if let Some(asked) = asked.filter(|_| any(&about_the_pairs)) {
            SourceError::PairNotFound {
                from: ID,
                pair: asked.to_owned(),
            }
        } else if any(&|e| {
            e.starts_with("EAPI:Rate limit exceeded")
                || e.starts_with("EGeneral:Too many requests")
                || e.starts_with("EService:Throttled")
        }) {
            SourceError::rate_limited(ID)
        } else if any(&|e| e.starts_with("EGeneral:Permission denied")) {
            SourceError::refused(ID, clip(&errors.join(", ")))
        } else {
            SourceError::upstream(ID, clip(&errors.join(", ")))
        },
    )
}

/// Kraken's code for an asset (its altname): `BTC` → `XBT`, `DOGE` → `XDG`.
fn to_kraken(code: &str) -> String {
    let up = code.to_ascii_uppercase();
    match up.as_str() {
        "BTC" => "XBT".to_owned(),
        "DOGE" => "XDG".to_owned(),
        _ => up,
    }
}

/// The common code of a Kraken asset code: `XBT`/`XXBT` → `BTC`, `XDG`/`XXDG` → `DOGE`.
fn from_kraken(code: &str) -> String {
    let up = code.to_ascii_uppercase();
    match up.as_str() {
        "XBT" | "XXBT" => "BTC".to_owned(),
        "XDG" | "XXDG" => "DOGE".to_owned(),
        _ => up,
    }
}

/// The ways an asset can appear inside a Kraken pair name: its altname, its common code, and
/// for three-letter codes the legacy `X` (crypto) / `Z` (fiat) prefixed forms.
fn key_forms(code: &str) -> Vec<String> {
    let kraken = to_kraken(code);
    let mut forms = vec![kraken.clone(), from_kraken(&kraken)];
    if kraken.len() == 3 {
        forms.push(format!("X{kraken}"));
        forms.push(format!("Z{kraken}"));
    }
    forms.dedup();
    forms
}

/// Whether Kraken's pair name `key` (`XXBTZUSD`, `XBTUSDT`, `USDTZUSD`, …) is `pair`.
fn key_matches(key: &str, pair: &Pair) -> bool {
    let key = key.to_ascii_uppercase();
    let quotes = key_forms(&pair.quote);
    key_forms(&pair.base).iter().any(|base| {
        key.strip_prefix(base.as_str())
            .is_some_and(|rest| quotes.iter().any(|q| q == rest))
    })
}

/// The entry of `prices` that is `pair`: the exact symbol first, then Kraken's other names.
fn lookup<'p>(prices: &'p Prices, pair: &Pair, symbol: &str) -> Option<&'p PriceRead> {
    prices.get(symbol).or_else(|| {
        prices
            .iter()
            .find(|(key, _)| key_matches(key, pair))
            .map(|(_, p)| p)
    })
}

#[async_trait]
impl Source for Kraken {
    fn id(&self) -> SourceId {
        ID
    }

    fn symbol(&self, pair: &Pair) -> String {
        format!("{}{}", to_kraken(&pair.base), to_kraken(&pair.quote))
    }

    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError> {
        let symbol = self.symbol(pair);
        let prices = self.tickers(Some(&symbol), &pair.to_string()).await?;
        // One pair asked, so one entry: whatever Kraken calls it, it is this pair.
        let price = match prices.len() {
            0 => return Err(SourceError::not_found(ID, pair)),
            1 => prices.values().next(),
            _ => lookup(&prices, pair, &symbol),
        };
        match price {
            Some(p) => self.quote(pair, p),
            None => Err(SourceError::malformed_clipped(
                ID,
                format!("{} entries, none for {symbol}", prices.len()),
            )),
        }
    }

    fn max_batch(&self) -> Option<usize> {
        Some(self.max_batch)
    }

    /// One `pair=A,B,…` request per `max_batch` pairs; result keys are matched to the pairs by
    /// Kraken's naming rules. A pair the answer does not name is fetched alone; a request that
    /// fails on an unknown pair falls back to the full ticker list (fetched once).
    async fn fetch_batch(&self, pairs: &[Pair]) -> Result<BatchResult, SourceError> {
        let mut out = BatchResult::new();
        let all = OnceCell::new();
        for chunk in pairs.chunks(self.max_batch) {
            if let [pair] = chunk {
                out.insert(pair.clone(), self.fetch(pair).await);
                continue;
            }
            let symbols: BTreeSet<String> = chunk.iter().map(|p| self.symbol(p)).collect();
            let mut full_list = false;
            let answer = match self
                .tickers(Some(&comma_joined(&symbols)), "one of the asked pairs")
                .await
            {
                Err(SourceError::PairNotFound { .. }) => {
                    full_list = true;
                    all.get_or_init(|| self.tickers(None, "the ticker list"))
                        .await
                        .clone()
                }
                other => other,
            };
            let prices = match answer {
                Ok(prices) => prices,
                Err(e) => {
                    out.extend(chunk.iter().map(|p| (p.clone(), Err(e.clone()))));
                    continue;
                }
            };
            for pair in chunk {
                let result = match lookup(&prices, pair, &self.symbol(pair)) {
                    Some(price) => self.quote(pair, price),
                    None if full_list => Err(SourceError::not_found(ID, pair)),
                    // Kraken answered without error, so it knows the pair under a name these
                    // rules do not derive: ask for it alone.
                    None => self.fetch(pair).await,
                };
                out.insert(pair.clone(), result);
            }
        }
        Ok(out)
    }

    /// Pairs with status `online`, named by their `wsname` (`XBT/USD` → `BTC/USD`).
    async fn instruments(&self) -> Result<Vec<Pair>, SourceError> {
        let response = self
            .client
            .get(self.client.url(ASSET_PAIRS), HeaderMap::new())
            .await?;
        let pairs: BTreeMap<String, AssetPair> = read_answer(&response, None)?;
        Ok(pairs
            .into_values()
            .filter(|p| p.status.as_deref().is_none_or(|s| s == "online"))
            .filter_map(|p| {
                let (base, quote) = p
                    .wsname?
                    .split_once('/')
                    .map(|(b, q)| (from_kraken(b), from_kraken(q)))?;
                Pair::new(&base, &quote).ok()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::extract::Query;
    use axum::http::Uri;
    use axum::routing::get;
    use axum::Router;
    use serde_json::{json, Value};

    use super::*;
    use crate::aggregator::sources::testing::{self, answering, dec, pair, Answer, Subject};

    /// Live capture (ocr-and-sources.md B.4).
    const BTC: &str = r#"{"error":[],"result":{"XXBTZUSD":{"a":["84036.10000","2","2.000"],"b":["84036.00000","1","1.000"],"c":["84036.00000","0.00112355"],"v":["702.24523395","3307.38151293"],"p":["84259.58809","84073.56822"],"t":[33153,135029],"l":["83740.10000","82832.30000"],"h":["84861.80000","84914.80000"],"o":"84380.00000"}}}"#;
    const UNKNOWN: &str = r#"{"error":["EQuery:Unknown asset pair"]}"#;
    const KEY: &str = "kraken-key-5ecr3t";

    fn source_with(url: &str, extra: Value) -> Kraken {
        testing::adapter(Kraken::new, ID, url, extra)
    }

    fn source(url: &str) -> Kraken {
        source_with(url, json!({}))
    }

    fn subject() -> Subject {
        Subject::of(ID, Kraken::new).key(KEY)
    }

    fn entry(last: &str) -> String {
        format!(
            r#"{{"a":["{last}","1","1.000"],"b":["{last}","1","1.000"],"c":["{last}","0.00100000"],"v":["1","2"],"p":["1","2"],"t":[1,2],"l":["1","2"],"h":["1","2"],"o":"1"}}"#
        )
    }

    /// Kraken's ticker endpoint: known pairs under their real result keys; an unknown pair in
    /// the list fails the whole request; no `pair` lists everything.
    fn kraken_server(hits: Arc<Mutex<Vec<String>>>) -> Router {
        // (accepted request names, result key, last price)
        let book: Vec<(Vec<&'static str>, &'static str, &'static str)> = vec![
            (
                vec!["XBTUSD", "BTCUSD", "XXBTZUSD"],
                "XXBTZUSD",
                "67123.90000",
            ),
            (vec!["ETHUSD", "XETHZUSD"], "XETHZUSD", "2600.12000"),
            (vec!["ETHXBT", "XETHXXBT"], "XETHXXBT", "0.03870000"),
            (vec!["USDTUSD", "USDTZUSD"], "USDTZUSD", "1.00010000"),
            (vec!["XBTUSDT"], "XBTUSDT", "67120.10000"),
            (vec!["TONUSD"], "TONUSD", "5.12300000"),
            (vec!["XDGUSD"], "XDGUSD", "0.1234567"),
            (vec!["DEADUSD"], "DEADUSD", "0.00000"),
        ];
        Router::new().route(
            TICKER,
            get(move |uri: Uri, Query(q): Query<HashMap<String, String>>| {
                let hits = hits.clone();
                let book = book.clone();
                async move {
                    hits.lock().expect("lock").push(uri.to_string());
                    let selected: Option<Vec<_>> = match q.get("pair") {
                        None => Some(book.iter().collect()),
                        Some(list) => list
                            .split(',')
                            .map(|name| book.iter().find(|(names, _, _)| names.contains(&name)))
                            .collect(),
                    };
                    match selected {
                        None => UNKNOWN.to_owned(),
                        Some(entries) => {
                            let parts: Vec<String> = entries
                                .iter()
                                .map(|(_, key, last)| format!(r#""{key}":{}"#, entry(last)))
                                .collect();
                            format!(r#"{{"error":[],"result":{{{}}}}}"#, parts.join(","))
                        }
                    }
                }
            }),
        )
    }

    #[test]
    fn symbols_use_kraken_asset_codes() {
        let s = Kraken::new(&testing::config(ID, json!({})), None).expect("source");
        assert_eq!(s.symbol(&pair("BTC/USD")), "XBTUSD");
        assert_eq!(s.symbol(&pair("xbt/usd")), "XBTUSD");
        assert_eq!(s.symbol(&pair("ETH/BTC")), "ETHXBT");
        assert_eq!(s.symbol(&pair("DOGE/USD")), "XDGUSD");
        assert_eq!(s.symbol(&pair("TON/USD")), "TONUSD");
    }

    #[test]
    fn legacy_and_new_keys_match_their_pairs_only() {
        let yes = [
            ("XXBTZUSD", "BTC/USD"),
            ("XXBTZUSD", "XBT/USD"),
            ("XETHXXBT", "ETH/BTC"),
            ("USDTZUSD", "USDT/USD"),
            ("XBTUSDT", "BTC/USDT"),
            ("TONUSD", "ton/usd"),
            ("XXDGZUSD", "DOGE/USD"),
            ("XDGUSD", "DOGE/USD"),
            ("ZUSDZJPY", "USD/JPY"),
        ];
        for (key, p) in yes {
            assert!(key_matches(key, &pair(p)), "{key} should be {p}");
        }
        let no = [
            ("XXBTZUSD", "ETH/USD"),
            ("XBTUSDT", "BTC/USD"),
            ("XXBTZUSD", "BTC/USDT"),
            ("XETHXXBT", "BTC/ETH"),
            ("USDTZUSD", "USD/USDT"),
        ];
        for (key, p) in no {
            assert!(!key_matches(key, &pair(p)), "{key} is not {p}");
        }
    }

    #[tokio::test]
    async fn single_price_from_the_legacy_key_keeps_the_exact_decimal() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let s = source(&testing::serve(kraken_server(hits.clone())).await);
        let q = s.fetch(&pair("BTC/USD")).await.expect("quote");
        assert_eq!(q.symbol, "XBTUSD");
        assert_eq!(q.price.value(), dec("67123.9"));
        assert_eq!(q.price.to_string(), "67123.9");
        assert_eq!(
            hits.lock().expect("lock").as_slice(),
            ["/0/public/Ticker?pair=XBTUSD"]
        );

        let s = source(&answering(200, BTC).await);
        let q = s.fetch(&pair("BTC/USD")).await.expect("quote");
        assert_eq!(q.price.value(), dec("84036"));
    }

    #[tokio::test]
    async fn in_band_errors_are_mapped() {
        let s = source(&answering(200, UNKNOWN).await);
        assert_eq!(
            s.fetch(&pair("FOO/BAR")).await,
            Err(SourceError::PairNotFound {
                from: ID,
                pair: "FOO/BAR".into()
            })
        );
        // The pair list is the only argument: invalid arguments mean an impossible pair.
        for body in [
            r#"{"error":["EGeneral:Invalid arguments"]}"#,
            r#"{"error":["EQuery:Unknown asset pair"],"result":[]}"#,
        ] {
            let s = source(&answering(200, body).await);
            assert!(
                matches!(
                    s.fetch(&pair("FOO.X/BAR")).await,
                    Err(SourceError::PairNotFound { .. })
                ),
                "{body}"
            );
        }
        // Without a pair argument (instrument list) the same error is the source's.
        let s = source(&answering(200, r#"{"error":["EGeneral:Invalid arguments"]}"#).await);
        assert!(matches!(
            s.instruments().await,
            Err(SourceError::Upstream { .. })
        ));
        for body in [
            r#"{"error":["EAPI:Rate limit exceeded"]}"#,
            r#"{"error":["EGeneral:Too many requests"]}"#,
            r#"{"error":["EService:Throttled: 1729766400"]}"#,
        ] {
            let s = source(&answering(200, body).await);
            assert!(
                matches!(
                    s.fetch(&pair("BTC/USD")).await,
                    Err(SourceError::RateLimited { .. })
                ),
                "{body}"
            );
        }
        subject()
            .check_errors(&[(
                200,
                r#"{"error":["EGeneral:Permission denied"]}"#,
                "BTC/USD",
                "refused",
            )])
            .await;
        for body in [
            r#"{"error":["EService:Unavailable"]}"#,
            r#"{"error":["EService:Busy"]}"#,
            r#"{"error":["EGeneral:Internal error"]}"#,
        ] {
            let s = source(&answering(200, body).await);
            let e = s.fetch(&pair("BTC/USD")).await.expect_err("error");
            assert!(
                matches!(&e, SourceError::Upstream { reason, .. } if body.contains(reason.as_str())),
                "{e:?}"
            );
        }
        // Warnings are not errors.
        let body =
            r#"{"error":["WGeneral:Deprecated"],"result":{"XXBTZUSD":{"c":["67000.1","1"]}}}"#;
        let s = source(&answering(200, body).await);
        assert_eq!(
            s.fetch(&pair("BTC/USD"))
                .await
                .expect("quote")
                .price
                .value(),
            dec("67000.1")
        );
    }

    #[tokio::test]
    async fn empty_result_zero_price_and_missing_fields() {
        subject()
            .check_errors(&[
                (200, r#"{"error":[],"result":{}}"#, "BTC/USD", "not_found"),
                (
                    200,
                    r#"{"error":[],"result":{"XXBTZUSD":{"c":["0.00000","0"]}}}"#,
                    "BTC/USD",
                    "not_found",
                ),
                (
                    200,
                    r#"{"error":[],"result":{"XXBTZUSD":{"c":[]}}}"#,
                    "BTC/USD",
                    "malformed",
                ),
                (200, r#"{"error":[]}"#, "BTC/USD", "malformed"),
                (404, "<html>no</html>", "BTC/USD", "upstream_error"),
            ])
            .await;
    }

    #[tokio::test]
    async fn batch_matches_legacy_keys() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let s = source(&testing::serve(kraken_server(hits.clone())).await);
        assert_eq!(s.max_batch(), Some(50));
        let pairs = [
            pair("BTC/USD"),
            pair("ETH/USD"),
            pair("ETH/BTC"),
            pair("USDT/USD"),
            pair("BTC/USDT"),
            pair("TON/USD"),
            pair("DOGE/USD"),
            pair("xbt/usd"),
        ];
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert_eq!(out.len(), pairs.len());
        let price = |p: &Pair| out[p].as_ref().expect("quote").price.value();
        assert_eq!(price(&pairs[0]), dec("67123.9"));
        assert_eq!(price(&pairs[1]), dec("2600.12"));
        assert_eq!(price(&pairs[2]), dec("0.0387"));
        assert_eq!(price(&pairs[3]), dec("1.0001"));
        assert_eq!(price(&pairs[4]), dec("67120.1"));
        assert_eq!(price(&pairs[5]), dec("5.123"));
        assert_eq!(price(&pairs[6]), dec("0.1234567"));
        assert_eq!(price(&pairs[7]), dec("67123.9"));
        assert_eq!(out[&pairs[0]].as_ref().expect("btc").symbol, "XBTUSD");
        assert_eq!(
            hits.lock().expect("lock").len(),
            1,
            "one request for the whole batch"
        );
    }

    #[tokio::test]
    async fn batch_with_an_unknown_pair_falls_back_to_the_full_list() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let s = source(&testing::serve(kraken_server(hits.clone())).await);
        // DEAD/USD has a zero price: not found.
        testing::check_batch(
            &s,
            &["BTC/USD", "FOO/BAR", "DEAD/USD", "ETH/BTC"],
            &["67123.9", "not_found", "not_found", "0.0387"],
        )
        .await;
        let hits = hits.lock().expect("lock");
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert_eq!(hits[1], TICKER);
    }

    #[tokio::test]
    async fn batch_chunks_by_max_batch_size_and_spreads_failures() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let url = testing::serve(kraken_server(hits.clone())).await;
        let s = source_with(&url, json!({"maxBatchSize": 2}));
        let pairs = [
            pair("BTC/USD"),
            pair("ETH/USD"),
            pair("TON/USD"),
            pair("USDT/USD"),
        ];
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert!(out.values().all(Result::is_ok));
        assert_eq!(hits.lock().expect("lock").len(), 2);

        let s = source(&answering(200, r#"{"error":["EAPI:Rate limit exceeded"]}"#).await);
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert!(out
            .values()
            .all(|r| matches!(r, Err(SourceError::RateLimited { .. }))));
    }

    #[tokio::test]
    async fn batch_asks_alone_for_a_pair_the_answer_does_not_name() {
        // Kraken renamed a pair under a key these rules cannot derive.
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let router = Router::new().route(
            TICKER,
            get(move |Query(q): Query<HashMap<String, String>>| {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if q.get("pair").map(String::as_str) == Some("NEWUSD") {
                        format!(
                            r#"{{"error":[],"result":{{"RENAMEDUSD":{}}}}}"#,
                            entry("3.5")
                        )
                    } else {
                        format!(
                            r#"{{"error":[],"result":{{"XXBTZUSD":{},"RENAMEDUSD":{}}}}}"#,
                            entry("67000"),
                            entry("3.5")
                        )
                    }
                }
            }),
        );
        let s = source(&testing::serve(router).await);
        let pairs = [pair("BTC/USD"), pair("NEW/USD")];
        let out = s.fetch_batch(&pairs).await.expect("batch");
        assert_eq!(testing::outcomes(&out, &pairs), ["67000", "3.5"]);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn instruments_are_the_online_pairs_by_wsname() {
        let body = r#"{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","aclass_base":"currency","base":"XXBT","aclass_quote":"currency","quote":"ZUSD","lot":"unit","cost_decimals":5,"pair_decimals":1,"lot_decimals":8,"lot_multiplier":1,"leverage_buy":[2,3,4,5],"leverage_sell":[2,3,4,5],"fees":[[0,0.4]],"fees_maker":[[0,0.25]],"fee_volume_currency":"ZUSD","margin_call":80,"margin_stop":40,"ordermin":"0.00005","costmin":"0.5","tick_size":"0.1","status":"online"},"XDGUSD":{"altname":"XDGUSD","wsname":"XDG/USD","base":"XXDG","quote":"ZUSD","status":"online"},"USDTZUSD":{"altname":"USDTUSD","wsname":"USDT/USD","base":"USDT","quote":"ZUSD","status":"online"},"OLDUSD":{"altname":"OLDUSD","wsname":"OLD/USD","base":"OLD","quote":"ZUSD","status":"cancel_only"},"NOWSUSD":{"altname":"NOWSUSD","base":"NOWS","quote":"ZUSD"}}}"#;
        let router = Router::new().route(ASSET_PAIRS, get(move || async move { body }));
        let s = source(&testing::serve(router).await);
        let mut list = s.instruments().await.expect("list");
        list.sort();
        assert_eq!(
            list,
            vec![pair("BTC/USD"), pair("DOGE/USD"), pair("USDT/USD")]
        );
        subject()
            .check_instrument_errors(&[(
                200,
                r#"{"error":["EService:Unavailable"]}"#,
                "upstream_error",
            )])
            .await;
    }

    testing::transport_checks! {
        subject: subject(),
        retried: ("", BTC, "84036.00000"),
        rate_limited: "",
        refused: &[(451, ""), (403, "")],
        slow: BTC,
        garbage: (
            &[r#"{"error":[],"result":{"XXBTZUSD":{"c":"67000"}}}"#],
            instruments: true,
        ),
    }

    #[tokio::test]
    async fn user_agent_is_sent_and_the_api_key_never_is() {
        let seen =
            testing::check_key_never_sent(subject(), "FOO/BAR", Answer::new(200, UNKNOWN)).await;
        let agent = seen.headers["user-agent"].to_str().expect("text");
        assert!(agent.starts_with("enclave-price-aggregator/"), "{agent}");
    }
}
