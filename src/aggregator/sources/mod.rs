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

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use thiserror::Error;

use super::pair::Pair;
use super::price::Price;
use crate::config::schema::sources::SourceId;

/// One price from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub price: Price,
    /// The upstream symbol the price was asked for (`BTCUSDT`, `XBT/USD`, `bitcoin`).
    pub symbol: String,
    /// When we received it (never an upstream clock: those differ and are not ours to trust).
    pub received_at: SystemTime,
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

    #[test]
    fn clip_bounds_text_and_marks_the_cut() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"x".repeat(160)), "x".repeat(160));
        assert_eq!(clip(&"ü".repeat(161)), format!("{}…", "ü".repeat(160)));
        // Control characters are not its business.
        assert_eq!(clip("a\nb"), "a\nb");
    }
}
