//! One WebSocket connection per streaming source, kept subscribed to the topics of the pairs
//! registered for it.
//!
//! - **Connection**: tokio-tungstenite (rustls, webpki roots for `wss`). The manager connects
//!   only while some topic is wanted and closes the connection when the last one is
//!   unsubscribed (OKX and Coinbase drop connections without subscriptions anyway).
//! - **Subscriptions** requested while connected are debounced ([`DEBOUNCE`], counted from
//!   the first request of a burst), batched by `stream.batchSize` (unset: all pending topics in
//!   one request; cut to the protocol's own limit) and the requests are spaced by
//!   `stream.rateLimit`. Unsubscriptions go the same way. A (re)connection subscribes
//!   everything wanted at once, batched and spaced the same way.
//! - **Updates** map topic → every registered pair with that topic → `on_update`.
//! - **Rejected** topics leave the wanted set and are never requested again (a later
//!   `subscribe` of a pair with that topic is ignored).
//! - **Heartbeat** every `stream.heartbeatInterval` (cut to the protocol's maximum): the
//!   protocol's app-level message, else a WebSocket ping. A connection that received nothing
//!   for twice that interval is dead and is dropped.
//! - **Reconnect**, if `stream.autoReconnect`: after a close, an error or a dead connection (or a
//!   failed dial), wait and dial again. The n-th consecutive attempt waits a random delay in
//!   `[reconnectInterval, min(reconnectInterval·2ⁿ⁻¹, max(60 s, reconnectInterval))]`: exponential
//!   backoff capped at 60 s, with full jitter above the configured interval (never sooner than
//!   `reconnectInterval`, so the first retry waits exactly that). After
//!   `maxReconnectAttempts` consecutive failed attempts the manager gives up for good (the
//!   reference's behaviour; REST refetching carries on) — **0 means no limit**: giving up
//!   before the first attempt is what `autoReconnect: false` already says, and a stream that
//!   keeps retrying at most once a minute costs nothing. A connection counts as healthy, and
//!   resets the count, once it delivered a price or stayed up one heartbeat interval (a server
//!   that accepts and drops at once does not reset it). After reconnecting, every wanted topic
//!   is subscribed again.
//! - **Secrets**: the URL may carry an API key in its query; logs show only scheme, host, port
//!   and path, and error texts are scrubbed of the query.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async_with_config, MaybeTlsStream, WebSocketStream};
use tokio_util::task::TaskTracker;
use url::Url;

use super::{clip, Incoming, StreamProtocol};
use crate::aggregator::pair::Pair;
use crate::aggregator::price::Price;
use crate::backoff::Backoff;
use crate::config::schema::sources::StreamConfig;

/// How long subscription requests gather before they are sent.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// The longest backoff between reconnection attempts (unless `reconnectInterval` is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many rejected topics are remembered.
const MAX_REJECTED: usize = 10_000;
/// At most one log line per this interval for a source's in-band errors.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Called with every price a stream delivers, once per registered pair of its topic.
pub type OnUpdate = Arc<dyn Fn(Pair, Price) + Send + Sync>;

/// A snapshot of a stream's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStatus {
    /// Whether a connection is open now.
    pub connected: bool,
    /// Reconnection attempts made so far (dials after a lost connection or a failed dial).
    pub reconnects: u64,
    /// Text and binary messages received so far.
    pub messages: u64,
    /// Topics wanted: those of the registered pairs, without rejected ones.
    pub subscribed: usize,
    /// Whether the manager stopped reconnecting (`maxReconnectAttempts` reached, or
    /// `autoReconnect` off and the connection lost).
    pub gave_up: bool,
}

#[derive(Default)]
struct Shared {
    connected: AtomicBool,
    reconnects: AtomicU64,
    messages: AtomicU64,
    subscribed: AtomicUsize,
    gave_up: AtomicBool,
}

#[derive(Debug)]
enum Command {
    Subscribe(Pair),
    Unsubscribe(Pair),
    Shutdown,
}

/// The handle of a running stream. Dropping it stops the stream too (without waiting).
pub struct StreamHandle {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    /// The manager's task (closed: it holds only that one).
    task: TaskTracker,
}

impl StreamHandle {
    /// Wants prices for `pair` (a no-op if already wanted).
    pub fn subscribe(&self, pair: Pair) {
        // Fails only once the manager has stopped; nothing to do then.
        let _ = self.commands.send(Command::Subscribe(pair));
    }

    /// No longer wants prices for `pair`; the topic is unsubscribed when no other registered
    /// pair shares it.
    pub fn unsubscribe(&self, pair: Pair) {
        let _ = self.commands.send(Command::Unsubscribe(pair));
    }

    /// Closes the connection and waits for the manager to stop.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
        self.task.wait().await;
    }

    pub fn status(&self) -> StreamStatus {
        StreamStatus {
            connected: self.shared.connected.load(Ordering::Relaxed),
            reconnects: self.shared.reconnects.load(Ordering::Relaxed),
            messages: self.shared.messages.load(Ordering::Relaxed),
            subscribed: self.shared.subscribed.load(Ordering::Relaxed),
            gave_up: self.shared.gave_up.load(Ordering::Relaxed),
        }
    }
}

/// Starts the connection manager of one source. `url` is the URL to dial (with the key, for
/// the sources that take one: see [`StreamProtocol::url`]).
pub fn spawn(
    protocol: Arc<dyn StreamProtocol>,
    config: StreamConfig,
    url: Url,
    on_update: OnUpdate,
) -> StreamHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    let manager = Manager {
        endpoint: redacted(&url),
        protocol,
        config,
        url,
        on_update,
        shared: shared.clone(),
        commands: rx,
        wanted: BTreeMap::new(),
        rejected: HashSet::new(),
        request_id: 0,
        attempts: 0,
        errors: ErrorLog::default(),
    };
    let task = TaskTracker::new();
    task.spawn(manager.run());
    task.close();
    StreamHandle {
        commands: tx,
        shared,
        task,
    }
}

/// `scheme://host[:port]/path`: a URL without what may be secret (user info, query).
fn redacted(url: &Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        s.push_str(&format!(":{port}"));
    }
    s.push_str(url.path());
    s
}

/// An error text without the URL's query values or password (a dial error repeats the URL).
fn scrub(text: &str, url: &Url) -> String {
    let mut out = text.to_owned();
    let mut secrets: Vec<String> = Vec::new();
    if let Some(q) = url.query() {
        secrets.push(q.to_owned());
    }
    secrets.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    if let Some(p) = url.password() {
        secrets.push(p.to_owned());
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

/// Why a connection ended.
enum End {
    Shutdown,
    /// Nothing is wanted any more.
    Idle,
    Lost {
        reason: String,
        healthy: bool,
    },
}

/// The state of one connection.
struct Conn {
    /// Topics subscribed (or queued to be) on this connection.
    active: BTreeSet<String>,
    pending_sub: BTreeSet<String>,
    pending_unsub: BTreeSet<String>,
    /// When the pending requests are turned into messages.
    flush_at: Option<Instant>,
    /// Subscription messages waiting for the rate limit.
    outbox: VecDeque<Message>,
    next_send: Instant,
    /// The topics requested together with each topic (for sources where one rejection voids
    /// the request).
    request_of: HashMap<String, Arc<[String]>>,
}

impl Conn {
    fn new(now: Instant) -> Self {
        Self {
            active: BTreeSet::new(),
            pending_sub: BTreeSet::new(),
            pending_unsub: BTreeSet::new(),
            flush_at: None,
            outbox: VecDeque::new(),
            next_send: now,
            request_of: HashMap::new(),
        }
    }

    fn schedule_flush(&mut self) {
        if self.flush_at.is_none() {
            self.flush_at = Some(Instant::now() + DEBOUNCE);
        }
    }

    fn quiet(&self) -> bool {
        self.outbox.is_empty() && self.flush_at.is_none()
    }
}

struct Manager {
    protocol: Arc<dyn StreamProtocol>,
    config: StreamConfig,
    url: Url,
    /// The URL for logs.
    endpoint: String,
    on_update: OnUpdate,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Wanted topics and the pairs registered for each.
    wanted: BTreeMap<String, BTreeSet<Pair>>,
    rejected: HashSet<String>,
    request_id: u64,
    /// Consecutive reconnection attempts since the last healthy connection.
    attempts: u32,
    errors: ErrorLog,
}

impl Manager {
    fn source(&self) -> &'static str {
        self.protocol.id().name()
    }

    fn heartbeat_every(&self) -> Duration {
        let configured = self.config.heartbeat_interval;
        let every = match self.protocol.max_heartbeat_interval() {
            Some(max) => configured.min(max),
            None => configured,
        };
        every.max(Duration::from_millis(10))
    }

    fn batch_size(&self) -> usize {
        let configured = self.config.batch_size.map(|b| b as usize);
        let limit = self.protocol.max_topics_per_message();
        match (configured, limit) {
            (Some(c), Some(l)) => c.min(l),
            (Some(c), None) => c,
            (None, Some(l)) => l,
            (None, None) => usize::MAX,
        }
        .max(1)
    }

    fn next_id(&mut self) -> u64 {
        self.request_id += 1;
        self.request_id
    }

    fn publish_subscribed(&self) {
        self.shared
            .subscribed
            .store(self.wanted.len(), Ordering::Relaxed);
    }

    async fn run(mut self) {
        let mut retry_at: Option<Instant> = None;
        loop {
            let gave_up = self.shared.gave_up.load(Ordering::Relaxed);
            let backing_off = retry_at.is_some_and(|t| t > Instant::now());
            if self.wanted.is_empty() || gave_up || backing_off {
                let deadline = if self.wanted.is_empty() || gave_up {
                    None
                } else {
                    retry_at
                };
                tokio::select! {
                    cmd = self.commands.recv() => match cmd {
                        None | Some(Command::Shutdown) => return,
                        Some(cmd) => self.apply(cmd, None),
                    },
                    () = until(deadline) => {}
                }
                continue;
            }
            retry_at = None;
            if self.attempts > 0 {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            let reason = match self.dial().await {
                Err(None) => return,
                Err(Some(reason)) => reason,
                Ok(ws) => {
                    self.shared.connected.store(true, Ordering::Relaxed);
                    tracing::info!(
                        source = self.source(),
                        endpoint = %self.endpoint,
                        topics = self.wanted.len(),
                        "stream connected"
                    );
                    let end = self.session(ws).await;
                    self.shared.connected.store(false, Ordering::Relaxed);
                    match end {
                        End::Shutdown => return,
                        End::Idle => {
                            tracing::info!(
                                source = self.source(),
                                "stream idle: nothing subscribed; disconnected"
                            );
                            self.attempts = 0;
                            continue;
                        }
                        End::Lost { reason, healthy } => {
                            if healthy {
                                self.attempts = 0;
                            }
                            reason
                        }
                    }
                }
            };
            retry_at = self.after_failure(&reason);
        }
    }

    /// Decides what follows a lost connection or a failed dial: the time of the next attempt,
    /// or none (given up).
    fn after_failure(&mut self, reason: &str) -> Option<Instant> {
        let max = self.config.max_reconnect_attempts;
        let give_up = !self.config.auto_reconnect || (max != 0 && self.attempts >= max);
        if give_up {
            self.shared.gave_up.store(true, Ordering::Relaxed);
            tracing::error!(
                source = self.source(),
                endpoint = %self.endpoint,
                attempts = self.attempts,
                reason,
                "stream lost; not reconnecting (REST refetch continues)"
            );
            return None;
        }
        self.attempts += 1;
        let delay = reconnect_backoff(self.config.reconnect_interval).delay(self.attempts - 1);
        tracing::warn!(
            source = self.source(),
            endpoint = %self.endpoint,
            attempt = self.attempts,
            delay_ms = delay.as_millis() as u64,
            reason,
            "stream lost; reconnecting"
        );
        Some(Instant::now() + delay)
    }

    /// Dials, handling commands meanwhile. `Err(None)`: shut down; `Err(Some(reason))`: failed.
    async fn dial(&mut self) -> Result<Ws, Option<String>> {
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(4 << 20))
            .max_frame_size(Some(1 << 20));
        let url = self.url.as_str().to_owned();
        let connect = timeout(
            CONNECT_TIMEOUT,
            connect_async_with_config(url, Some(ws_config), true),
        );
        tokio::pin!(connect);
        loop {
            tokio::select! {
                result = &mut connect => {
                    return match result {
                        Ok(Ok((ws, _response))) => Ok(ws),
                        Ok(Err(e)) => Err(Some(format!("connect: {}", scrub(&e.to_string(), &self.url)))),
                        Err(_) => Err(Some(format!("connect: no answer within {CONNECT_TIMEOUT:?}"))),
                    };
                }
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => return Err(None),
                    Some(cmd) => self.apply(cmd, None),
                },
            }
        }
    }

    /// Runs one connection until it ends.
    async fn session(&mut self, mut ws: Ws) -> End {
        let started = Instant::now();
        let every = self.heartbeat_every();
        let dead_after = every * 2;
        let mut next_heartbeat = started + every;
        let mut last_rx = started;
        let mut healthy = false;
        let mut conn = Conn::new(started);
        for m in self.protocol.on_connect() {
            if let Err(reason) = send(&mut ws, m, &self.url).await {
                return End::Lost { reason, healthy };
            }
        }
        conn.pending_sub = self.wanted.keys().cloned().collect();
        conn.flush_at = Some(started);
        loop {
            if self.wanted.is_empty() && conn.quiet() {
                close(&mut ws).await;
                return End::Idle;
            }
            let send_at = (!conn.outbox.is_empty()).then_some(conn.next_send);
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => {
                        close(&mut ws).await;
                        return End::Shutdown;
                    }
                    Some(cmd) => self.apply(cmd, Some(&mut conn)),
                },
                frame = ws.next() => {
                    last_rx = Instant::now();
                    let message = match frame {
                        None => return End::Lost { reason: "connection closed".into(), healthy },
                        Some(Err(e)) => return End::Lost { reason: scrub(&e.to_string(), &self.url), healthy },
                        Some(Ok(m)) => m,
                    };
                    if let Message::Close(frame) = &message {
                        let reason = match frame {
                            Some(f) => format!("closed by the server: {} {}", f.code, clip(f.reason.as_str())),
                            None => "closed by the server".to_owned(),
                        };
                        return End::Lost { reason, healthy };
                    }
                    if matches!(message, Message::Text(_) | Message::Binary(_)) {
                        self.shared.messages.fetch_add(1, Ordering::Relaxed);
                    }
                    match self.handle(&message, &mut conn) {
                        Handled::Nothing => {}
                        Handled::Price => healthy = true,
                        Handled::Reply(reply) => {
                            if let Err(reason) = send(&mut ws, reply, &self.url).await {
                                return End::Lost { reason, healthy };
                            }
                        }
                    }
                }
                () = sleep_until(next_heartbeat) => {
                    let beat = self.protocol.heartbeat().unwrap_or_else(|| Message::Ping(Default::default()));
                    if let Err(reason) = send(&mut ws, beat, &self.url).await {
                        return End::Lost { reason, healthy };
                    }
                    next_heartbeat = Instant::now() + every;
                }
                () = sleep_until(last_rx + dead_after) => {
                    return End::Lost {
                        reason: format!("nothing received for {dead_after:?}"),
                        healthy,
                    };
                }
                () = until(conn.flush_at) => self.flush(&mut conn),
                () = until(send_at) => {
                    if let Some(m) = conn.outbox.pop_front() {
                        if let Err(reason) = send(&mut ws, m, &self.url).await {
                            return End::Lost { reason, healthy };
                        }
                        conn.next_send = Instant::now() + self.config.rate_limit.unwrap_or_default();
                    }
                }
            }
            if !healthy && started.elapsed() >= every {
                healthy = true;
            }
            if healthy && self.attempts > 0 {
                self.attempts = 0;
            }
        }
    }

    /// Applies a subscription change; `conn` is the live connection, if any.
    fn apply(&mut self, cmd: Command, conn: Option<&mut Conn>) {
        match cmd {
            Command::Subscribe(pair) => {
                let topic = self.protocol.topic(&pair);
                if self.rejected.contains(&topic) {
                    tracing::debug!(
                        source = self.source(),
                        topic,
                        "topic was rejected; not subscribing"
                    );
                    return;
                }
                let pairs = self.wanted.entry(topic.clone()).or_default();
                let new_topic = pairs.is_empty();
                pairs.insert(pair);
                if new_topic {
                    if let Some(conn) = conn {
                        // Still subscribed if its unsubscription was not sent yet.
                        if !conn.pending_unsub.remove(&topic) && !conn.active.contains(&topic) {
                            conn.pending_sub.insert(topic);
                            conn.schedule_flush();
                        }
                    }
                }
            }
            Command::Unsubscribe(pair) => {
                let topic = self.protocol.topic(&pair);
                let Some(pairs) = self.wanted.get_mut(&topic) else {
                    return;
                };
                pairs.remove(&pair);
                if pairs.is_empty() {
                    self.wanted.remove(&topic);
                    if let Some(conn) = conn {
                        if !conn.pending_sub.remove(&topic) && conn.active.contains(&topic) {
                            conn.pending_unsub.insert(topic);
                            conn.schedule_flush();
                        }
                    }
                }
            }
            Command::Shutdown => {}
        }
        self.publish_subscribed();
    }

    /// Turns the pending requests into messages, batched.
    fn flush(&mut self, conn: &mut Conn) {
        conn.flush_at = None;
        let batch = self.batch_size();
        let subs: Vec<String> = std::mem::take(&mut conn.pending_sub)
            .into_iter()
            .filter(|t| self.wanted.contains_key(t))
            .collect();
        for chunk in subs.chunks(batch) {
            let id = self.next_id();
            conn.outbox.extend(self.protocol.subscribe(chunk, id));
            let request: Arc<[String]> = chunk.into();
            for t in chunk {
                conn.active.insert(t.clone());
                conn.request_of.insert(t.clone(), request.clone());
            }
        }
        let unsubs: Vec<String> = std::mem::take(&mut conn.pending_unsub)
            .into_iter()
            .filter(|t| !self.wanted.contains_key(t) && conn.active.contains(t))
            .collect();
        for chunk in unsubs.chunks(batch) {
            let id = self.next_id();
            conn.outbox.extend(self.protocol.unsubscribe(chunk, id));
            for t in chunk {
                conn.active.remove(t);
                conn.request_of.remove(t);
            }
        }
    }

    fn handle(&mut self, message: &Message, conn: &mut Conn) -> Handled {
        match self.protocol.parse(message) {
            Incoming::Updates(updates) => {
                let mut any = false;
                for (topic, price) in updates {
                    match self.wanted.get(&topic) {
                        Some(pairs) => {
                            any = true;
                            for pair in pairs {
                                (self.on_update)(pair.clone(), price);
                            }
                        }
                        None => tracing::trace!(
                            source = self.source(),
                            topic,
                            "update for a topic not wanted"
                        ),
                    }
                }
                if any {
                    Handled::Price
                } else {
                    Handled::Nothing
                }
            }
            Incoming::Reply(reply) => Handled::Reply(reply),
            Incoming::Rejected { topic, reason } => {
                self.reject(topic, &reason, conn);
                Handled::Nothing
            }
            Incoming::Error(reason) => {
                self.log_error(&reason);
                Handled::Nothing
            }
            Incoming::Ignore => Handled::Nothing,
        }
    }

    fn reject(&mut self, topic: String, reason: &str, conn: &mut Conn) {
        if self.wanted.remove(&topic).is_none() {
            tracing::debug!(
                source = self.source(),
                topic,
                reason,
                "rejection of a topic not wanted"
            );
            return;
        }
        tracing::warn!(
            source = self.source(),
            topic,
            reason,
            "the source rejected the topic; not subscribing it again"
        );
        if self.rejected.len() < MAX_REJECTED {
            self.rejected.insert(topic.clone());
        }
        conn.active.remove(&topic);
        conn.pending_sub.remove(&topic);
        let request = conn.request_of.remove(&topic);
        if let (true, Some(request)) = (self.protocol.rejection_voids_request(), request) {
            for other in request.iter() {
                if self.wanted.contains_key(other) && conn.active.remove(other) {
                    conn.request_of.remove(other);
                    conn.pending_sub.insert(other.clone());
                }
            }
            if !conn.pending_sub.is_empty() {
                conn.schedule_flush();
            }
        }
        self.publish_subscribed();
    }

    fn log_error(&mut self, reason: &str) {
        let now = Instant::now();
        let due = self
            .errors
            .last
            .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL);
        if due {
            tracing::warn!(
                source = self.source(),
                suppressed = self.errors.suppressed,
                reason,
                "stream error"
            );
            self.errors.last = Some(now);
            self.errors.suppressed = 0;
        } else {
            self.errors.suppressed += 1;
        }
    }
}

enum Handled {
    Nothing,
    Price,
    Reply(Message),
}

async fn send(ws: &mut Ws, message: Message, url: &Url) -> Result<(), String> {
    match timeout(SEND_TIMEOUT, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("send: {}", scrub(&e.to_string(), url))),
        Err(_) => Err(format!("send: blocked for {SEND_TIMEOUT:?}")),
    }
}

async fn close(ws: &mut Ws) {
    let _ = timeout(CLOSE_TIMEOUT, ws.close(None)).await;
}

/// Reconnection delays: from `interval`, doubling up to `max(60 s, interval)`, with full jitter
/// that never goes below `interval` (attempt n, 0-based, waits in `[interval, interval·2ⁿ]`).
pub fn reconnect_backoff(interval: Duration) -> Backoff {
    // Validated configurations start at 1 s; the floor only keeps the settings valid for any input.
    let first = interval.max(Duration::from_millis(1));
    Backoff::constant(first, MAX_BACKOFF.max(first), 1.0)
}

#[cfg(test)]
mod tests;
