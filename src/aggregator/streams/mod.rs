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

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
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

/// Where a source streams from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub id: SourceId,
    /// The public endpoint; `stream.wsUrl` in the configuration replaces it.
    pub url: &'static str,
}

impl Endpoint {
    pub const fn new(id: SourceId, url: &'static str) -> Self {
        Endpoint { id, url }
    }
}

/// Which way a subscription message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Subscribe,
    Unsubscribe,
}

impl Direction {
    /// The word most sources name it with: `subscribe`, `unsubscribe`.
    pub fn word(self) -> &'static str {
        match self {
            Direction::Subscribe => "subscribe",
            Direction::Unsubscribe => "unsubscribe",
        }
    }
}

/// A source's WebSocket protocol.
pub trait StreamProtocol: Send + Sync + 'static {
    /// The source and its public endpoint, in one constant per protocol.
    fn endpoint(&self) -> &'static Endpoint;

    fn id(&self) -> SourceId {
        self.endpoint().id
    }

    /// The public endpoint; `stream.wsUrl` in the configuration replaces it.
    fn default_url(&self) -> &'static str {
        self.endpoint().url
    }

    /// The URL actually dialled: sources that take their key in the query add it here.
    fn url(&self, configured: Option<&Url>) -> Result<Url, url::ParseError> {
        url_with_query(configured, self.default_url(), &[])
    }

    /// The stream's name for a pair (`btcusdt@miniTicker`, `BTC-USDT`, `5~CCCAGG~BTC~USD`).
    fn topic(&self, pair: &Pair) -> String;

    /// The messages that subscribe to `topics`, or unsubscribe from them: the two differ only by
    /// the word a source names them with (the manager batches topics by `stream.batchSize` and
    /// spaces messages by `stream.rateLimit`).
    fn subscription(&self, to: Direction, topics: &[String], request_id: u64) -> Vec<Message>;

    /// The messages that subscribe to `topics`.
    fn subscribe(&self, topics: &[String], request_id: u64) -> Vec<Message> {
        self.subscription(Direction::Subscribe, topics, request_id)
    }

    /// The messages that unsubscribe from `topics`.
    fn unsubscribe(&self, topics: &[String], request_id: u64) -> Vec<Message> {
        self.subscription(Direction::Unsubscribe, topics, request_id)
    }

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

/// The text of a frame a protocol built, which tests expect to be text.
#[cfg(test)]
pub(crate) fn sent_text(message: &Message) -> &str {
    text_of(message).expect("a text frame")
}

/// The updates `protocol` reads from the text frame `text`, as topic and price text; a frame
/// without updates fails the test.
#[cfg(test)]
pub(crate) fn updates_of(protocol: &dyn StreamProtocol, text: &str) -> Vec<(String, String)> {
    match protocol.parse(&Message::text(text)) {
        Incoming::Updates(u) => u
            .into_iter()
            .map(|(topic, price)| (topic, price.value().to_string()))
            .collect(),
        other => panic!("no update: {other:?}"),
    }
}

/// A JSON text frame.
pub(crate) fn json_message(value: &serde_json::Value) -> Message {
    Message::text(value.to_string())
}

/// `configured`, or else `default`, with each `(key, value)` added to the query unless the URL
/// already names `key` (the sources that take their API key in the URL).
pub(crate) fn url_with_query(
    configured: Option<&Url>,
    default: &str,
    params: &[(&str, &str)],
) -> Result<Url, url::ParseError> {
    let mut url = match configured {
        Some(u) => u.clone(),
        None => Url::parse(default)?,
    };
    for (key, value) in params {
        if !url.query_pairs().any(|(k, _)| k == *key) {
            url.query_pairs_mut().append_pair(key, value);
        }
    }
    Ok(url)
}

/// A frame read as JSON `T`, then given to `read`. A frame without text (ping, pong, close) is
/// [`Incoming::Ignore`]; see [`read_json_text`] for text that is not `T`.
pub(crate) fn read_json<T: DeserializeOwned>(
    message: &Message,
    read: impl FnOnce(T) -> Incoming,
) -> Incoming {
    match text_of(message) {
        Some(text) => read_json_text(text, read),
        None => Incoming::Ignore,
    }
}

/// `text` read as JSON `T`, then given to `read`; text that is not `T` is an
/// [`Incoming::Error`] quoting it (clipped), so one odd message costs no connection.
pub(crate) fn read_json_text<T: DeserializeOwned>(
    text: &str,
    read: impl FnOnce(T) -> Incoming,
) -> Incoming {
    match serde_json::from_str(text) {
        Ok(frame) => read(frame),
        Err(_) => Incoming::Error(format!("unreadable message: {}", clip(text))),
    }
}

/// The prices read from the ticks of one message, and what was wrong with the others: a
/// message with any price is its updates (the bad ticks are dropped); one without is the
/// problems, joined and clipped; one with neither is ignored.
#[derive(Default)]
pub(crate) struct Ticks {
    updates: Vec<(String, Price)>,
    problems: Vec<String>,
}

impl Ticks {
    /// A tick's price as the source wrote it (text or number); when there is none, `missing`
    /// says so (`no price (last)`).
    pub(crate) fn read(&mut self, topic: String, raw: Option<&RawValue>, missing: &str) {
        match raw.map(Price::from_json) {
            Some(Ok(price)) => self.price(topic, price),
            Some(Err(e)) => self.problem(format!("{topic}: {e}")),
            None => self.problem(format!("{topic}: {missing}")),
        }
    }

    pub(crate) fn price(&mut self, topic: String, price: Price) {
        self.updates.push((topic, price));
    }

    pub(crate) fn problem(&mut self, reason: String) {
        self.problems.push(reason);
    }

    /// Whether nothing, good or bad, was read yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.problems.is_empty()
    }

    /// What the message means.
    pub(crate) fn incoming(self) -> Incoming {
        if !self.updates.is_empty() {
            Incoming::Updates(self.updates)
        } else if !self.problems.is_empty() {
            Incoming::Error(clip(&self.problems.join("; ")))
        } else {
            Incoming::Ignore
        }
    }
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
    fn keys_are_added_to_the_url_unless_it_names_them() {
        let default = "wss://example.test/ws";
        let url = url_with_query(None, default, &[("token", "k3y"), ("format", "streamer")]);
        assert_eq!(
            url.expect("url").as_str(),
            "wss://example.test/ws?token=k3y&format=streamer"
        );
        let configured = Url::parse("wss://other.test/v2?token=mine").expect("url");
        let url = url_with_query(Some(&configured), default, &[("token", "k3y")]);
        assert_eq!(url.expect("url"), configured);
        assert_eq!(
            url_with_query(None, default, &[]).expect("url").as_str(),
            default
        );
        assert!(url_with_query(None, "not a url", &[]).is_err());
    }

    #[derive(serde::Deserialize)]
    struct Probe {
        n: u32,
    }

    fn probe(message: &Message) -> Incoming {
        read_json(message, |p: Probe| Incoming::Error(format!("n={}", p.n)))
    }

    #[test]
    fn frames_are_read_as_json_or_reported_unreadable() {
        assert_eq!(
            probe(&Message::text(r#"{"n":7}"#)),
            Incoming::Error("n=7".into())
        );
        assert_eq!(
            probe(&Message::Binary(br#"{"n":8}"#.to_vec().into())),
            Incoming::Error("n=8".into())
        );
        assert_eq!(probe(&Message::Ping(Vec::new().into())), Incoming::Ignore);
        assert_eq!(
            probe(&Message::text("not json")),
            Incoming::Error("unreadable message: not json".into())
        );
        let long = "x".repeat(500);
        assert_eq!(
            probe(&Message::text(long.clone())),
            Incoming::Error(format!("unreadable message: {}", clip(&long)))
        );
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("json")
    }

    #[test]
    fn ticks_are_updates_when_any_price_reads_else_their_problems() {
        let mut ticks = Ticks::default();
        assert!(ticks.is_empty());
        ticks.read("A".into(), Some(&raw("\"abc\"")), "no price");
        assert!(!ticks.is_empty());
        ticks.read("B".into(), Some(&raw("\"1.50\"")), "no price");
        ticks.read("C".into(), None, "no price (last)");
        ticks.price("D".into(), "2".parse().expect("price"));
        let Incoming::Updates(updates) = ticks.incoming() else {
            panic!("no updates")
        };
        let read: Vec<_> = updates
            .iter()
            .map(|(t, p)| (t.as_str(), p.value().to_string()))
            .collect();
        assert_eq!(read, [("B", "1.50".to_owned()), ("D", "2".to_owned())]);

        let mut ticks = Ticks::default();
        ticks.read("C".into(), None, "no price (last)");
        ticks.problem("E: odd".into());
        assert_eq!(
            ticks.incoming(),
            Incoming::Error("C: no price (last); E: odd".into())
        );
        let mut ticks = Ticks::default();
        for _ in 0..100 {
            ticks.problem("a long problem".into());
        }
        let Incoming::Error(reason) = ticks.incoming() else {
            panic!("no error")
        };
        assert_eq!(reason.chars().count(), 201);
        assert_eq!(Ticks::default().incoming(), Incoming::Ignore);
    }

    #[test]
    fn long_upstream_text_is_clipped() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"x".repeat(500)).chars().count(), 201);
    }
}
