//! The manager against real local WebSocket servers (tokio-tungstenite on 127.0.0.1:0) that
//! speak one source's protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_tungstenite::accept_async;

use super::*;
use crate::aggregator::streams::{
    binance::Binance, coinbase::Coinbase, finnhub::Finnhub, okx::Okx,
};
use crate::config::secret::Secret;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Event {
    Connected(usize),
    Received(usize, Message, Instant),
    Ended(usize),
}

enum Ctl {
    Send(Message),
    Drop,
}

/// A WebSocket server that reports what it receives and sends or drops on demand.
struct Server {
    addr: SocketAddr,
    events: mpsc::UnboundedReceiver<Event>,
    conns: Arc<Mutex<HashMap<usize, mpsc::UnboundedSender<Ctl>>>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, events) = mpsc::unbounded_channel();
        let conns: Arc<Mutex<HashMap<usize, mpsc::UnboundedSender<Ctl>>>> = Arc::default();
        let registry = conns.clone();
        tokio::spawn(async move {
            let mut next = 0;
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut ws) = accept_async(tcp).await else {
                    continue;
                };
                let index = next;
                next += 1;
                let (ctl_tx, mut ctl) = mpsc::unbounded_channel();
                registry.lock().expect("lock").insert(index, ctl_tx);
                let events = tx.clone();
                let _ = events.send(Event::Connected(index));
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            m = ws.next() => match m {
                                Some(Ok(m)) => {
                                    let _ = events.send(Event::Received(index, m, Instant::now()));
                                }
                                _ => break,
                            },
                            c = ctl.recv() => match c {
                                Some(Ctl::Send(m)) => {
                                    if ws.send(m).await.is_err() {
                                        break;
                                    }
                                }
                                // Drop the TCP connection without a closing handshake.
                                Some(Ctl::Drop) | None => break,
                            },
                        }
                    }
                    let _ = events.send(Event::Ended(index));
                });
            }
        });
        Server {
            addr,
            events,
            conns,
        }
    }

    fn url(&self) -> Url {
        Url::parse(&format!("ws://{}/ws?api_key=s3cr3t", self.addr)).expect("url")
    }

    async fn next_event(&mut self) -> Event {
        timeout(WAIT, self.events.recv())
            .await
            .expect("no server event in time")
            .expect("server stopped")
    }

    async fn connected(&mut self) -> usize {
        loop {
            if let Event::Connected(i) = self.next_event().await {
                return i;
            }
        }
    }

    /// The next text message (skipping pings, pongs and other events).
    async fn text(&mut self) -> (usize, String, Instant) {
        loop {
            if let Event::Received(i, Message::Text(t), at) = self.next_event().await {
                return (i, t.as_str().to_owned(), at);
            }
        }
    }

    async fn json(&mut self) -> (usize, Value, Instant) {
        let (i, t, at) = self.text().await;
        (i, serde_json::from_str(&t).expect("json"), at)
    }

    async fn ended(&mut self, conn: usize) {
        loop {
            if let Event::Ended(i) = self.next_event().await {
                if i == conn {
                    return;
                }
            }
        }
    }

    fn ctl(&self, conn: usize, c: Ctl) {
        let conns = self.conns.lock().expect("lock");
        let _ = conns.get(&conn).expect("connection").send(c);
    }

    fn send(&self, conn: usize, text: &str) {
        self.ctl(conn, Ctl::Send(Message::text(text.to_owned())));
    }

    fn drop_conn(&self, conn: usize) {
        self.ctl(conn, Ctl::Drop);
    }
}

type Seen = Arc<Mutex<Vec<(Pair, Price)>>>;

fn collector() -> (Seen, OnUpdate) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let on_update: OnUpdate = Arc::new(move |pair, price| {
        sink.lock().expect("lock").push((pair, price));
    });
    (seen, on_update)
}

fn config() -> StreamConfig {
    StreamConfig {
        auto_reconnect: true,
        reconnect_interval: Duration::from_millis(100),
        max_reconnect_attempts: 5,
        heartbeat_interval: Duration::from_secs(5),
        ws_url: None,
        batch_size: None,
        rate_limit: None,
    }
}

fn pair(s: &str) -> Pair {
    Pair::parse(s).expect("pair")
}

/// Waits until `f` holds, failing after [`WAIT`].
async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

fn okx_topics(v: &Value) -> Vec<String> {
    v["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a["instId"].as_str().expect("instId").to_owned())
        .collect()
}

#[tokio::test]
async fn updates_reach_on_update_with_the_pair_and_the_exact_price() {
    let mut server = Server::start().await;
    let (seen, on_update) = collector();
    let h = spawn(Arc::new(Binance), config(), server.url(), on_update);
    for p in ["BTC/USDT", "btc/usdt", "ETH/USDT"] {
        h.subscribe(pair(p));
    }
    let (conn, sub, _) = server.json().await;
    assert_eq!(sub["method"], "SUBSCRIBE");
    assert_eq!(
        strings(&sub["params"]),
        ["btcusdt@miniTicker", "ethusdt@miniTicker"]
    );
    assert!(sub["id"].is_u64());
    server.send(conn, r#"{"result":null,"id":1}"#);
    server.send(
        conn,
        r#"{"e":"24hrMiniTicker","E":1729766400000,"s":"XRPUSDT","c":"0.5","o":"1","h":"1","l":"1","v":"1","q":"1"}"#,
    );
    server.send(
        conn,
        r#"{"e":"24hrMiniTicker","E":1729766400000,"s":"BTCUSDT","c":"67123.45000000","o":"66000.00","h":"67500.00","l":"65800.00","v":"1000","q":"67000000"}"#,
    );
    wait_until("both pairs of the topic updated", || {
        seen.lock().expect("lock").len() >= 2
    })
    .await;
    wait_until("messages counted", || h.status().messages >= 3).await;
    let got = seen.lock().expect("lock").clone();
    let pairs: BTreeSet<_> = got.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(
        pairs,
        BTreeSet::from(["BTC/USDT".into(), "btc/usdt".into()])
    );
    for (_, price) in &got {
        assert_eq!(price.value().to_string(), "67123.45000000");
    }
    let status = h.status();
    assert!(status.connected);
    assert_eq!(status.subscribed, 2);
    assert_eq!(status.reconnects, 0);
    h.shutdown().await;
    server.ended(conn).await;
    assert!(!h.status().connected);
}

#[tokio::test]
async fn subscriptions_are_debounced_batched_and_rate_limited() {
    let mut server = Server::start().await;
    let (_, on_update) = collector();
    let rate = Duration::from_millis(150);
    let cfg = StreamConfig {
        batch_size: Some(2),
        rate_limit: Some(rate),
        ..config()
    };
    let h = spawn(Arc::new(Binance), cfg, server.url(), on_update);
    h.subscribe(pair("BTC/USDT"));
    let (_, first, first_at) = server.json().await;
    assert_eq!(strings(&first["params"]), ["btcusdt@miniTicker"]);
    // A burst while connected: one debounce window, batches of 2, spaced by the rate limit.
    for p in ["A1/USDT", "A2/USDT", "A3/USDT", "A4/USDT", "A5/USDT"] {
        h.subscribe(pair(p));
    }
    let mut batches = Vec::new();
    let mut times = vec![first_at];
    let mut topics = 0;
    while topics < 5 {
        let (_, m, at) = server.json().await;
        assert_eq!(m["method"], "SUBSCRIBE");
        let params = strings(&m["params"]);
        topics += params.len();
        batches.push(params);
        times.push(at);
    }
    assert_eq!(
        batches,
        [
            vec!["a1usdt@miniTicker", "a2usdt@miniTicker"],
            vec!["a3usdt@miniTicker", "a4usdt@miniTicker"],
            vec!["a5usdt@miniTicker"],
        ]
    );
    // Receive times on loopback: allow a few ms of scheduling noise below the send spacing.
    let tolerance = Duration::from_millis(15);
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap + tolerance >= rate, "messages {gap:?} apart");
    }
    assert!(
        times[1] - times[0] + tolerance >= DEBOUNCE,
        "burst not debounced"
    );
    assert_eq!(h.status().subscribed, 6);
    h.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_is_reconnected_and_everything_resubscribed() {
    let mut server = Server::start().await;
    let (seen, on_update) = collector();
    let cfg = config();
    let h = spawn(Arc::new(Okx), cfg.clone(), server.url(), on_update);
    for p in ["BTC-USDT", "ETH-USDT", "SOL-USDT"] {
        h.subscribe(pair(p));
    }
    let (c0, sub, _) = server.json().await;
    assert_eq!(
        sub.to_string(),
        r#"{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},{"channel":"tickers","instId":"ETH-USDT"},{"channel":"tickers","instId":"SOL-USDT"}]}"#
    );
    wait_until("connected", || h.status().connected).await;
    let dropped_at = Instant::now();
    server.drop_conn(c0);
    let c1 = server.connected().await;
    let reconnected_at = Instant::now();
    assert_eq!(c1, 1);
    assert!(
        reconnected_at - dropped_at >= cfg.reconnect_interval,
        "reconnected after {:?}",
        reconnected_at - dropped_at
    );
    let (conn, sub, _) = server.json().await;
    assert_eq!(conn, c1);
    assert_eq!(sub["op"], "subscribe");
    assert_eq!(okx_topics(&sub), ["BTC-USDT", "ETH-USDT", "SOL-USDT"]);
    server.send(
        c1,
        r#"{"arg":{"channel":"tickers","instId":"ETH-USDT"},"data":[{"instType":"SPOT","instId":"ETH-USDT","last":"2600.2","ts":"1729766400000"}]}"#,
    );
    wait_until("update after the reconnection", || {
        !seen.lock().expect("lock").is_empty()
    })
    .await;
    assert_eq!(
        seen.lock().expect("lock")[0],
        (pair("ETH-USDT"), "2600.2".parse().expect("price"))
    );
    let status = h.status();
    assert!(status.connected);
    assert_eq!(status.reconnects, 1);
    assert!(!status.gave_up);
    h.shutdown().await;
}

#[tokio::test]
async fn the_app_heartbeat_is_sent_and_a_silent_connection_is_dropped() {
    let mut server = Server::start().await;
    let (_, on_update) = collector();
    let cfg = StreamConfig {
        heartbeat_interval: Duration::from_millis(150),
        ..config()
    };
    let h = spawn(Arc::new(Okx), cfg, server.url(), on_update);
    h.subscribe(pair("BTC-USDT"));
    let (c0, _, _) = server.json().await;
    // OKX's text ping; the server does not answer and sends nothing.
    let (conn, ping, _) = server.text().await;
    assert_eq!((conn, ping.as_str()), (c0, "ping"));
    // Silent for 2 × 150 ms: the manager gives the connection up and dials again.
    server.ended(c0).await;
    let c1 = server.connected().await;
    let (conn, sub, _) = server.json().await;
    assert_eq!(conn, c1);
    assert_eq!(okx_topics(&sub), ["BTC-USDT"]);
    // Answered pings keep the connection: several heartbeats pass on the same connection.
    for _ in 0..4 {
        let (conn, ping, _) = server.text().await;
        assert_eq!((conn, ping.as_str()), (c1, "ping"));
        server.send(c1, "pong");
    }
    assert!(h.status().connected);
    h.shutdown().await;
}

#[tokio::test]
async fn websocket_pings_are_the_heartbeat_without_an_app_level_one() {
    let mut server = Server::start().await;
    let (_, on_update) = collector();
    let cfg = StreamConfig {
        heartbeat_interval: Duration::from_millis(100),
        ..config()
    };
    let h = spawn(Arc::new(Binance), cfg, server.url(), on_update);
    h.subscribe(pair("BTC/USDT"));
    let mut pings = 0;
    while pings < 3 {
        match server.next_event().await {
            Event::Received(0, Message::Ping(_), _) => pings += 1,
            Event::Connected(i) if i > 0 => panic!("reconnected: pongs must keep the connection"),
            Event::Ended(_) => panic!("connection lost: pongs must keep it"),
            _ => {}
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn server_pings_are_answered() {
    let mut server = Server::start().await;
    let (_, on_update) = collector();
    let finnhub = Finnhub::new(Secret::from("s3cr3t"));
    let h = spawn(Arc::new(finnhub), config(), server.url(), on_update);
    h.subscribe(pair("BTC/USDT"));
    let (c0, sub, _) = server.text().await;
    assert_eq!(sub, r#"{"type":"subscribe","symbol":"BINANCE:BTCUSDT"}"#);
    server.send(c0, r#"{"type":"ping"}"#);
    let (_, pong, _) = server.text().await;
    assert_eq!(pong, r#"{"type":"pong"}"#);
    h.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_is_sent_and_the_last_one_closes_the_connection() {
    let mut server = Server::start().await;
    let (_, on_update) = collector();
    let h = spawn(Arc::new(Binance), config(), server.url(), on_update);
    for p in ["BTC/USDT", "btc/usdt", "ETH/USDT"] {
        h.subscribe(pair(p));
    }
    let (c0, sub, _) = server.json().await;
    assert_eq!(sub["method"], "SUBSCRIBE");
    // btc/usdt shares its topic with BTC/USDT: nothing to send for it.
    h.unsubscribe(pair("btc/usdt"));
    h.unsubscribe(pair("ETH/USDT"));
    let (conn, unsub, _) = server.json().await;
    assert_eq!(conn, c0);
    assert_eq!(unsub["method"], "UNSUBSCRIBE");
    assert_eq!(strings(&unsub["params"]), ["ethusdt@miniTicker"]);
    assert!(unsub["id"].as_u64() > sub["id"].as_u64());
    assert_eq!(h.status().subscribed, 1);
    // The last topic: unsubscribed, then the idle connection is closed.
    h.unsubscribe(pair("BTC/USDT"));
    let (_, unsub, _) = server.json().await;
    assert_eq!(strings(&unsub["params"]), ["btcusdt@miniTicker"]);
    server.ended(c0).await;
    wait_until("disconnected", || !h.status().connected).await;
    assert_eq!(h.status().subscribed, 0);
    // A new registration connects again.
    h.subscribe(pair("ETH/USDT"));
    let c1 = server.connected().await;
    let (conn, sub, _) = server.json().await;
    assert_eq!(conn, c1);
    assert_eq!(strings(&sub["params"]), ["ethusdt@miniTicker"]);
    h.shutdown().await;
}

#[tokio::test]
async fn a_rejected_topic_is_dropped_and_not_resubscribed() {
    let mut server = Server::start().await;
    let (_, on_update) = collector();
    let h = spawn(Arc::new(Okx), config(), server.url(), on_update);
    h.subscribe(pair("BTC-USDT"));
    h.subscribe(pair("NOPE-USDT"));
    let (c0, sub, _) = server.json().await;
    assert_eq!(okx_topics(&sub), ["BTC-USDT", "NOPE-USDT"]);
    server.send(
        c0,
        r#"{"event":"error","code":"60018","msg":"Wrong URL or channel:tickers,instId:NOPE-USDT doesn't exist. Please use the correct URL, channel and parameters referring to API document.","connId":"a4d3ae55"}"#,
    );
    wait_until("rejection applied", || h.status().subscribed == 1).await;
    // Asking again changes nothing.
    h.subscribe(pair("nope-usdt"));
    server.drop_conn(c0);
    let c1 = server.connected().await;
    let (conn, sub, _) = server.json().await;
    assert_eq!(conn, c1);
    assert_eq!(okx_topics(&sub), ["BTC-USDT"]);
    assert_eq!(h.status().subscribed, 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_rejection_that_voids_the_request_resubscribes_the_rest() {
    let mut server = Server::start().await;
    let (_, on_update) = collector();
    let h = spawn(Arc::new(Coinbase), config(), server.url(), on_update);
    h.subscribe(pair("BTC-USD"));
    h.subscribe(pair("NOPE-USD"));
    let (c0, hb, _) = server.text().await;
    assert_eq!(hb, r#"{"type":"subscribe","channel":"heartbeats"}"#);
    let (_, sub, _) = server.text().await;
    assert_eq!(
        sub,
        r#"{"type":"subscribe","product_ids":["BTC-USD","NOPE-USD"],"channel":"ticker"}"#
    );
    server.send(
        c0,
        r#"{"type":"error","message":"Failed to subscribe","reason":"NOPE-USD is not a valid product"}"#,
    );
    let (conn, again, _) = server.text().await;
    assert_eq!(conn, c0);
    assert_eq!(
        again,
        r#"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"ticker"}"#
    );
    assert_eq!(h.status().subscribed, 1);
    h.shutdown().await;
}

/// A TCP server that accepts and closes at once (no WebSocket handshake), counting dials.
async fn refusing_server() -> (Url, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dials = Arc::new(AtomicUsize::new(0));
    let count = dials.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(tcp);
        }
    });
    let url = Url::parse(&format!("ws://{addr}/ws?token=s3cr3t")).expect("url");
    (url, dials)
}

#[tokio::test]
async fn the_manager_gives_up_after_max_reconnect_attempts() {
    let (url, dials) = refusing_server().await;
    let (_, on_update) = collector();
    let cfg = StreamConfig {
        reconnect_interval: Duration::from_millis(50),
        max_reconnect_attempts: 2,
        ..config()
    };
    let h = spawn(Arc::new(Binance), cfg, url, on_update);
    h.subscribe(pair("BTC/USDT"));
    wait_until("given up", || h.status().gave_up).await;
    // The first dial and two reconnection attempts.
    assert_eq!(dials.load(Ordering::SeqCst), 3);
    let status = h.status();
    assert!(!status.connected);
    assert_eq!(status.reconnects, 2);
    assert_eq!(status.subscribed, 1);
    // No busy loop: nothing more is dialled (the next attempt would have come within 200 ms).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(dials.load(Ordering::SeqCst), 3);
    // Commands are still taken; shutdown is prompt.
    h.subscribe(pair("ETH/USDT"));
    wait_until("still serving commands", || h.status().subscribed == 2).await;
    timeout(WAIT, h.shutdown()).await.expect("shutdown");
}

#[tokio::test]
async fn without_auto_reconnect_one_failure_ends_the_stream() {
    let (url, dials) = refusing_server().await;
    let (_, on_update) = collector();
    let cfg = StreamConfig {
        auto_reconnect: false,
        reconnect_interval: Duration::from_millis(20),
        ..config()
    };
    let h = spawn(Arc::new(Binance), cfg, url, on_update);
    h.subscribe(pair("BTC/USDT"));
    wait_until("given up", || h.status().gave_up).await;
    assert_eq!(dials.load(Ordering::SeqCst), 1);
    assert_eq!(h.status().reconnects, 0);
    h.shutdown().await;
}

#[tokio::test]
async fn zero_max_attempts_never_gives_up() {
    let (url, dials) = refusing_server().await;
    let (_, on_update) = collector();
    let cfg = StreamConfig {
        reconnect_interval: Duration::from_millis(10),
        max_reconnect_attempts: 0,
        ..config()
    };
    let h = spawn(Arc::new(Binance), cfg, url, on_update);
    h.subscribe(pair("BTC/USDT"));
    wait_until("more dials than any small limit", || {
        dials.load(Ordering::SeqCst) >= 6
    })
    .await;
    assert!(!h.status().gave_up);
    h.shutdown().await;
}

#[tokio::test]
async fn nothing_is_dialled_until_a_pair_is_wanted() {
    let (url, dials) = refusing_server().await;
    let (_, on_update) = collector();
    let h = spawn(Arc::new(Binance), config(), url, on_update);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(dials.load(Ordering::SeqCst), 0);
    h.subscribe(pair("BTC/USDT"));
    wait_until("dialled", || dials.load(Ordering::SeqCst) >= 1).await;
    h.shutdown().await;
}

#[test]
fn backoff_grows_to_the_cap_and_never_undercuts_the_interval() {
    let i = Duration::from_millis(100);
    let backoff = reconnect_backoff(i);
    assert_eq!(backoff.delay(0), i);
    for attempt in 1..40 {
        let d = backoff.delay(attempt);
        let ceiling = (i * 2u32.pow(attempt.min(20))).min(MAX_BACKOFF);
        assert!(d >= i && d <= ceiling, "attempt {attempt}: {d:?}");
    }
    let long = Duration::from_secs(120);
    assert_eq!(reconnect_backoff(long).delay(5), long);
}

#[test]
fn logged_urls_and_errors_carry_no_key() {
    let url = Url::parse("wss://user:pw@streamer.example:9443/v2?api_key=s3cr3t&format=streamer")
        .expect("url");
    assert_eq!(redacted(&url), "wss://streamer.example:9443/v2");
    let error = format!("URL error: Unable to connect to {url}");
    let clean = scrub(&error, &url);
    assert!(!clean.contains("s3cr3t"), "{clean}");
    assert!(!clean.contains("pw@"), "{clean}");
}
