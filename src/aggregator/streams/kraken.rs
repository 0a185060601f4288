//! Kraken spot WebSocket v2, `wss://ws.kraken.com/v2`, channel `ticker`.
//!
//! Topic: `BASE/QUOTE` in upper case with v2's asset names — `BTC` and `DOGE`, where the REST
//! API says `XBT` and `XDG` (a pair registered as `XBT/USD` subscribes `BTC/USD`; an incoming
//! `XBT/USD` is read as `BTC/USD`, and the manager maps the topic back to every pair
//! registered for it).
//! Subscribe `{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD"],"event_trigger":"trades"},"req_id":1}`
//! (unsubscribe likewise). Acks: `{"method":"subscribe","result":{…,"symbol":"BTC/USD"},"success":true,…}`;
//! a failure `{"method":"subscribe","success":false,"error":"…","symbol":"NOPE/USD",…}` rejects
//! the symbol, except "Already subscribed". Ticks:
//! `{"channel":"ticker","type":"snapshot"|"update","data":[{"symbol":"BTC/USD","last":81205.1,…}]}`
//! — `last` is a JSON number, read from its text. `{"channel":"heartbeat"}` and `status`
//! frames are ignored; the heartbeat is the app-level `{"method":"ping"}`.

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use super::{clip, json_message, read_json, Direction, Endpoint, Incoming, StreamProtocol, Ticks};
use crate::aggregator::pair::Pair;
use crate::config::schema::sources::SourceId;

const ENDPOINT: Endpoint = Endpoint::new(SourceId::Kraken, "wss://ws.kraken.com/v2");
const CHANNEL: &str = "ticker";

pub struct Kraken;

/// An asset as WS v2 names it: `XBT` → `BTC`, `XDG` → `DOGE`, upper case.
fn v2_asset(code: &str) -> String {
    let up = code.to_ascii_uppercase();
    match up.as_str() {
        "XBT" => "BTC".to_owned(),
        "XDG" => "DOGE".to_owned(),
        _ => up,
    }
}

/// A `BASE/QUOTE` symbol in v2 names (`XBT/USD` → `BTC/USD`).
fn v2_symbol(symbol: &str) -> String {
    match symbol.split_once('/') {
        Some((b, q)) => format!("{}/{}", v2_asset(b), v2_asset(q)),
        None => symbol.to_ascii_uppercase(),
    }
}

#[derive(Deserialize)]
struct Frame {
    channel: Option<String>,
    data: Option<Vec<Tick>>,
    method: Option<String>,
    success: Option<bool>,
    error: Option<String>,
    symbol: Option<String>,
    result: Option<AckResult>,
}

#[derive(Deserialize)]
struct AckResult {
    symbol: Option<String>,
}

#[derive(Deserialize)]
struct Tick {
    symbol: Option<String>,
    last: Option<Box<RawValue>>,
}

fn request(method: &str, topics: &[String], request_id: u64) -> Message {
    json_message(&json!({
        "method": method,
        "params": {"channel": CHANNEL, "symbol": topics, "event_trigger": "trades"},
        "req_id": request_id,
    }))
}

/// What one frame means.
fn read(frame: Frame) -> Incoming {
    if let Some(method) = frame.method.as_deref() {
        if frame.success != Some(false) {
            return Incoming::Ignore; // acks, pong
        }
        let error = frame.error.unwrap_or_default();
        let reason = clip(&format!("{method} failed: {error}"));
        let symbol = frame.symbol.or(frame.result.and_then(|r| r.symbol));
        return match (method, symbol) {
            _ if error.to_ascii_lowercase().contains("already subscribed") => Incoming::Ignore,
            ("subscribe", Some(symbol)) => Incoming::Rejected {
                topic: v2_symbol(&symbol),
                reason,
            },
            _ => Incoming::Error(reason),
        };
    }
    if frame.channel.as_deref() != Some(CHANNEL) {
        return Incoming::Ignore; // heartbeat, status
    }
    let mut ticks = Ticks::default();
    for tick in frame.data.unwrap_or_default() {
        let Some(symbol) = tick.symbol else { continue };
        ticks.read(v2_symbol(&symbol), tick.last.as_deref(), "no price (last)");
    }
    ticks.incoming()
}

impl StreamProtocol for Kraken {
    fn endpoint(&self) -> &'static Endpoint {
        &ENDPOINT
    }

    fn topic(&self, pair: &Pair) -> String {
        format!("{}/{}", v2_asset(&pair.base), v2_asset(&pair.quote))
    }

    fn subscription(&self, to: Direction, topics: &[String], request_id: u64) -> Vec<Message> {
        vec![request(to.word(), topics, request_id)]
    }

    fn parse(&self, message: &Message) -> Incoming {
        read_json(message, read)
    }

    fn heartbeat(&self) -> Option<Message> {
        Some(json_message(&json!({"method": "ping"})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::streams::{sent_text, updates_of};

    fn pair(s: &str) -> Pair {
        Pair::parse(s).expect("pair")
    }

    #[test]
    fn topics_use_v2_asset_names_both_ways() {
        assert_eq!(Kraken.topic(&pair("BTC/USD")), "BTC/USD");
        assert_eq!(Kraken.topic(&pair("XBT/USD")), "BTC/USD");
        assert_eq!(Kraken.topic(&pair("xbt/usd")), "BTC/USD");
        assert_eq!(Kraken.topic(&pair("ETH/XBT")), "ETH/BTC");
        assert_eq!(Kraken.topic(&pair("XDG/USD")), "DOGE/USD");
        assert_eq!(Kraken.topic(&pair("TON/USD")), "TON/USD");
        let u = updates_of(
            &Kraken,
            r#"{"channel":"ticker","type":"update","data":[{"symbol":"XBT/USD","last":67123.9}]}"#,
        );
        assert_eq!(u[0].0, "BTC/USD");
    }

    #[test]
    fn subscribe_unsubscribe_and_ping_messages() {
        let topics = ["BTC/USD".to_owned(), "ETH/USD".to_owned()];
        assert_eq!(
            sent_text(&Kraken.subscribe(&topics, 1)[0]),
            r#"{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD","ETH/USD"],"event_trigger":"trades"},"req_id":1}"#
        );
        assert_eq!(
            sent_text(&Kraken.unsubscribe(&topics[..1], 2)[0]),
            r#"{"method":"unsubscribe","params":{"channel":"ticker","symbol":["BTC/USD"],"event_trigger":"trades"},"req_id":2}"#
        );
        assert_eq!(
            Kraken.heartbeat(),
            Some(Message::text(r#"{"method":"ping"}"#))
        );
    }

    #[test]
    fn the_documented_tick_reads_numbers_from_their_text() {
        let u = updates_of(
            &Kraken,
            r#"{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":81205.0,"bid_qty":0.58905885,"ask":81205.1,"ask_qty":0.69697106,"last":81205.1,"volume":4696.17832496,"vwap":80044.4,"low":76949.6,"high":82288.1,"change":4166.6,"change_pct":5.41,"timestamp":"2026-09-04T00:21:20.217476Z"}]}"#,
        );
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].0, "BTC/USD");
        assert_eq!(u[0].1, "81205.1");
        // Digits f64 would lose stay.
        let u = updates_of(
            &Kraken,
            r#"{"channel":"ticker","type":"update","data":[{"symbol":"ETH/USD","last":2600.1234567890123456789}]}"#,
        );
        assert_eq!(u[0].1, "2600.1234567890123456789");
    }

    #[test]
    fn acks_rejections_heartbeats() {
        let ok = r#"{"method":"subscribe","result":{"channel":"ticker","event_trigger":"trades","snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#;
        assert_eq!(Kraken.parse(&Message::text(ok)), Incoming::Ignore);
        let status = r#"{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online","api_version":"v2","connection_id":1}]}"#;
        assert_eq!(Kraken.parse(&Message::text(status)), Incoming::Ignore);
        assert_eq!(
            Kraken.parse(&Message::text(r#"{"channel":"heartbeat"}"#)),
            Incoming::Ignore
        );
        let pong = r#"{"method":"pong","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#;
        assert_eq!(Kraken.parse(&Message::text(pong)), Incoming::Ignore);
        let refused = r#"{"error":"Currency pair not supported NOPE/USD","method":"subscribe","req_id":3,"success":false,"symbol":"NOPE/USD","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#;
        assert_eq!(
            Kraken.parse(&Message::text(refused)),
            Incoming::Rejected {
                topic: "NOPE/USD".into(),
                reason: "subscribe failed: Currency pair not supported NOPE/USD".into()
            }
        );
        let again = r#"{"error":"Already subscribed","method":"subscribe","req_id":4,"success":false,"symbol":"BTC/USD"}"#;
        assert_eq!(Kraken.parse(&Message::text(again)), Incoming::Ignore);
        let other = r#"{"error":"Subscription Not Found","method":"unsubscribe","req_id":5,"success":false,"symbol":"ETH/USD"}"#;
        assert!(matches!(
            Kraken.parse(&Message::text(other)),
            Incoming::Error(_)
        ));
        assert!(matches!(
            Kraken.parse(&Message::text("[1,2]")),
            Incoming::Error(_)
        ));
    }
}
