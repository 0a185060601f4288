//! WebSocket streams: live prices from the sources that publish them, so the cache stays fresh
//! and REST refetches run only when a stream is silent. Each source describes its protocol
//! ([`StreamProtocol`]); one connection manager per source does the rest (connect, batched and
//! rate-limited subscriptions, heartbeat, reconnect with backoff and resubscription).

use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::pair::Pair;
use super::price::Price;
use crate::config::schema::sources::SourceId;

/// What one incoming message means.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Prices, by the topic they belong to (as [`StreamProtocol::topic`] names it).
    Updates(Vec<(String, Price)>),
    /// A message to send back at once (an application-level pong).
    Reply(Message),
    /// The source refused a topic (unknown symbol): stop asking for it.
    Rejected { topic: String, reason: String },
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
}
