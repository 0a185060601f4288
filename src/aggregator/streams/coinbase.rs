//! Coinbase Advanced Trade market data, `wss://advanced-trade-ws.coinbase.com` (no JWT for the
//! public `ticker` channel), the reference's feed. The Exchange feed's legacy ticker messages
//! (`wss://ws-feed.exchange.coinbase.com`, `{"type":"ticker",…}`) are read too.
//!
//! Topic: the product id as the REST adapter writes it (`BTC-USD`). Subscribe
//! `{"type":"subscribe","product_ids":["BTC-USD"],"channel":"ticker"}` (one channel per
//! message; unsubscribe likewise). Every connection also subscribes to `heartbeats`, which keeps
//! idle subscriptions open (Coinbase closes channels silent for 60-90 s).
//! Ticks: `{"channel":"ticker",…,"events":[{"type":"snapshot"|"update","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"68900.50",…}]}]}`.
//! Errors: `{"type":"error","message":"Failed to subscribe","reason":"NOPE-USD is not a valid product"}`
//! rejects the product; such a failure voids the whole subscribe request, so the manager
//! resubscribes the request's other products.

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use super::{clip, json_message, read_json, Direction, Endpoint, Incoming, StreamProtocol, Ticks};
use crate::aggregator::pair::Pair;
use crate::aggregator::sources;
use crate::config::schema::sources::SourceId;

const ENDPOINT: Endpoint =
    Endpoint::new(SourceId::Coinbase, "wss://advanced-trade-ws.coinbase.com");
const CHANNEL: &str = "ticker";

pub struct Coinbase;

#[derive(Deserialize)]
struct Frame {
    channel: Option<String>,
    events: Option<Vec<Event>>,
    #[serde(rename = "type")]
    kind: Option<String>,
    product_id: Option<String>,
    price: Option<Box<RawValue>>,
    message: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    tickers: Option<Vec<Ticker>>,
}

#[derive(Deserialize)]
struct Ticker {
    product_id: Option<String>,
    price: Option<Box<RawValue>>,
}

fn request(kind: &str, topics: &[String]) -> Message {
    json_message(&json!({"type": kind, "product_ids": topics, "channel": CHANNEL}))
}

/// The product a failure names (`"NOPE-USD is not a valid product"`).
fn named_product(reason: &str) -> Option<String> {
    let product = reason
        .trim()
        .strip_suffix(" is not a valid product")?
        .trim();
    let valid = !product.is_empty()
        && product
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    valid.then(|| product.to_owned())
}

fn collect(ticks: impl Iterator<Item = (Option<String>, Option<Box<RawValue>>)>) -> Incoming {
    let mut read = Ticks::default();
    for (product, price) in ticks {
        let Some(topic) = product else { continue };
        read.read(topic, price.as_deref(), "no price");
    }
    read.incoming()
}

/// What one frame means.
fn read(frame: Frame) -> Incoming {
    match (frame.channel.as_deref(), frame.kind.as_deref()) {
        (Some("ticker" | "ticker_batch"), _) => collect(
            frame
                .events
                .unwrap_or_default()
                .into_iter()
                .flat_map(|e| e.tickers.unwrap_or_default())
                .map(|t| (t.product_id, t.price)),
        ),
        (None, Some("ticker")) => collect(std::iter::once((frame.product_id, frame.price))),
        (_, Some("error")) => {
            let message = frame.message.unwrap_or_default();
            let reason_text = frame.reason.unwrap_or_default();
            let reason = clip(&format!("{message}: {reason_text}"));
            match named_product(&reason_text).or_else(|| named_product(&message)) {
                Some(topic) => Incoming::Rejected { topic, reason },
                None => Incoming::Error(reason),
            }
        }
        // heartbeats, subscriptions, the Exchange feed's heartbeat and subscriptions.
        _ => Incoming::Ignore,
    }
}

impl StreamProtocol for Coinbase {
    fn endpoint(&self) -> &'static Endpoint {
        &ENDPOINT
    }

    fn topic(&self, pair: &Pair) -> String {
        sources::coinbase::symbol(pair)
    }

    fn subscription(&self, to: Direction, topics: &[String], _request_id: u64) -> Vec<Message> {
        vec![request(to.word(), topics)]
    }

    fn parse(&self, message: &Message) -> Incoming {
        read_json(message, read)
    }

    fn on_connect(&self) -> Vec<Message> {
        vec![json_message(
            &json!({"type": "subscribe", "channel": "heartbeats"}),
        )]
    }

    fn rejection_voids_request(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::streams::{sent_text, updates_of};

    #[test]
    fn topics_subscriptions_and_the_heartbeat_channel() {
        assert_eq!(
            Coinbase.topic(&Pair::new("btc", "usd").expect("pair")),
            "BTC-USD"
        );
        assert_eq!(
            sent_text(&Coinbase.subscribe(&["BTC-USD".to_owned()], 1)[0]),
            r#"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"ticker"}"#
        );
        assert_eq!(
            sent_text(&Coinbase.unsubscribe(&["BTC-USD".to_owned(), "ETH-USD".to_owned()], 2)[0]),
            r#"{"type":"unsubscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"ticker"}"#
        );
        let on_connect = Coinbase.on_connect();
        assert_eq!(
            sent_text(&on_connect[0]),
            r#"{"type":"subscribe","channel":"heartbeats"}"#
        );
        assert_eq!(Coinbase.heartbeat(), None);
    }

    #[test]
    fn advanced_trade_ticks() {
        let u = updates_of(
            &Coinbase,
            r#"{"channel":"ticker","client_id":"","timestamp":"2026-04-07T14:30:03.000000Z","sequence_num":12,"events":[{"type":"snapshot","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"68900.50","volume_24_h":"15328.12345678","low_24_h":"67500.00","high_24_h":"69200.00","low_52_w":"25000.00","high_52_w":"73800.00","price_percent_chg_24_h":"1.85","best_bid":"68900.00","best_bid_quantity":"1.50000000","best_ask":"68901.00","best_ask_quantity":"0.50000000"}]}]}"#,
        );
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].0, "BTC-USD");
        assert_eq!(u[0].1, "68900.50");
        let u = updates_of(
            &Coinbase,
            r#"{"channel":"ticker","client_id":"","timestamp":"2025-10-24T12:00:00Z","sequence_num":1,"events":[{"type":"update","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"67123.45"},{"type":"ticker","product_id":"ETH-USD","price":"2600.2"}]}]}"#,
        );
        let topics: Vec<_> = u.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(topics, ["BTC-USD", "ETH-USD"]);
    }

    #[test]
    fn legacy_exchange_ticks() {
        let u = updates_of(
            &Coinbase,
            r#"{"type":"ticker","sequence":123456789,"product_id":"BTC-USD","price":"50000.12","open_24h":"49000.00","volume_24h":"1200.3456","low_24h":"48000.00"}"#,
        );
        assert_eq!(u[0].0, "BTC-USD");
        assert_eq!(u[0].1, "50000.12");
    }

    #[test]
    fn acks_heartbeats_and_errors() {
        let subs = r#"{"channel":"subscriptions","client_id":"","timestamp":"2026-04-07T14:30:03Z","sequence_num":0,"events":[{"subscriptions":{"ticker":["BTC-USD"]}}]}"#;
        assert_eq!(Coinbase.parse(&Message::text(subs)), Incoming::Ignore);
        let legacy_subs = r#"{"type":"subscriptions","channels":[{"name":"ticker","product_ids":["BTC-USD"],"account_ids":null}]}"#;
        assert_eq!(
            Coinbase.parse(&Message::text(legacy_subs)),
            Incoming::Ignore
        );
        let hb = r#"{"channel":"heartbeats","client_id":"","timestamp":"2026-04-07T14:30:03Z","sequence_num":3,"events":[{"current_time":"2026-04-07 14:30:03.1 +0000 UTC m=+1.0","heartbeat_counter":3}]}"#;
        assert_eq!(Coinbase.parse(&Message::text(hb)), Incoming::Ignore);
        let bad = r#"{"type":"error","message":"Failed to subscribe","reason":"NOPE-USD is not a valid product"}"#;
        assert_eq!(
            Coinbase.parse(&Message::text(bad)),
            Incoming::Rejected {
                topic: "NOPE-USD".into(),
                reason: "Failed to subscribe: NOPE-USD is not a valid product".into()
            }
        );
        let other =
            r#"{"type":"error","message":"Failed to subscribe","reason":"No channels provided"}"#;
        assert_eq!(
            Coinbase.parse(&Message::text(other)),
            Incoming::Error("Failed to subscribe: No channels provided".into())
        );
        assert!(Coinbase.rejection_voids_request());
    }
}
