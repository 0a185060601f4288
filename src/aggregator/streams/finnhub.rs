//! Finnhub trades, `wss://ws.finnhub.io?token=<key>` (the key travels in the URL query, so the
//! URL is never logged; the manager logs only scheme, host and path).
//!
//! Topic: the REST adapter's symbol, `BINANCE:BTCUSDT`. One symbol per message:
//! `{"type":"subscribe","symbol":"BINANCE:BTCUSDT"}` / `{"type":"unsubscribe",…}`. Trades:
//! `{"type":"trade","data":[{"s":"BINANCE:BTCUSDT","p":67123.4,"t":1729766400123,"v":0.01}]}` —
//! `p` is a JSON number, read from its text; of several trades of one symbol in a message the
//! latest (`t`) wins. The server's `{"type":"ping"}` is answered with `{"type":"pong"}`, and the
//! client sends `{"type":"ping"}` every heartbeat. Errors `{"type":"error","msg":"…"}` are logged.

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::{
    clip, json_message, read_json, url_with_query, Direction, Endpoint, Incoming, StreamProtocol,
    Ticks,
};
use crate::aggregator::pair::Pair;
use crate::aggregator::sources::finnhub::EXCHANGE;
use crate::config::schema::sources::SourceId;
use crate::config::secret::Secret;

const ENDPOINT: Endpoint = Endpoint::new(SourceId::Finnhub, "wss://ws.finnhub.io");

pub struct Finnhub {
    token: Secret<String>,
}

impl Finnhub {
    pub fn new(token: Secret<String>) -> Self {
        Self { token }
    }
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<Vec<Trade>>,
    msg: Option<String>,
}

#[derive(Deserialize)]
struct Trade {
    s: Option<String>,
    p: Option<Box<RawValue>>,
    t: Option<serde_json::Value>,
}

/// What one frame means.
fn read(frame: Frame) -> Incoming {
    match frame.kind.as_deref() {
        Some("ping") => return Incoming::Reply(json_message(&json!({"type": "pong"}))),
        Some("error") => {
            return Incoming::Error(clip(&format!(
                "error: {}",
                frame.msg.as_deref().unwrap_or("")
            )))
        }
        Some("trade") => {}
        _ => return Incoming::Ignore,
    }
    // The latest trade per symbol, in the order the symbols first appear.
    let mut latest: Vec<(String, Option<u64>, Box<RawValue>)> = Vec::new();
    for trade in frame.data.unwrap_or_default() {
        let (Some(symbol), Some(p)) = (trade.s, trade.p) else {
            continue;
        };
        let t = trade.t.as_ref().and_then(serde_json::Value::as_u64);
        match latest.iter_mut().find(|(s, _, _)| *s == symbol) {
            Some(entry) if t >= entry.1 => *entry = (symbol, t, p),
            Some(_) => {}
            None => latest.push((symbol, t, p)),
        }
    }
    let mut ticks = Ticks::default();
    for (symbol, _, p) in latest {
        // Every kept trade has its price field (`p`).
        ticks.read(symbol, Some(&p), "no price (p)");
    }
    ticks.incoming()
}

impl StreamProtocol for Finnhub {
    fn endpoint(&self) -> &'static Endpoint {
        &ENDPOINT
    }

    /// The configured or default URL with `token=<key>` added (unless it already has one).
    fn url(&self, configured: Option<&Url>) -> Result<Url, url::ParseError> {
        url_with_query(configured, ENDPOINT.url, &[("token", self.token.expose())])
    }

    fn topic(&self, pair: &Pair) -> String {
        let upper = pair.upper();
        format!("{EXCHANGE}:{}{}", upper.base, upper.quote)
    }

    fn subscription(&self, to: Direction, topics: &[String], _request_id: u64) -> Vec<Message> {
        topics
            .iter()
            .map(|t| json_message(&json!({"type": to.word(), "symbol": t})))
            .collect()
    }

    fn parse(&self, message: &Message) -> Incoming {
        read_json(message, read)
    }

    fn heartbeat(&self) -> Option<Message> {
        Some(json_message(&json!({"type": "ping"})))
    }

    fn max_topics_per_message(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::streams::{sent_text, updates_of};

    fn finnhub() -> Finnhub {
        Finnhub::new(Secret::from("s3cr3t"))
    }

    #[test]
    fn the_token_goes_into_the_query() {
        let u = finnhub().url(None).expect("url");
        assert_eq!(u.as_str(), "wss://ws.finnhub.io/?token=s3cr3t");
        let configured = Url::parse("ws://127.0.0.1:9/x").expect("url");
        let u = finnhub().url(Some(&configured)).expect("url");
        assert_eq!(u.as_str(), "ws://127.0.0.1:9/x?token=s3cr3t");
        let configured = Url::parse("ws://127.0.0.1:9/x?token=other").expect("url");
        let u = finnhub().url(Some(&configured)).expect("url");
        assert_eq!(u.as_str(), "ws://127.0.0.1:9/x?token=other");
    }

    #[test]
    fn one_symbol_per_message() {
        let f = finnhub();
        assert_eq!(
            f.topic(&Pair::new("btc", "usdt").expect("pair")),
            "BINANCE:BTCUSDT"
        );
        let m = f.subscribe(
            &["BINANCE:BTCUSDT".to_owned(), "BINANCE:ETHUSDT".to_owned()],
            1,
        );
        let texts: Vec<_> = m.iter().map(sent_text).collect();
        assert_eq!(
            texts,
            [
                r#"{"type":"subscribe","symbol":"BINANCE:BTCUSDT"}"#,
                r#"{"type":"subscribe","symbol":"BINANCE:ETHUSDT"}"#
            ]
        );
        assert_eq!(
            sent_text(&f.unsubscribe(&["BINANCE:BTCUSDT".to_owned()], 2)[0]),
            r#"{"type":"unsubscribe","symbol":"BINANCE:BTCUSDT"}"#
        );
        assert_eq!(f.max_topics_per_message(), Some(1));
    }

    #[test]
    fn trades_pings_and_errors() {
        let f = finnhub();
        let u = updates_of(
            &f,
            r#"{"type":"trade","data":[{"s":"BINANCE:BTCUSDT","p":67123.4,"t":1729766400123,"v":0.01}]}"#,
        );
        assert_eq!(u[0].0, "BINANCE:BTCUSDT");
        assert_eq!(u[0].1, "67123.4");
        // Several trades: the latest per symbol.
        let m = Message::text(
            r#"{"type":"trade","data":[{"s":"BINANCE:BTCUSDT","p":1.5,"t":3,"v":1},{"s":"BINANCE:ETHUSDT","p":2.5,"t":1,"v":1},{"s":"BINANCE:BTCUSDT","p":1.25,"t":2,"v":1},{"s":"BINANCE:BTCUSDT","p":1.75,"t":3,"v":1}]}"#,
        );
        let Incoming::Updates(u) = f.parse(&m) else {
            panic!("no update")
        };
        let got: Vec<_> = u.iter().map(|(s, p)| (s.as_str(), p.to_string())).collect();
        assert_eq!(
            got,
            [
                ("BINANCE:BTCUSDT", "1.75".to_owned()),
                ("BINANCE:ETHUSDT", "2.5".to_owned())
            ]
        );
        assert_eq!(
            f.parse(&Message::text(r#"{"type":"ping"}"#)),
            Incoming::Reply(Message::text(r#"{"type":"pong"}"#))
        );
        assert_eq!(f.heartbeat(), Some(Message::text(r#"{"type":"ping"}"#)));
        assert_eq!(
            f.parse(&Message::text(
                r#"{"type":"error","msg":"Subscribing to too many symbols"}"#
            )),
            Incoming::Error("error: Subscribing to too many symbols".into())
        );
        assert_eq!(
            f.parse(&Message::text(r#"{"type":"trade","data":[]}"#)),
            Incoming::Ignore
        );
    }
}
