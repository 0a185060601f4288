//! Price sources: one module per upstream API, all behind the [`Source`] trait.

pub mod alphavantage;
pub mod binance;
pub mod bybit;
pub mod client;
pub mod coinbase;
pub mod coingecko;
pub mod cryptocompare;
pub mod exchangerate_host;
pub mod finnhub;
pub mod frankfurter;
pub mod kraken;
pub mod kucoin;
pub mod okx;
#[cfg(test)]
pub mod testing;
pub mod yahoo_finance;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, IntoHeaderName};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::pair::Pair;
use super::price::Price;
use crate::config::schema::sources::{SourceConfig, SourceId};
use crate::config::secret::Secret;

/// One price from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub price: Price,
    /// The upstream symbol the price was asked for (`BTCUSDT`, `XBT/USD`, `bitcoin`).
    pub symbol: String,
    /// When we received it (never an upstream clock: those differ and are not ours to trust).
    pub received_at: SystemTime,
}

impl Quote {
    /// `price` for `symbol`, received now.
    pub(crate) fn now(price: Price, symbol: impl Into<String>) -> Self {
        Quote {
            price,
            symbol: symbol.into(),
            received_at: SystemTime::now(),
        }
    }
}

/// Why a source gave no price. The kinds drive what the cache does next.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SourceError {
    /// The source does not know the pair: no retry, the pair is dropped for this source.
    #[error("{from} has no price for {pair}")]
    PairNotFound { from: SourceId, pair: String },
    /// Rate limited (HTTP 429, or an in-band "too many requests").
    #[error("{from} rate-limited the request")]
    RateLimited {
        from: SourceId,
        retry_after: Option<Duration>,
    },
    /// The source refuses us (HTTP 401/403/451: missing or bad key, geo-blocked).
    #[error("{from} refused the request: {reason}")]
    Refused { from: SourceId, reason: String },
    /// The source answered with an error (HTTP 5xx, or an error in an HTTP 200 body).
    #[error("{from} answered with an error: {reason}")]
    Upstream { from: SourceId, reason: String },
    /// The body is not what the source documents.
    #[error("{from} sent a malformed response: {reason}")]
    Malformed { from: SourceId, reason: String },
    #[error("{from} did not answer within {timeout:?}")]
    Timeout { from: SourceId, timeout: Duration },
    #[error("{from} unreachable: {reason}")]
    Unreachable { from: SourceId, reason: String },
    /// The source has no such operation (batch, instrument list).
    #[error("{from} does not support {what}")]
    Unsupported { from: SourceId, what: &'static str },
}

impl SourceError {
    /// A short, stable name for metrics labels and API reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::PairNotFound { .. } => "not_found",
            SourceError::RateLimited { .. } => "rate_limited",
            SourceError::Refused { .. } => "refused",
            SourceError::Upstream { .. } => "upstream_error",
            SourceError::Malformed { .. } => "malformed",
            SourceError::Timeout { .. } => "timeout",
            SourceError::Unreachable { .. } => "unreachable",
            SourceError::Unsupported { .. } => "unsupported",
        }
    }

    /// `from` has no price for `pair`.
    pub(crate) fn not_found(from: SourceId, pair: &Pair) -> Self {
        SourceError::PairNotFound {
            from,
            pair: pair.to_string(),
        }
    }

    /// The body is not what `from` documents; `reason` is kept as given.
    pub(crate) fn malformed(from: SourceId, reason: impl Into<String>) -> Self {
        SourceError::Malformed {
            from,
            reason: reason.into(),
        }
    }

    /// Like [`SourceError::malformed`], with `reason` bounded by [`clip`] (for reasons that quote
    /// upstream text).
    pub(crate) fn malformed_clipped(from: SourceId, reason: impl AsRef<str>) -> Self {
        SourceError::Malformed {
            from,
            reason: clip(reason.as_ref()),
        }
    }

    /// `from` answered with an error; `reason` is kept as given.
    pub(crate) fn upstream(from: SourceId, reason: impl Into<String>) -> Self {
        SourceError::Upstream {
            from,
            reason: reason.into(),
        }
    }

    /// `from` answered with an HTTP status the adapter has no other reading for: `HTTP <status>`.
    pub(crate) fn http_status(from: SourceId, status: StatusCode) -> Self {
        Self::upstream(from, format!("HTTP {status}"))
    }

    /// `from` rate-limited the request without saying for how long.
    pub(crate) fn rate_limited(from: SourceId) -> Self {
        SourceError::RateLimited {
            from,
            retry_after: None,
        }
    }

    /// `from` refuses us; `reason` is kept as given.
    pub(crate) fn refused(from: SourceId, reason: impl Into<String>) -> Self {
        SourceError::Refused {
            from,
            reason: reason.into(),
        }
    }
}

/// A JSON price cell (CoinGecko, CryptoCompare, Finnhub, Alpha Vantage): positive → the price;
/// `null` or zero (as a number or a string, plain or scientific) → `PairNotFound`; anything else
/// → `Malformed` with the price error as the reason.
pub(crate) fn price_of(from: SourceId, raw: &RawValue, pair: &Pair) -> Result<Price, SourceError> {
    Price::from_json(raw).map_err(|e| {
        if is_null_or_zero(raw) {
            SourceError::not_found(from, pair)
        } else {
            SourceError::malformed(from, e.to_string())
        }
    })
}

fn is_null_or_zero(raw: &RawValue) -> bool {
    let text = raw.get().trim().trim_matches('"').trim();
    text == "null"
        || Decimal::from_str_exact(text)
            .or_else(|_| Decimal::from_scientific(text))
            .is_ok_and(|d| d.is_zero())
}

/// An exchange's price text (Bybit `lastPrice`, OKX `last`, Coinbase `amount`): positive → the
/// price; empty or zero (no trade yet) → `PairNotFound`; anything else (`null` included) →
/// `Malformed`, the reason `<field>: <price error>`, clipped.
pub(crate) fn exchange_price(
    from: SourceId,
    raw: &RawValue,
    pair: &Pair,
    field: &str,
) -> Result<Price, SourceError> {
    Price::from_json(raw).map_err(|e| {
        let text = raw.get().trim().trim_matches('"');
        if text.is_empty() || Decimal::from_str(text).is_ok_and(|d| d.is_zero()) {
            SourceError::not_found(from, pair)
        } else {
            SourceError::malformed_clipped(from, format!("{field}: {e}"))
        }
    })
}

/// One ticker's price as read from a list body, before the pair it belongs to is known
/// (Binance, Kraken).
#[derive(Debug, Clone)]
pub(crate) enum PriceRead {
    Price(Price),
    /// Zero: the symbol has no price.
    NoPrice,
    /// Not a price; the reason.
    Bad(String),
}

impl PriceRead {
    /// The price text as the exchange wrote it: zero is [`PriceRead::NoPrice`] (an empty text is
    /// [`PriceRead::Bad`]).
    pub(crate) fn of(raw: &RawValue) -> Self {
        match Price::from_json(raw) {
            Ok(price) => PriceRead::Price(price),
            Err(e) => {
                let text = raw.get().trim().trim_matches('"');
                if Decimal::from_str(text).is_ok_and(|d| d.is_zero()) {
                    PriceRead::NoPrice
                } else {
                    PriceRead::Bad(e.to_string())
                }
            }
        }
    }

    /// The quote for `pair`: no price → `PairNotFound`; a bad one → `Malformed`
    /// (`price: <reason>`, clipped).
    pub(crate) fn quote(
        &self,
        from: SourceId,
        pair: &Pair,
        symbol: String,
    ) -> Result<Quote, SourceError> {
        match self {
            PriceRead::Price(price) => Ok(Quote::now(*price, symbol)),
            PriceRead::NoPrice => Err(SourceError::not_found(from, pair)),
            PriceRead::Bad(reason) => Err(SourceError::malformed_clipped(
                from,
                format!("price: {reason}"),
            )),
        }
    }
}

/// A JSON body as `T`; a body that is not is `Malformed` (the parse error, clipped).
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(
    from: SourceId,
    body: &'a [u8],
) -> Result<T, SourceError> {
    serde_json::from_slice(body).map_err(|e| SourceError::malformed_clipped(from, e.to_string()))
}

/// The symbol an answer names must be the one asked for: another is `Malformed`
/// (`asked <asked>, got <got>`, the upstream text clipped).
pub(crate) fn check_echoed_symbol(
    from: SourceId,
    asked: &str,
    got: &str,
) -> Result<(), SourceError> {
    if got == asked {
        Ok(())
    } else {
        Err(SourceError::malformed_clipped(
            from,
            format!("asked {asked}, got {}", clip(got)),
        ))
    }
}

/// The items joined with commas, in order (`ids=a,b`).
pub(crate) fn comma_joined(items: &BTreeSet<String>) -> String {
    items
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// The configured API key, unless it is absent or blank.
pub(crate) fn configured_key(config: &SourceConfig) -> Option<Secret<String>> {
    config
        .api_key
        .as_ref()
        .filter(|k| !k.expose().trim().is_empty())
        .cloned()
}

/// A header value carrying an API key, marked sensitive; a value HTTP cannot carry is `Refused`.
pub(crate) fn key_header_value(from: SourceId, value: &str) -> Result<HeaderValue, SourceError> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| SourceError::refused(from, "the API key is not a valid HTTP header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The configured API key (see [`configured_key`]) and the headers that carry it: `name` with
/// `value` of the trimmed key, marked sensitive; no headers without a key. A key HTTP cannot
/// carry is `Refused`.
pub(crate) fn key_headers(
    from: SourceId,
    config: &SourceConfig,
    name: impl IntoHeaderName,
    value: impl FnOnce(&str) -> String,
) -> Result<(HeaderMap, Option<Secret<String>>), SourceError> {
    let mut headers = HeaderMap::new();
    let api_key = configured_key(config);
    if let Some(key) = &api_key {
        headers.insert(name, key_header_value(from, &value(key.expose().trim()))?);
    }
    Ok((headers, api_key))
}

/// How many pairs one batch request carries: `maxBatchSize`, else the source's own limit, else
/// `fallback`; never less than one.
pub(crate) fn batch_size(config: &SourceConfig, from: SourceId, fallback: u32) -> usize {
    config
        .max_batch_size
        .or(from.max_batch())
        .unwrap_or(fallback)
        .max(1) as usize
}

/// Upstream messages quoted in errors are cut to this many characters.
const MAX_MESSAGE: usize = 200;

/// An upstream message fit for an error: control characters removed, then every occurrence of
/// `secret` (the API key as sent, when there is one) replaced by `***`, then cut to
/// [`MAX_MESSAGE`] characters. An empty secret is ignored.
pub(crate) fn upstream_message(text: &str, secret: Option<&str>) -> String {
    let mut text: String = text.chars().filter(|c| !c.is_control()).collect();
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***");
    }
    text.chars().take(MAX_MESSAGE).collect()
}

/// Upstream text (a symbol, a message) bounded before it goes into an error: at most 160
/// characters, `…` marking a cut.
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 160;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// Results of a batch fetch: every asked pair appears, with its own outcome.
pub type BatchResult = BTreeMap<Pair, Result<Quote, SourceError>>;

/// What every price source implements. Adapters parse the source's documented format, handle
/// its in-band errors and map pairs to its symbols.
#[async_trait]
pub trait Source: Send + Sync {
    fn id(&self) -> SourceId;

    /// The upstream symbol of a pair (for logs, API answers and stream subscriptions).
    fn symbol(&self, pair: &Pair) -> String;

    /// One pair, one request.
    async fn fetch(&self, pair: &Pair) -> Result<Quote, SourceError>;

    /// How many pairs one batch request may carry; `None` when the source has no batch API.
    fn max_batch(&self) -> Option<usize> {
        None
    }

    /// Many pairs in one request. The default fetches them one by one.
    async fn fetch_batch(&self, pairs: &[Pair]) -> Result<BatchResult, SourceError> {
        let mut out = BatchResult::new();
        for pair in pairs {
            out.insert(pair.clone(), self.fetch(pair).await);
        }
        Ok(out)
    }

    /// The pairs the source trades, where it publishes a list.
    async fn instruments(&self) -> Result<Vec<Pair>, SourceError> {
        Err(SourceError::Unsupported {
            from: self.id(),
            what: "instrument lists",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_messages_lose_the_secret() {
        assert_eq!(
            upstream_message("the parameter apikey K3Y is invalid, K3Y!", Some("K3Y")),
            "the parameter apikey *** is invalid, ***!"
        );
        assert_eq!(upstream_message("no key here", Some("K3Y")), "no key here");
        assert_eq!(upstream_message("K3Y stays", None), "K3Y stays");
        // An empty secret replaces nothing (a plain `replace("", …)` would insert everywhere).
        assert_eq!(upstream_message("abc", Some("")), "abc");
    }

    #[test]
    fn upstream_messages_lose_control_characters_even_inside_the_secret() {
        assert_eq!(
            upstream_message("line\none\r\n\ttab\u{0}\u{7f}end", None),
            "lineonetabend"
        );
        // Characters are removed first, so a key split by a newline is still found.
        assert_eq!(
            upstream_message("key K3\nY here", Some("K3Y")),
            "key *** here"
        );
        assert_eq!(upstream_message("é ü → ok", None), "é ü → ok");
    }

    #[test]
    fn upstream_messages_are_cut_at_200_characters() {
        let long = "é".repeat(250);
        let cut = upstream_message(&long, None);
        assert_eq!(cut.chars().count(), MAX_MESSAGE);
        assert_eq!(cut, "é".repeat(200));
        assert_eq!(upstream_message(&"x".repeat(200), None), "x".repeat(200));
        // The cut comes after the key is replaced: the key cannot survive in part.
        let text = format!("{}SECRETKEY", "a".repeat(195));
        assert_eq!(
            upstream_message(&text, Some("SECRETKEY")),
            format!("{}***", "a".repeat(195))
        );
        let text = format!("{}SECRETKEY", "a".repeat(198));
        assert_eq!(
            upstream_message(&text, Some("SECRETKEY")),
            format!("{}**", "a".repeat(198))
        );
    }

    const ID: SourceId = SourceId::CoinGecko;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("json")
    }

    fn btc_usd() -> Pair {
        testing::pair("BTC/USD")
    }

    fn not_a_price(json: &str) -> String {
        Price::from_json(&raw(json)).unwrap_err().to_string()
    }

    #[test]
    fn error_constructors_fill_the_variants() {
        assert_eq!(
            SourceError::not_found(ID, &btc_usd()),
            SourceError::PairNotFound {
                from: ID,
                pair: btc_usd().to_string()
            }
        );
        assert_eq!(
            SourceError::malformed(ID, "no data"),
            SourceError::Malformed {
                from: ID,
                reason: "no data".into()
            }
        );
        let long = "x".repeat(300);
        assert_eq!(
            SourceError::malformed(ID, long.clone()),
            SourceError::Malformed {
                from: ID,
                reason: long.clone()
            }
        );
        assert_eq!(
            SourceError::malformed_clipped(ID, &long),
            SourceError::Malformed {
                from: ID,
                reason: clip(&long)
            }
        );
        assert_eq!(
            SourceError::upstream(ID, "boom"),
            SourceError::Upstream {
                from: ID,
                reason: "boom".into()
            }
        );
        assert_eq!(
            SourceError::http_status(ID, StatusCode::BAD_GATEWAY),
            SourceError::Upstream {
                from: ID,
                reason: "HTTP 502 Bad Gateway".into()
            }
        );
        assert_eq!(
            SourceError::rate_limited(ID),
            SourceError::RateLimited {
                from: ID,
                retry_after: None
            }
        );
        assert_eq!(
            SourceError::refused(ID, "bad key"),
            SourceError::Refused {
                from: ID,
                reason: "bad key".into()
            }
        );
    }

    #[test]
    fn quotes_are_stamped_now() {
        let before = SystemTime::now();
        let price = Price::from_json(&raw("1.5")).unwrap();
        let quote = Quote::now(price, "BTCUSDT");
        assert_eq!(quote.price, price);
        assert_eq!(quote.symbol, "BTCUSDT");
        assert!(before <= quote.received_at && quote.received_at <= SystemTime::now());
    }

    #[test]
    fn price_cells_null_or_zero_are_not_found_other_bad_values_malformed() {
        let pair = btc_usd();
        for good in ["67123.45", "\"67123.45\"", "2.3e12"] {
            assert_eq!(
                price_of(ID, &raw(good), &pair),
                Ok(Price::from_json(&raw(good)).unwrap()),
                "{good}"
            );
        }
        for none in ["null", "0", "0.0", "\"0\"", "\" 0 \"", "0e5", "\"null\""] {
            assert_eq!(
                price_of(ID, &raw(none), &pair),
                Err(SourceError::not_found(ID, &pair)),
                "{none}"
            );
        }
        for bad in ["-1", "\"abc\"", "\"\"", "true", "[1]"] {
            assert_eq!(
                price_of(ID, &raw(bad), &pair),
                Err(SourceError::malformed(ID, not_a_price(bad))),
                "{bad}"
            );
        }
    }

    #[test]
    fn exchange_prices_empty_or_zero_are_not_found_null_is_malformed() {
        let pair = btc_usd();
        assert_eq!(
            exchange_price(ID, &raw("\"1.25\""), &pair, "last"),
            Ok(Price::from_json(&raw("1.25")).unwrap())
        );
        for none in ["\"\"", "\"0\"", "0", "\"0.00000000\"", "0e5"] {
            assert_eq!(
                exchange_price(ID, &raw(none), &pair, "last"),
                Err(SourceError::not_found(ID, &pair)),
                "{none}"
            );
        }
        for bad in ["null", "\"-3\"", "\"abc\"", "\" \""] {
            assert_eq!(
                exchange_price(ID, &raw(bad), &pair, "last"),
                Err(SourceError::malformed_clipped(
                    ID,
                    format!("last: {}", not_a_price(bad))
                )),
                "{bad}"
            );
        }
        // The reason is clipped: a long field name stands in for long upstream text.
        let field = "f".repeat(300);
        assert_eq!(
            exchange_price(ID, &raw("true"), &pair, &field),
            Err(SourceError::Malformed {
                from: ID,
                reason: clip(&format!("{field}: {}", not_a_price("true")))
            })
        );
    }

    #[test]
    fn price_reads_turn_into_quotes() {
        let pair = btc_usd();
        let read = PriceRead::of(&raw("\"67123.45000000\""));
        let quote = read.quote(ID, &pair, "BTCUSDT".into()).unwrap();
        assert_eq!(quote.price, Price::from_json(&raw("67123.45")).unwrap());
        assert_eq!(quote.symbol, "BTCUSDT");

        assert!(matches!(
            PriceRead::of(&raw("\"0.000\"")),
            PriceRead::NoPrice
        ));
        assert!(matches!(PriceRead::of(&raw("0")), PriceRead::NoPrice));
        assert_eq!(
            PriceRead::NoPrice.quote(ID, &pair, "BTCUSDT".into()),
            Err(SourceError::not_found(ID, &pair))
        );
        // Empty text is not "no price" here (unlike `exchange_price`).
        for bad in ["\"\"", "null", "\"-1\""] {
            let read = PriceRead::of(&raw(bad));
            assert!(
                matches!(&read, PriceRead::Bad(r) if *r == not_a_price(bad)),
                "{bad}"
            );
            assert_eq!(
                read.quote(ID, &pair, "BTCUSDT".into()),
                Err(SourceError::malformed_clipped(
                    ID,
                    format!("price: {}", not_a_price(bad))
                ))
            );
        }
    }

    #[test]
    fn json_bodies_parse_or_are_malformed() {
        let v: Vec<u32> = parse_json(ID, b"[1,2]").unwrap();
        assert_eq!(v, [1, 2]);
        let e = serde_json::from_slice::<Vec<u32>>(b"<html>").unwrap_err();
        assert_eq!(
            parse_json::<Vec<u32>>(ID, b"<html>"),
            Err(SourceError::malformed_clipped(ID, e.to_string()))
        );
    }

    #[test]
    fn echoed_symbols_must_be_the_asked_ones() {
        assert_eq!(check_echoed_symbol(ID, "BTCUSDT", "BTCUSDT"), Ok(()));
        let long = "E".repeat(300);
        assert_eq!(
            check_echoed_symbol(ID, "BTCUSDT", &long),
            Err(SourceError::malformed_clipped(
                ID,
                format!("asked BTCUSDT, got {}", clip(&long))
            ))
        );
    }

    #[test]
    fn comma_joined_lists_in_order() {
        let items: BTreeSet<String> = ["usd", "eur", "btc"].map(String::from).into();
        assert_eq!(comma_joined(&items), "btc,eur,usd");
        assert_eq!(comma_joined(&BTreeSet::new()), "");
    }

    #[test]
    fn blank_keys_are_not_configured() {
        let key = |api_key: Option<&str>| {
            let mut config = testing::config(ID, serde_json::json!({}));
            config.api_key = api_key.map(Secret::from);
            configured_key(&config).map(|k| k.expose().clone())
        };
        assert_eq!(key(None), None);
        assert_eq!(key(Some("")), None);
        assert_eq!(key(Some(" \t ")), None);
        assert_eq!(key(Some(" k3y ")), Some(" k3y ".to_owned()));
    }

    #[test]
    fn key_header_values_are_sensitive_or_refused() {
        let value = key_header_value(ID, "Apikey k3y").unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Apikey k3y");
        assert_eq!(
            key_header_value(ID, "k3y\nnext"),
            Err(SourceError::refused(
                ID,
                "the API key is not a valid HTTP header value"
            ))
        );
    }

    #[test]
    fn clip_bounds_text_and_marks_the_cut() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"x".repeat(160)), "x".repeat(160));
        assert_eq!(clip(&"ü".repeat(161)), format!("{}…", "ü".repeat(160)));
        // Control characters are not its business.
        assert_eq!(clip("a\nb"), "a\nb");
    }
}
