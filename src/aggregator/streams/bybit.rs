//! Bybit v5 public spot WebSocket, `wss://stream.bybit.com/v5/public/spot`, topic `tickers`.
//!
//! Topic: `tickers.<symbol>` with the REST adapter's symbol (`tickers.BTCUSDT`). Subscribe
//! `{"op":"subscribe","args":["tickers.BTCUSDT"]}` (spot takes at most 10 args per request) →
//! `{"success":true,"ret_msg":"subscribe","conn_id":"…","req_id":"","op":"subscribe"}`; a failure
//! `{"success":false,"ret_msg":"error:handler not found,topic:tickers.NOPEUSDT",…}` rejects the
//! topic it names ("already subscribed" is not a failure). Whether the other args of a failed
//! request were subscribed is not documented, so the manager subscribes them again.
//! Ticks (spot: snapshots every 100 ms):
//! `{"topic":"tickers.BTCUSDT","ts":…,"type":"snapshot","cs":…,"data":{"symbol":"BTCUSDT","lastPrice":"16363.78",…}}`.
//! Keep-alive: `{"op":"ping"}` about every 20 s (the cap of the heartbeat interval) →
//! `{"success":true,"ret_msg":"pong",…,"op":"ping"}`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use super::{clip, json_message, read_json, Direction, Endpoint, Incoming, StreamProtocol};
use crate::aggregator::pair::Pair;
use crate::aggregator::price::Price;
use crate::aggregator::sources;
use crate::config::schema::sources::SourceId;

const ENDPOINT: Endpoint = Endpoint::new(SourceId::Bybit, "wss://stream.bybit.com/v5/public/spot");
const PREFIX: &str = "tickers.";

pub struct Bybit;

#[derive(Deserialize)]
struct Frame {
    topic: Option<String>,
    data: Option<Data>,
    success: Option<bool>,
    ret_msg: Option<String>,
    op: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    symbol: Option<String>,
    #[serde(rename = "lastPrice")]
    last_price: Option<Box<RawValue>>,
}

/// The topic a failure names (`error:handler not found,topic:tickers.NOPEUSDT`).
fn named_topic(msg: &str) -> Option<String> {
    let rest = &msg[msg.find("topic:")? + "topic:".len()..];
    let topic: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    (!topic.is_empty()).then_some(topic)
}

/// What one frame means.
fn read(frame: Frame) -> Incoming {
    if frame.success == Some(false) {
        let msg = frame.ret_msg.unwrap_or_default();
        let op = frame.op.unwrap_or_default();
        let reason = clip(&format!("{op} failed: {msg}"));
        if msg.to_ascii_lowercase().contains("already subscribed") {
            return Incoming::Ignore;
        }
        return match named_topic(&msg) {
            Some(topic) if op == "subscribe" => Incoming::Rejected { topic, reason },
            _ => Incoming::Error(reason),
        };
    }
    let (Some(topic), Some(data)) = (frame.topic, frame.data) else {
        return Incoming::Ignore; // acks, pongs
    };
    if !topic.starts_with(PREFIX) {
        return Incoming::Ignore;
    }
    match data.last_price.as_deref().map(Price::from_json) {
        Some(Ok(price)) => Incoming::Updates(vec![(topic, price)]),
        Some(Err(e)) => Incoming::Error(format!("{topic}: {e}")),
        // A derivatives delta without a new last price.
        None if data.symbol.is_some() => Incoming::Ignore,
        None => Incoming::Error(format!("{topic}: no price (lastPrice)")),
    }
}

impl StreamProtocol for Bybit {
    fn endpoint(&self) -> &'static Endpoint {
        &ENDPOINT
    }

    fn topic(&self, pair: &Pair) -> String {
        format!("{PREFIX}{}", sources::bybit::symbol(pair))
    }

    fn subscription(&self, to: Direction, topics: &[String], _request_id: u64) -> Vec<Message> {
        vec![json_message(&json!({"op": to.word(), "args": topics}))]
    }

    fn parse(&self, message: &Message) -> Incoming {
        read_json(message, read)
    }

    fn heartbeat(&self) -> Option<Message> {
        Some(json_message(&json!({"op": "ping"})))
    }

    fn max_heartbeat_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(20))
    }

    fn max_topics_per_message(&self) -> Option<usize> {
        Some(10)
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
    fn topics_messages_and_limits() {
        assert_eq!(
            Bybit.topic(&Pair::new("btc", "usdt").expect("pair")),
            "tickers.BTCUSDT"
        );
        assert_eq!(
            sent_text(&Bybit.subscribe(&["tickers.BTCUSDT".to_owned()], 1)[0]),
            r#"{"op":"subscribe","args":["tickers.BTCUSDT"]}"#
        );
        assert_eq!(
            sent_text(&Bybit.unsubscribe(&["tickers.BTCUSDT".to_owned()], 2)[0]),
            r#"{"op":"unsubscribe","args":["tickers.BTCUSDT"]}"#
        );
        assert_eq!(Bybit.heartbeat(), Some(Message::text(r#"{"op":"ping"}"#)));
        assert_eq!(Bybit.max_topics_per_message(), Some(10));
        assert_eq!(
            Bybit.max_heartbeat_interval(),
            Some(Duration::from_secs(20))
        );
    }

    #[test]
    fn the_documented_spot_tick() {
        let u = updates_of(
            &Bybit,
            r#"{"topic":"tickers.BTCUSDT","ts":1672305380595,"type":"snapshot","cs":496622841,"data":{"symbol":"BTCUSDT","lastPrice":"16363.78","highPrice24h":"16566.64","lowPrice24h":"16009.19","prevPrice24h":"16443.66","volume24h":"5865.470182","turnover24h":"95949815.680875","price24hPcnt":"-0.0049"}}"#,
        );
        assert_eq!(u[0].0, "tickers.BTCUSDT");
        assert_eq!(u[0].1, "16363.78");
    }

    #[test]
    fn acks_pongs_and_failures() {
        let ack = r#"{"success":true,"ret_msg":"subscribe","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b","req_id":"","op":"subscribe"}"#;
        assert_eq!(Bybit.parse(&Message::text(ack)), Incoming::Ignore);
        let pong = r#"{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}"#;
        assert_eq!(Bybit.parse(&Message::text(pong)), Incoming::Ignore);
        let refused = r#"{"success":false,"ret_msg":"error:handler not found,topic:tickers.NOPEUSDT","conn_id":"c","op":"subscribe"}"#;
        assert_eq!(
            Bybit.parse(&Message::text(refused)),
            Incoming::Rejected {
                topic: "tickers.NOPEUSDT".into(),
                reason: "subscribe failed: error:handler not found,topic:tickers.NOPEUSDT".into()
            }
        );
        let again = r#"{"success":false,"ret_msg":"error:already subscribed,topic:tickers.BTCUSDT","conn_id":"c","op":"subscribe"}"#;
        assert_eq!(Bybit.parse(&Message::text(again)), Incoming::Ignore);
        let other = r#"{"success":false,"ret_msg":"Params Error","conn_id":"c","op":"subscribe"}"#;
        assert_eq!(
            Bybit.parse(&Message::text(other)),
            Incoming::Error("subscribe failed: Params Error".into())
        );
        assert!(matches!(
            Bybit.parse(&Message::text(
                r#"{"topic":"tickers.BTCUSDT","data":{"symbol":"BTCUSDT","lastPrice":"abc"}}"#
            )),
            Incoming::Error(_)
        ));
    }
}
