//! WebSocket streams: live prices from the sources that publish them, so the cache stays fresh
//! and REST refetches run only when a stream is silent. Each source describes its protocol
//! ([`StreamProtocol`]); one connection manager per source does the rest (connect, batched and
//! rate-limited subscriptions, heartbeat, reconnect with backoff and resubscription), see
//! [`manager`].
//!
//! Streaming sources: binance, okx, kraken, coinbase, bybit, cryptocompare, finnhub
//! ([`protocol`] builds theirs). Topics follow the REST adapters' symbols where the upstream
//! does: `btcusdt@miniTicker` (Binance, lower case), `BTC-USDT` (OKX, Coinbase), `BTC/USD`
//! (Kraken WS v2, `XBT`/`XDG` written `BTC`/`DOGE`), `tickers.BTCUSDT` (Bybit),
//! `5~CCCAGG~BTC~USD` (CryptoCompare), `BINANCE:BTCUSDT` (Finnhub).

pub mod binance;
pub mod bybit;
pub mod coinbase;
pub mod cryptocompare;
pub mod finnhub;
pub mod kraken;
pub mod manager;
pub mod okx;

use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::pair::Pair;
use super::price::Price;
use crate::config::schema::sources::{SourceConfig, SourceId, StreamConfig};

pub use manager::{spawn, StreamHandle, StreamStatus};

/// What one incoming message means.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Prices, by the topic they belong to (as [`StreamProtocol::topic`] names it).
    Updates(Vec<(String, Price)>),
    /// A message to send back at once (an application-level pong).
    Reply(Message),
    /// The source refused a topic (unknown symbol): stop asking for it.
    Rejected { topic: String, reason: String },
    /// The source reported an error that names no topic (a malformed request, a limit, a
    /// maintenance notice): logged, nothing else changes.
    Error(String),
    /// Acknowledgements, heartbeats, anything without a price.
    Ignore,
}

/// A source's WebSocket protocol.
pub trait StreamProtocol: Send + Sync + 'static {
    fn id(&self) -> SourceId;

    /// The public endpoint; `stream.wsUrl` in the configuration replaces it.
    fn default_url(&self) -> &'static str;

    /// The URL actually dialled: sources that take their key in the query add it here.
    fn url(&self, configured: Option<&Url>) -> Result<Url, url::ParseError> {
        match configured {
            Some(u) => Ok(u.clone()),
            None => Url::parse(self.default_url()),
        }
    }

    /// The stream's name for a pair (`btcusdt@miniTicker`, `BTC-USDT`, `5~CCCAGG~BTC~USD`).
    fn topic(&self, pair: &Pair) -> String;

    /// The messages that subscribe to `topics` (the manager batches topics by
    /// `stream.batchSize` and spaces messages by `stream.rateLimit`).
    fn subscribe(&self, topics: &[String], request_id: u64) -> Vec<Message>;

    fn unsubscribe(&self, topics: &[String], request_id: u64) -> Vec<Message>;

    /// Reads one message from the source.
    fn parse(&self, message: &Message) -> Incoming;

    /// An application-level heartbeat to send every `stream.heartbeatInterval` (OKX's `ping`,
    /// Finnhub's `{"type":"ping"}`); `None` means WebSocket ping frames.
    fn heartbeat(&self) -> Option<Message> {
        None
    }

    /// The longest heartbeat interval the source tolerates (OKX drops a connection silent for
    /// 30 s, Bybit asks for a ping every 20 s): a longer `stream.heartbeatInterval` is cut to it.
    fn max_heartbeat_interval(&self) -> Option<Duration> {
        None
    }

    /// The most topics one subscription message may carry (Bybit spot takes 10 args per
    /// request); `stream.batchSize` is cut to it.
    fn max_topics_per_message(&self) -> Option<usize> {
        None
    }

    /// Messages sent once on every new connection, before any subscription (Coinbase's
    /// `heartbeats` channel, which keeps idle subscriptions open).
    fn on_connect(&self) -> Vec<Message> {
        Vec::new()
    }

    /// Whether one rejected topic voids the whole subscribe request it came in (Coinbase
    /// ignores a subscribe naming any invalid product): the manager then subscribes the
    /// request's other topics again.
    fn rejection_voids_request(&self) -> bool {
        false
    }
}

/// The stream protocol of a source, when the source streams. `None` for the sources without a
/// stream, and for Finnhub and CryptoCompare without an API key (their streams take none).
pub fn protocol(id: SourceId, config: &SourceConfig) -> Option<Arc<dyn StreamProtocol>> {
    let key = config.api_key.as_ref();
    let p: Arc<dyn StreamProtocol> = match id {
        SourceId::Binance => Arc::new(binance::Binance),
        SourceId::Okx => Arc::new(okx::Okx),
        SourceId::Kraken => Arc::new(kraken::Kraken),
        SourceId::Coinbase => Arc::new(coinbase::Coinbase),
        SourceId::Bybit => Arc::new(bybit::Bybit),
        SourceId::CryptoCompare => Arc::new(cryptocompare::CryptoCompare::new(key?.clone())),
        SourceId::Finnhub => Arc::new(finnhub::Finnhub::new(key?.clone())),
        _ => return None,
    };
    Some(p)
}

/// The `stream` settings used when a streaming source's configuration has none (the
/// reference's defaults).
pub fn default_stream_config() -> StreamConfig {
    StreamConfig {
        auto_reconnect: true,
        reconnect_interval: Duration::from_millis(5000),
        max_reconnect_attempts: 10,
        heartbeat_interval: Duration::from_millis(30_000),
        ws_url: None,
        batch_size: None,
        rate_limit: None,
    }
}

/// Starts the stream of an enabled streaming source: its protocol, the URL (`stream.wsUrl` or
/// the default, with the key where the source takes one) and a connection manager. `None` when
/// the source does not stream (or lacks the key it needs) or the URL cannot be built.
pub fn start(
    id: SourceId,
    config: &SourceConfig,
    on_update: Arc<dyn Fn(Pair, Price) + Send + Sync>,
) -> Option<StreamHandle> {
    if !config.enabled {
        return None;
    }
    let protocol = protocol(id, config)?;
    let stream = config.stream.clone().unwrap_or_else(default_stream_config);
    let configured = stream.ws_url.as_ref().map(|u| u.expose());
    let url = match protocol.url(configured) {
        Ok(u) => u,
        Err(e) => {
            // The parse error never repeats the URL text.
            tracing::error!(source = %id, error = %e, "stream URL invalid; not streaming");
            return None;
        }
    };
    Some(spawn(protocol, stream, url, on_update))
}

/// The text of a text (or UTF-8 binary) frame.
pub(crate) fn text_of(message: &Message) -> Option<&str> {
    match message {
        Message::Text(t) => Some(t.as_str()),
        Message::Binary(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// At most 200 characters of upstream text, for logs and reasons.
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 200;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

/// A JSON text frame.
pub(crate) fn json_message(value: &serde_json::Value) -> Message {
    Message::text(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::sources::testing;
    use serde_json::json;

    #[test]
    fn the_seven_streaming_sources_have_a_protocol() {
        let mut streaming = Vec::new();
        for id in SourceId::ALL {
            let config = testing::config(id, json!({"apiKey": "k3y"}));
            if let Some(p) = protocol(id, &config) {
                assert_eq!(p.id(), id);
                assert!(id.streams());
                streaming.push(id.name());
            } else {
                assert!(!id.streams(), "{id} streams but has no protocol");
            }
        }
        assert_eq!(
            streaming,
            [
                "binance",
                "okx",
                "finnhub",
                "cryptocompare",
                "kraken",
                "coinbase",
                "bybit"
            ]
        );
    }

    #[test]
    fn keyed_streams_need_their_key() {
        for id in [SourceId::Finnhub, SourceId::CryptoCompare] {
            let config = testing::config(id, json!({"enabled": false}));
            assert!(protocol(id, &config).is_none());
        }
    }

    #[test]
    fn default_urls_are_the_references() {
        let urls: Vec<_> = SourceId::ALL
            .into_iter()
            .filter_map(|id| protocol(id, &testing::config(id, json!({"apiKey": "k3y"}))))
            .map(|p| p.default_url())
            .collect();
        assert_eq!(
            urls,
            [
                "wss://stream.binance.us:9443/ws",
                "wss://ws.okx.com:8443/ws/v5/public",
                "wss://ws.finnhub.io",
                "wss://streamer.cryptocompare.com/v2",
                "wss://ws.kraken.com/v2",
                "wss://advanced-trade-ws.coinbase.com",
                "wss://stream.bybit.com/v5/public/spot",
            ]
        );
    }

    #[test]
    fn long_upstream_text_is_clipped() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"x".repeat(500)).chars().count(), 201);
    }
}
