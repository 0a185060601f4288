//! CryptoCompare streamer v2, `wss://streamer.cryptocompare.com/v2?api_key=<key>&format=streamer`
//! (the key travels in the URL query, so the URL is never logged).
//!
//! Topic: the aggregate index `5~CCCAGG~BTC~USD` (upper case, as the REST adapter's symbols).
//! Subscribe `{"action":"SubAdd","subs":["5~CCCAGG~BTC~USD"]}`, unsubscribe `SubRemove`.
//!
//! Updates in the streamer format are `~`-separated: `TYPE~MARKET~FROMSYMBOL~TOSYMBOL~FLAGS`,
//! then only the fields present, then the field mask in hex as the last field. A field is
//! present when its bit is set in the mask, in bit order; PRICE is bit `0x1` (then BID `0x2`,
//! OFFER `0x4`, LASTUPDATE `0x8`, … in the v1 layout; LASTUPDATE `0x8`, MEDIAN `0x10`, … in v2).
//! Unchanged fields are left out, so the price is at index 5 **only when the mask has bit
//! 0x1**: `5~CCCAGG~BTC~USD~4~1517441113~…~Gemini~78fe8` carries no price, and index 5 there
//! is LASTUPDATE (the reference read it as the price). The number of fields must match the
//! mask, or the message is refused. The JSON format (`{"TYPE":"5",…,"PRICE":67123.45}`) is
//! read too. Type 2 (one exchange's current) has the same layout.
//!
//! Control messages: `{"TYPE":"500","MESSAGE":"INVALID_SUB"|"SUBSCRIPTION_UNRECOGNIZED","PARAMETER":"5~CCCAGG~NOPE~USD",…}`
//! rejects the subscription named; `SUBSCRIPTION_ALREADY_ACTIVE`, welcome (20), subscribe
//! complete (16, 17), load complete (3) and heartbeat (999) are ignored; 401/429 and other 500s
//! are logged. The heartbeat is WebSocket pings.

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::{
    clip, json_message, read_json_text, text_of, url_with_query, Direction, Endpoint, Incoming,
    StreamProtocol, Ticks,
};
use crate::aggregator::pair::Pair;
use crate::aggregator::price::{Price, PriceError};
use crate::config::schema::sources::SourceId;
use crate::config::secret::Secret;

const ENDPOINT: Endpoint = Endpoint::new(
    SourceId::CryptoCompare,
    "wss://streamer.cryptocompare.com/v2",
);
const AGGREGATE: &str = "5~CCCAGG~";
/// The PRICE bit of the field mask.
const PRICE_BIT: u64 = 0x1;
/// TYPE, MARKET, FROMSYMBOL, TOSYMBOL, FLAGS: always there.
const FIXED_FIELDS: usize = 5;

pub struct CryptoCompare {
    api_key: Secret<String>,
}

impl CryptoCompare {
    pub fn new(api_key: Secret<String>) -> Self {
        Self { api_key }
    }
}

/// What one streamer-format update says.
#[derive(Debug, PartialEq)]
enum Unpacked<'a> {
    /// The price, when the update carries one.
    Price {
        topic: String,
        price: Option<&'a str>,
    },
    /// Not a price update (another message type).
    Other,
}

/// Splits a streamer-format message by its field mask.
fn unpack(line: &str) -> Result<Unpacked<'_>, String> {
    let fields: Vec<&str> = line.split('~').collect();
    let kind = fields.first().copied().unwrap_or("");
    if kind != "5" && kind != "2" {
        return Ok(Unpacked::Other);
    }
    if fields.len() < FIXED_FIELDS + 1 {
        return Err(format!("too few fields: {}", clip(line)));
    }
    let topic = fields[..4].join("~");
    let mask_text = fields[fields.len() - 1];
    let mask = u64::from_str_radix(mask_text, 16)
        .map_err(|_| format!("{topic}: bad field mask {}", clip(mask_text)))?;
    let present = fields.len() - FIXED_FIELDS - 1;
    if mask.count_ones() as usize != present {
        return Err(format!(
            "{topic}: mask {mask_text} names {} fields, message has {present}",
            mask.count_ones()
        ));
    }
    // PRICE is the lowest bit, so when present it is the first field after FLAGS.
    let price = (mask & PRICE_BIT != 0).then(|| fields[FIXED_FIELDS]);
    Ok(Unpacked::Price { topic, price })
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct Json {
    #[serde(rename = "TYPE")]
    kind: Option<serde_json::Value>,
    message: Option<String>,
    parameter: Option<String>,
    info: Option<String>,
    market: Option<String>,
    fromsymbol: Option<String>,
    tosymbol: Option<String>,
    price: Option<Box<RawValue>>,
}

fn type_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn price_of(topic: &str, text: &str) -> Result<Price, String> {
    text.parse()
        .map_err(|e: PriceError| format!("{topic}: {e}"))
}

/// A control message: type, message, parameter (the subscription it concerns), info.
fn control(kind: &str, message: &str, parameter: Option<&str>, info: &str) -> Incoming {
    let reason = clip(&format!("{kind} {message}: {info}"));
    match (kind, message, parameter) {
        ("500", "INVALID_SUB" | "SUBSCRIPTION_UNRECOGNIZED", Some(p)) if p.contains('~') => {
            Incoming::Rejected {
                topic: p.to_owned(),
                reason,
            }
        }
        ("500", "SUBSCRIPTION_ALREADY_ACTIVE", _) => Incoming::Ignore,
        ("401" | "429" | "500" | "400", _, _) => Incoming::Error(reason),
        _ => Incoming::Ignore,
    }
}

impl CryptoCompare {
    fn parse_json(&self, text: &str) -> Incoming {
        read_json_text(text, |frame| Self::read_json(frame, text))
    }

    /// What one JSON message means; `text` is the message as received, quoted by errors.
    fn read_json(frame: Json, text: &str) -> Incoming {
        let kind = frame.kind.as_ref().map(type_text).unwrap_or_default();
        if kind == "5" || kind == "2" {
            let (Some(market), Some(from), Some(to)) =
                (frame.market, frame.fromsymbol, frame.tosymbol)
            else {
                return Incoming::Error(format!("update without its symbols: {}", clip(text)));
            };
            let topic = format!("{kind}~{market}~{from}~{to}");
            return match frame.price.as_deref().map(Price::from_json) {
                Some(Ok(price)) => Incoming::Updates(vec![(topic, price)]),
                Some(Err(e)) => Incoming::Error(format!("{topic}: {e}")),
                None => Incoming::Ignore, // price unchanged
            };
        }
        control(
            &kind,
            frame.message.as_deref().unwrap_or(""),
            frame.parameter.as_deref(),
            frame.info.as_deref().unwrap_or(""),
        )
    }

    fn parse_streamer(&self, text: &str) -> Incoming {
        let mut ticks = Ticks::default();
        for line in text.split('|').map(str::trim).filter(|l| !l.is_empty()) {
            match unpack(line) {
                Ok(Unpacked::Price {
                    topic,
                    price: Some(p),
                }) => match price_of(&topic, p) {
                    Ok(price) => ticks.price(topic, price),
                    Err(e) => ticks.problem(e),
                },
                Ok(Unpacked::Price { price: None, .. }) => {}
                Ok(Unpacked::Other) => {
                    // `500~INVALID_SUB~5~CCCAGG~NOPE~USD` style control lines.
                    let mut parts = line.splitn(3, '~');
                    let kind = parts.next().unwrap_or("");
                    let message = parts.next().unwrap_or("");
                    let parameter = parts.next();
                    match control(kind, message, parameter, "") {
                        Incoming::Ignore => {}
                        other if ticks.is_empty() => return other,
                        Incoming::Error(e) => ticks.problem(e),
                        _ => {}
                    }
                }
                Err(e) => ticks.problem(e),
            }
        }
        ticks.incoming()
    }
}

impl StreamProtocol for CryptoCompare {
    fn endpoint(&self) -> &'static Endpoint {
        &ENDPOINT
    }

    /// The configured or default URL with `api_key=<key>` and `format=streamer` added (unless
    /// it already names them).
    fn url(&self, configured: Option<&Url>) -> Result<Url, url::ParseError> {
        url_with_query(
            configured,
            ENDPOINT.url,
            &[("api_key", self.api_key.expose()), ("format", "streamer")],
        )
    }

    fn topic(&self, pair: &Pair) -> String {
        let upper = pair.upper();
        format!("{AGGREGATE}{}~{}", upper.base, upper.quote)
    }

    fn subscription(&self, to: Direction, topics: &[String], _request_id: u64) -> Vec<Message> {
        // CryptoCompare's own words for the two.
        let action = match to {
            Direction::Subscribe => "SubAdd",
            Direction::Unsubscribe => "SubRemove",
        };
        vec![json_message(&json!({"action": action, "subs": topics}))]
    }

    fn parse(&self, message: &Message) -> Incoming {
        let Some(text) = text_of(message) else {
            return Incoming::Ignore;
        };
        let text = text.trim();
        if text.starts_with('{') {
            self.parse_json(text)
        } else {
            self.parse_streamer(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::streams::sent_text;

    fn cc() -> CryptoCompare {
        CryptoCompare::new(Secret::from("s3cr3t"))
    }

    fn updates(m: &str) -> Vec<(String, String)> {
        match cc().parse(&Message::text(m.to_owned())) {
            Incoming::Updates(u) => u
                .into_iter()
                .map(|(t, p)| (t, p.value().to_string()))
                .collect(),
            other => panic!("{m}: {other:?}"),
        }
    }

    #[test]
    fn the_key_and_format_go_into_the_query() {
        let u = cc().url(None).expect("url");
        assert_eq!(
            u.as_str(),
            "wss://streamer.cryptocompare.com/v2?api_key=s3cr3t&format=streamer"
        );
        let configured = Url::parse("ws://127.0.0.1:9/v2?format=json").expect("url");
        let u = cc().url(Some(&configured)).expect("url");
        assert_eq!(u.as_str(), "ws://127.0.0.1:9/v2?format=json&api_key=s3cr3t");
    }

    #[test]
    fn subscriptions() {
        let c = cc();
        assert_eq!(
            c.topic(&Pair::new("btc", "usd").expect("pair")),
            "5~CCCAGG~BTC~USD"
        );
        let topics = ["5~CCCAGG~BTC~USD".to_owned(), "5~CCCAGG~ETH~USD".to_owned()];
        assert_eq!(
            sent_text(&c.subscribe(&topics[..1], 1)[0]),
            r#"{"action":"SubAdd","subs":["5~CCCAGG~BTC~USD"]}"#
        );
        assert_eq!(
            sent_text(&c.unsubscribe(&topics, 2)[0]),
            r#"{"action":"SubRemove","subs":["5~CCCAGG~BTC~USD","5~CCCAGG~ETH~USD"]}"#
        );
        assert_eq!(c.heartbeat(), None);
    }

    #[test]
    fn full_updates_carry_the_price_at_its_mask_position() {
        for (frame, price) in [
            // v1 layout, mask 7ffe9: PRICE, LASTUPDATE, LASTVOLUME … LASTMARKET.
            (
                "5~CCCAGG~BTC~USD~4~10246.13~1517444413~0.003989~40.982986000000004~182622810~1783.8716471273767~18272035.341830652~111021.67711403422~1119500408.880073~10226.86~10277.1~10197.05~9827.28~10401.49~9684.96~Bitfinex~7ffe9",
                "10246.13",
            ),
            // Short updates (mask fe9) with the price rising, falling, unchanged-but-sent.
            (
                "5~CCCAGG~BTC~USD~1~7297.99~1517844556~1.59258343~11659.940324402~187372512~151340.61056165057~1185162567.5865831~232723.41565274488~1855970075.362615~fe9",
                "7297.99",
            ),
            (
                "5~CCCAGG~BTC~USD~2~7297.94~1517844557~0.02239538~163.963295594~187372553~151351.85894286056~1185243952.2064326~232734.66403395488~1856051459.9824646~fe9",
                "7297.94",
            ),
            // v2 layout, mask 3fffff9 (MEDIAN, day and hour fields…): PRICE still bit 0x1.
            (
                "5~CCCAGG~BTC~USD~1~67944.53~1636440228~67952~0.02816695~1914.297466053~233647972~10190.654423831502~691736789.0696819~33957.86728353999~2265900457.849409~67549.84~68514.26~67144.21~65958.46~68532.93~65199.24~Coinbase~817.8873594799912~55595083.72647147~68139.38~68206.26~67740.93~33957.78138253999~2265894822.9477787~3fffff9",
                "67944.53",
            ),
        ] {
            assert_eq!(
                updates(frame),
                [("5~CCCAGG~BTC~USD".to_owned(), price.to_owned())],
                "{frame}"
            );
        }
    }

    #[test]
    fn an_update_without_the_price_bit_has_no_price() {
        // Mask 78fe8 has no PRICE bit: index 5 is LASTUPDATE, not a price.
        let m = "5~CCCAGG~BTC~USD~4~1517441113~0.00088366~8.8585942974~2905510661~119684.06513938117~1204555739.1975193~118320.2693874718~1190868665.3976107~10112.27~10398.87~9683.61~Gemini~78fe8";
        assert_eq!(cc().parse(&Message::text(m)), Incoming::Ignore);
        // Only LASTUPDATE and volumes changed.
        let m = "5~CCCAGG~ETH~USD~4~1729766400~0.5~1300.1~68";
        assert_eq!(cc().parse(&Message::text(m)), Incoming::Ignore);
        // PRICE with LASTUPDATE only.
        assert_eq!(
            updates("5~CCCAGG~BTC~USD~1~67123.45~1729766400~9"),
            [("5~CCCAGG~BTC~USD".to_owned(), "67123.45".to_owned())]
        );
    }

    #[test]
    fn masks_that_do_not_match_the_fields_are_refused() {
        for bad in [
            "5~CCCAGG~BTC~USD~1~67123.45~1729766400~...",
            "5~CCCAGG~BTC~USD~1~67123.45~f",
            "5~CCCAGG~BTC~USD~1~67123.45~zz",
            "5~CCCAGG~BTC",
            "5~CCCAGG~BTC~USD~1~abc~1",
            "5~CCCAGG~BTC~USD~1~0~1",
        ] {
            assert!(
                matches!(cc().parse(&Message::text(bad)), Incoming::Error(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_updates_and_control_messages() {
        assert_eq!(
            updates(
                r#"{"TYPE":"5","MARKET":"CCCAGG","FROMSYMBOL":"BTC","TOSYMBOL":"USD","FLAGS":2,"PRICE":26014.13,"LASTUPDATE":1693530679,"MEDIAN":26013.9}"#
            ),
            [("5~CCCAGG~BTC~USD".to_owned(), "26014.13".to_owned())]
        );
        let unchanged = r#"{"TYPE":"5","MARKET":"CCCAGG","FROMSYMBOL":"BTC","TOSYMBOL":"USD","FLAGS":4,"LASTUPDATE":1693530679}"#;
        assert_eq!(cc().parse(&Message::text(unchanged)), Incoming::Ignore);
        let unknown = r#"{"TYPE":"500","MESSAGE":"SUBSCRIPTION_UNRECOGNIZED","PARAMETER":"5~CCCAGG~NOPE~USD","INFO":"You are not receiving updates on this subscription."}"#;
        assert_eq!(
            cc().parse(&Message::text(unknown)),
            Incoming::Rejected {
                topic: "5~CCCAGG~NOPE~USD".into(),
                reason: "500 SUBSCRIPTION_UNRECOGNIZED: You are not receiving updates on this subscription.".into()
            }
        );
        let invalid = r#"{"TYPE":"500","MESSAGE":"INVALID_SUB","PARAMETER":"5~CCCAGG~N0PE~USD","INFO":"Subscription is invalid"}"#;
        assert!(matches!(
            cc().parse(&Message::text(invalid)),
            Incoming::Rejected { topic, .. } if topic == "5~CCCAGG~N0PE~USD"
        ));
        let tilde = "500~INVALID_SUB~5~CCCAGG~N0PE~USD";
        assert!(matches!(
            cc().parse(&Message::text(tilde)),
            Incoming::Rejected { topic, .. } if topic == "5~CCCAGG~N0PE~USD"
        ));
        for ignored in [
            r#"{"TYPE":"20","MESSAGE":"STREAMERWELCOME","SERVER_UPTIME_SECONDS":1262462,"SERVER_NAME":"08","SERVER_TIME_MS":1753184197855,"CLIENT_ID":2561280,"DATA_FORMAT":"JSON","SOCKET_ID":"7zUlXfWU+zH7uX3ViPAr","SOCKETS_ACTIVE":1,"SOCKETS_REMAINING":0,"RATELIMIT_MAX_SECOND":30,"RATELIMIT_MAX_MINUTE":60,"RATELIMIT_MAX_HOUR":1200,"RATELIMIT_MAX_DAY":10000,"RATELIMIT_MAX_MONTH":20000,"RATELIMIT_REMAINING_SECOND":29,"RATELIMIT_REMAINING_MINUTE":59,"RATELIMIT_REMAINING_HOUR":1199,"RATELIMIT_REMAINING_DAY":9999,"RATELIMIT_REMAINING_MONTH":19984}"#,
            r#"{"TYPE":"16","MESSAGE":"SUBSCRIBECOMPLETE","SUB":"5~CCCAGG~BTC~USD"}"#,
            r#"{"TYPE":"3","MESSAGE":"LOADCOMPLETE","INFO":"All your valid subs have been loaded."}"#,
            r#"{"TYPE":"999","MESSAGE":"HEARTBEAT","TIMEMS":1582813213372}"#,
            r#"{"TYPE":"500","MESSAGE":"SUBSCRIPTION_ALREADY_ACTIVE","PARAMETER":"5~CCCAGG~BTC~USD","INFO":"You are already subscribed to this."}"#,
            "999~HEARTBEAT~1582813213372",
        ] {
            assert_eq!(
                cc().parse(&Message::text(ignored)),
                Incoming::Ignore,
                "{ignored}"
            );
        }
        let unauthorized = r#"{"TYPE":"401","MESSAGE":"UNAUTHORIZED","PARAMETER":"format","INFO":"We only support JSON format with a valid api_key."}"#;
        assert!(matches!(
            cc().parse(&Message::text(unauthorized)),
            Incoming::Error(_)
        ));
        let too_many = r#"{"TYPE":"429","MESSAGE":"TOO_MANY_SOCKETS_MAX_1_PER_CLIENT","INFO":"You have reached the maximum number of open sockets"}"#;
        assert!(matches!(
            cc().parse(&Message::text(too_many)),
            Incoming::Error(_)
        ));
    }
}
