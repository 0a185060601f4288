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
