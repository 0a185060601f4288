//! Binance market streams. Default endpoint: Binance.US's raw endpoint
//! `wss://stream.binance.us:9443/ws` (the reference's; `stream.wsUrl` may name
//! `wss://stream.binance.com:9443/ws`, `wss://data-stream.binance.vision/ws` or a combined
//! `/stream` endpoint).
//!
//! Topic: `<symbol>@miniTicker`, the REST symbol (`BTCUSDT`) in lower case. Subscribe on the open
//! socket: `{"method":"SUBSCRIBE","params":["btcusdt@miniTicker"],"id":1}` → `{"result":null,"id":1}`
//! (`UNSUBSCRIBE` likewise). Updates: raw `{"e":"24hrMiniTicker","E":…,"s":"BTCUSDT","c":"67123.45",…}`
//! or combined `{"stream":"btcusdt@miniTicker","data":{…}}`; the price is `c`, a decimal string.
//! Errors: `{"error":{"code":2,"msg":"…"},"id":1}` or `{"code":2,"msg":"…","id":1}`; they concern
//! a whole request (Binance accepts unknown stream names silently), so they name no topic.
//! Heartbeat: the server pings every 20 s; the manager sends WebSocket pings.

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use super::{clip, json_message, read_json, Direction, Endpoint, Incoming, StreamProtocol};
use crate::aggregator::pair::Pair;
use crate::aggregator::price::Price;
use crate::aggregator::sources;
use crate::config::schema::sources::SourceId;

const ENDPOINT: Endpoint = Endpoint::new(SourceId::Binance, "wss://stream.binance.us:9443/ws");
const MINI_TICKER: &str = "@miniTicker";
const TICKER: &str = "@ticker";

pub struct Binance;

#[derive(Deserialize)]
struct Frame {
    /// Event type (`24hrMiniTicker`, `24hrTicker`).
    e: Option<String>,
    s: Option<String>,
    c: Option<Box<RawValue>>,
    /// Combined streams: the stream name and the event.
    stream: Option<String>,
    data: Option<Box<RawValue>>,
    code: Option<serde_json::Value>,
    msg: Option<String>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<serde_json::Value>,
    msg: Option<String>,
}

fn error_text(code: Option<&serde_json::Value>, msg: Option<&str>) -> String {
    let code = code.map(|c| c.to_string()).unwrap_or_default();
    clip(&format!("error {code}: {}", msg.unwrap_or("")))
}

fn price_of(topic: String, raw: Option<&RawValue>) -> Incoming {
    match raw.map(Price::from_json) {
        Some(Ok(price)) => Incoming::Updates(vec![(topic, price)]),
        Some(Err(e)) => Incoming::Error(format!("{topic}: {e}")),
        None => Incoming::Error(format!("{topic}: no price (c)")),
    }
}

/// The topic of a raw ticker event, by its type.
fn event_topic(frame: &Frame) -> Option<String> {
    let suffix = match frame.e.as_deref()? {
        "24hrMiniTicker" => MINI_TICKER,
        "24hrTicker" => TICKER,
        _ => return None,
    };
    Some(format!(
        "{}{suffix}",
        frame.s.as_deref()?.to_ascii_lowercase()
    ))
}

/// What one frame means.
fn read(frame: Frame) -> Incoming {
    if let (Some(stream), Some(data)) = (&frame.stream, &frame.data) {
        return match serde_json::from_str::<Frame>(data.get()) {
            Ok(inner) => price_of(stream.clone(), inner.c.as_deref()),
            Err(_) => Incoming::Error(format!("unreadable event on {}", clip(stream))),
        };
    }
    if let Some(topic) = event_topic(&frame) {
        return price_of(topic, frame.c.as_deref());
    }
    if let Some(e) = &frame.error {
        return Incoming::Error(error_text(e.code.as_ref(), e.msg.as_deref()));
    }
    if frame.code.is_some() || frame.msg.is_some() {
        return Incoming::Error(error_text(frame.code.as_ref(), frame.msg.as_deref()));
    }
    // `{"result":null,"id":1}` acknowledgements, `serverShutdown` notices, other events.
    Incoming::Ignore
}

impl StreamProtocol for Binance {
    fn endpoint(&self) -> &'static Endpoint {
        &ENDPOINT
    }

    fn topic(&self, pair: &Pair) -> String {
        let symbol = sources::binance::symbol(pair).to_ascii_lowercase();
        format!("{symbol}{MINI_TICKER}")
    }

    fn subscription(&self, to: Direction, topics: &[String], request_id: u64) -> Vec<Message> {
        let method = to.word().to_ascii_uppercase();
        vec![json_message(
            &json!({"method": method, "params": topics, "id": request_id}),
        )]
    }

    fn parse(&self, message: &Message) -> Incoming {
        read_json(message, read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::streams::{sent_text, updates_of};

    fn price(s: &str) -> Price {
        s.parse().expect("price")
    }

    #[test]
    fn topics_are_lower_case_mini_tickers() {
        let p = Pair::new("BTC", "USDT").expect("pair");
        assert_eq!(Binance.topic(&p), "btcusdt@miniTicker");
        let p = Pair::new("eth", "Btc").expect("pair");
        assert_eq!(Binance.topic(&p), "ethbtc@miniTicker");
    }

    #[test]
    fn subscribe_and_unsubscribe_messages_are_the_documented_ones() {
        let topics = ["btcusdt@miniTicker".to_owned()];
        let m = Binance.subscribe(&topics, 1);
        assert_eq!(m.len(), 1);
        assert_eq!(
            sent_text(&m[0]),
            r#"{"method":"SUBSCRIBE","params":["btcusdt@miniTicker"],"id":1}"#
        );
        let topics = [
            "btcusdt@miniTicker".to_owned(),
            "ethusdt@miniTicker".to_owned(),
        ];
        let m = Binance.unsubscribe(&topics, 7);
        assert_eq!(
            sent_text(&m[0]),
            r#"{"method":"UNSUBSCRIBE","params":["btcusdt@miniTicker","ethusdt@miniTicker"],"id":7}"#
        );
        assert_eq!(Binance.heartbeat(), None);
    }

    #[test]
    fn raw_mini_ticker_updates_keep_every_digit() {
        let m = Message::text(
            r#"{"e":"24hrMiniTicker","E":1729766400000,"s":"BTCUSDT","c":"67123.45","o":"66000.00","h":"67500.00","l":"65800.00","v":"1000","q":"67000000"}"#,
        );
        assert_eq!(
            Binance.parse(&m),
            Incoming::Updates(vec![("btcusdt@miniTicker".into(), price("67123.45"))])
        );
        let u = updates_of(
            &Binance,
            r#"{"e":"24hrMiniTicker","E":1672515782136,"s":"BNBBTC","c":"0.0025","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18"}"#,
        );
        assert_eq!(u[0].0, "bnbbtc@miniTicker");
        assert_eq!(u[0].1, "0.0025");
    }

    #[test]
    fn combined_stream_and_full_ticker_updates() {
        let u = updates_of(
            &Binance,
            r#"{"stream":"btcusdt@miniTicker","data":{"e":"24hrMiniTicker","E":1729766400000,"s":"BTCUSDT","c":"67123.45000000"}}"#,
        );
        assert_eq!(u[0].0, "btcusdt@miniTicker");
        assert_eq!(u[0].1, "67123.45000000");
        let m = Message::text(
            r#"{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","w":"0.0018","x":"0.0009","c":"0.0025","Q":"10","b":"0.0024","B":"10","a":"0.0026","A":"100","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}"#,
        );
        assert_eq!(
            Binance.parse(&m),
            Incoming::Updates(vec![("bnbbtc@ticker".into(), price("0.0025"))])
        );
    }

    #[test]
    fn acks_errors_and_garbage() {
        assert_eq!(
            Binance.parse(&Message::text(r#"{"result":null,"id":1}"#)),
            Incoming::Ignore
        );
        assert_eq!(
            Binance.parse(&Message::text(
                r#"{"error":{"code":2,"msg":"Invalid request: unknown variant `SUBSCRIBEX`"},"id":3}"#
            )),
            Incoming::Error("error 2: Invalid request: unknown variant `SUBSCRIBEX`".into())
        );
        assert_eq!(
            Binance.parse(&Message::text(
                r#"{"code":0,"msg":"Unknown property","id":4}"#
            )),
            Incoming::Error("error 0: Unknown property".into())
        );
        assert!(matches!(
            Binance.parse(&Message::text("not json")),
            Incoming::Error(_)
        ));
        assert!(matches!(
            Binance.parse(&Message::text(
                r#"{"e":"24hrMiniTicker","E":1,"s":"BTCUSDT","c":"0.00000000"}"#
            )),
            Incoming::Error(_)
        ));
        assert_eq!(
            Binance.parse(&Message::text(r#"{"e":"serverShutdown","E":1}"#)),
            Incoming::Ignore
        );
        assert_eq!(
            Binance.parse(&Message::Ping(vec![1].into())),
            Incoming::Ignore
        );
    }
}
