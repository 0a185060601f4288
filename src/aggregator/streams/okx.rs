//! OKX v5 public WebSocket, `wss://ws.okx.com:8443/ws/v5/public`, channel `tickers`.
//!
//! Topic: the instrument id, as the REST adapter's symbol (`BTC-USDT`). Subscribe
//! `{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}` → ack
//! `{"event":"subscribe","arg":{…},"connId":"…"}`; unsubscribe likewise with `"op":"unsubscribe"`.
//! Ticks: `{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":"30301.5",…}]}`.
//! Errors: `{"event":"error","code":"60018","msg":"Wrong URL or channel:tickers,instId:BTC-XYZ doesn't exist. …"}`
//! — when the message names an `instId` the topic is rejected, otherwise it is logged.
//! Keep-alive: OKX drops a connection silent for 30 s; the client sends the text `ping` and
//! the server answers `pong`, so the heartbeat interval is capped at 25 s.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use super::{
    clip, json_message, read_json, text_of, Direction, Endpoint, Incoming, StreamProtocol, Ticks,
};
use crate::aggregator::pair::Pair;
use crate::aggregator::sources;
use crate::config::schema::sources::SourceId;

const ENDPOINT: Endpoint = Endpoint::new(SourceId::Okx, "wss://ws.okx.com:8443/ws/v5/public");
const CHANNEL: &str = "tickers";

pub struct Okx;

#[derive(Deserialize)]
struct Frame {
    event: Option<String>,
    code: Option<String>,
    msg: Option<String>,
    arg: Option<Arg>,
    data: Option<Vec<Tick>>,
}

#[derive(Deserialize)]
struct Arg {
    channel: Option<String>,
    #[serde(rename = "instId")]
    inst_id: Option<String>,
}

#[derive(Deserialize)]
struct Tick {
    #[serde(rename = "instId")]
    inst_id: Option<String>,
    last: Option<Box<RawValue>>,
}

fn request(op: &str, topics: &[String]) -> Message {
    let args: Vec<_> = topics
        .iter()
        .map(|t| json!({"channel": CHANNEL, "instId": t}))
        .collect();
    json_message(&json!({"op": op, "args": args}))
}

/// The `instId` an error message names (`…channel:tickers,instId:BTC-XYZ doesn't exist…`).
fn named_instrument(msg: &str) -> Option<String> {
    let rest = &msg[msg.find("instId:")? + "instId:".len()..];
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// What one frame means.
fn read(frame: Frame) -> Incoming {
    match frame.event.as_deref() {
        Some("error") => {
            let msg = frame.msg.unwrap_or_default();
            let reason = clip(&format!(
                "error {}: {msg}",
                frame.code.as_deref().unwrap_or("")
            ));
            return match named_instrument(&msg) {
                Some(topic) => Incoming::Rejected { topic, reason },
                None => Incoming::Error(reason),
            };
        }
        Some("notice") => {
            return Incoming::Error(clip(&format!(
                "notice {}: {}",
                frame.code.as_deref().unwrap_or(""),
                frame.msg.as_deref().unwrap_or("")
            )))
        }
        // subscribe / unsubscribe acks, channel-conn-count, login…
        Some(_) => return Incoming::Ignore,
        None => {}
    }
    let (Some(arg), Some(data)) = (frame.arg, frame.data) else {
        return Incoming::Ignore;
    };
    if arg.channel.as_deref() != Some(CHANNEL) {
        return Incoming::Ignore;
    }
    let mut ticks = Ticks::default();
    for tick in data {
        let Some(topic) = tick.inst_id.or_else(|| arg.inst_id.clone()) else {
            continue;
        };
        ticks.read(topic, tick.last.as_deref(), "no price (last)");
    }
    ticks.incoming()
}

impl StreamProtocol for Okx {
    fn endpoint(&self) -> &'static Endpoint {
        &ENDPOINT
    }

    fn topic(&self, pair: &Pair) -> String {
        sources::okx::symbol(pair)
    }

    fn subscription(&self, to: Direction, topics: &[String], _request_id: u64) -> Vec<Message> {
        vec![request(to.word(), topics)]
    }

    fn parse(&self, message: &Message) -> Incoming {
        let Some(text) = text_of(message) else {
            return Incoming::Ignore;
        };
        if text.trim() == "pong" {
            return Incoming::Ignore;
        }
        read_json(message, read)
    }

    fn heartbeat(&self) -> Option<Message> {
        Some(Message::text("ping"))
    }

    fn max_heartbeat_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(25))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::streams::{sent_text, updates_of};

    #[test]
    fn topics_are_rest_inst_ids() {
        assert_eq!(
            Okx.topic(&Pair::new("btc", "usdt").expect("pair")),
            "BTC-USDT"
        );
    }

    #[test]
    fn subscribe_unsubscribe_and_ping_are_the_documented_ones() {
        let m = Okx.subscribe(&["BTC-USDT".to_owned()], 1);
        assert_eq!(
            sent_text(&m[0]),
            r#"{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}"#
        );
        let m = Okx.unsubscribe(&["BTC-USDT".to_owned(), "ETH-USDT".to_owned()], 2);
        assert_eq!(
            sent_text(&m[0]),
            r#"{"op":"unsubscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},{"channel":"tickers","instId":"ETH-USDT"}]}"#
        );
        assert_eq!(Okx.heartbeat(), Some(Message::text("ping")));
        assert_eq!(Okx.max_heartbeat_interval(), Some(Duration::from_secs(25)));
    }

    #[test]
    fn the_live_tick_parses_exactly() {
        let u = updates_of(
            &Okx,
            r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"30301.5","lastSz":"0.0013","askPx":"30300.3","askSz":"2.68385152","bidPx":"30300.2","bidSz":"0.67476737","open24h":"30827","high24h":"30886.6","low24h":"29962","sodUtc0":"30467.6","sodUtc8":"30588.2","volCcy24h":"226848774.714833958","vol24h":"7455.88473797","ts":"1687762124866"}]}"#,
        );
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].0, "BTC-USDT");
        assert_eq!(u[0].1, "30301.5");
    }

    #[test]
    fn acks_pongs_and_errors() {
        assert_eq!(Okx.parse(&Message::text("pong")), Incoming::Ignore);
        assert_eq!(
            Okx.parse(&Message::text(
                r#"{"event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#
            )),
            Incoming::Ignore
        );
        assert_eq!(
            Okx.parse(&Message::text(
                r#"{"event":"error","code":"60018","msg":"Wrong URL or channel:tickers,instId:NOPE-USDT doesn't exist. Please use the correct URL, channel and parameters referring to API document.","connId":"a4d3ae55"}"#
            )),
            Incoming::Rejected {
                topic: "NOPE-USDT".into(),
                reason: "error 60018: Wrong URL or channel:tickers,instId:NOPE-USDT doesn't exist. Please use the correct URL, channel and parameters referring to API document.".into()
            }
        );
        assert_eq!(
            Okx.parse(&Message::text(
                r#"{"event":"error","code":"60012","msg":"Invalid request: {\"op\": \"subscribe\"}","connId":"a4d3ae55"}"#
            )),
            Incoming::Error(r#"error 60012: Invalid request: {"op": "subscribe"}"#.into())
        );
        assert!(matches!(
            Okx.parse(&Message::text(r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":""}]}"#)),
            Incoming::Error(_)
        ));
        assert!(matches!(Okx.parse(&Message::text("{")), Incoming::Error(_)));
    }
}
