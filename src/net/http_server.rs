//! The one HTTP server every service uses (price aggregator, node API, the supervisor's and the
//! process-metrics exporter's `/metrics`): hyper's HTTP/1 connection builder with the limits
//! `axum::serve` cannot set.
//!
//! - **Header timeout**: a request's headers must be complete within `header_timeout` of the
//!   connection opening, or of the first byte of a request on a kept-alive connection; a client
//!   that trickles them (slowloris) or opens a connection and says nothing is cut off.
//! - **Idle timeout**: a kept-alive connection with no request for `idle_timeout` is closed.
//! - **Write timeout**: a response the client does not read for `write_timeout` (every write
//!   blocked that long) ends the connection.
//! - **Connection cap**: at most `max_connections` open at once (and never more than half the
//!   process's open-file limit). When the cap is reached, the connection idle for longest (no
//!   request in flight, for at least a second) is closed for the newcomer; if every connection is
//!   serving a request, accepting waits until one ends, and further connections wait in the
//!   kernel's accept queue, costing this process no file descriptor.
//! - **Graceful shutdown**: when `shutdown` completes, the listener closes, requests in flight
//!   finish and idle connections close; whatever is left after [`DRAIN_TIMEOUT`] is dropped.
//!
//! The connection's own clock (see `Conn`) decides header and idle deadlines, because hyper's
//! `header_read_timeout` also runs while a kept-alive connection waits for its next request: it
//! would close idle connections after the header timeout, and clients that reuse pooled
//! connections would race that close.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use futures_util::FutureExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::Request;
use hyper_util::rt::TokioIo;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep_until, Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use super::admission::{Holder, OnFull, Refusal, SlotLimits, Slots};
use super::log_summary::{LogSummary, WINDOW};

/// How long a stopping server waits for its connections before dropping them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection idle for less than this is never closed for a newcomer.
const EVICT_AFTER: Duration = Duration::from_secs(1);
/// After an accept error (out of file descriptors, say), wait before accepting again rather
/// than spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// The cap never takes more than this share of the open-file limit, so the service keeps file
/// descriptors for its own work (database, upstream connections, logs).
const FD_LIMIT_SHARE: u64 = 2;
const MIN_CONNECTIONS: usize = 16;
/// hyper's read (and write) buffer per connection, so also the largest request head: our
/// requests are a line and a few headers (a batch of 1,000 pairs is about 10 KB), and 1,024
/// connections times hyper's default of 400 KB would be 400 MB. Larger heads get 431.
const MAX_BUFFER_BYTES: usize = 64 * 1024;

/// The limits of one server (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The price aggregator's and the nodes' APIs.
    pub const API: Limits = Limits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(30),
        max_connections: 1024,
    };
    /// The supervisor's and the process-metrics exporter's `/metrics` and `/healthz`, which only
    /// a scraper or an operator calls.
    pub const METRICS: Limits = Limits {
        max_connections: 256,
        ..Limits::API
    };
}

/// Why the server closed a connection; the `reason` label of
/// `enclave_http_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    HeaderTimeout,
    IdleTimeout,
    WriteTimeout,
    Evicted,
}

impl CloseReason {
    pub const ALL: [CloseReason; 4] = [
        CloseReason::HeaderTimeout,
        CloseReason::IdleTimeout,
        CloseReason::WriteTimeout,
        CloseReason::Evicted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::Evicted => "evicted",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot register the HTTP server's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot read the listening address: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ServeError> for std::io::Error {
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::Io(e) => e,
            other => std::io::Error::other(other),
        }
    }
}

#[derive(Clone)]
struct Metrics {
    open: IntGauge,
    closed: IntCounterVec,
}

impl Metrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let open = IntGauge::new(
            "enclave_http_connections_open",
            "HTTP connections open on this service's server.",
        )?;
        let closed = IntCounterVec::new(
            Opts::new(
                "enclave_http_connections_closed_total",
                "HTTP connections the server closed because of a limit, by reason \
                 (header_timeout, idle_timeout, write_timeout, evicted at the connection cap).",
            ),
            &["reason"],
        )?;
        for reason in CloseReason::ALL {
            closed.with_label_values(&[reason.as_str()]);
        }
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        Ok(Self { open, closed })
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes (then drains, see the
/// module documentation). Registers the server's metrics in `registry`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    registry: &Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = Metrics::register(registry)?;
    let addr = listener.local_addr()?;
    let capacity = capped_by_fd_limit(limits.max_connections, open_file_limit());
    if capacity < limits.max_connections {
        tracing::info!(%addr, capacity, "HTTP connection cap lowered to half the open-file limit");
    }
    let server = Server {
        addr,
        router,
        limits,
        metrics,
        log: Arc::new(LogSummary::default()),
        slots: Slots::new(SlotLimits {
            capacity,
            per_source: None,
            evict_after: EVICT_AFTER,
        }),
        stop: CancellationToken::new(),
        abort: CancellationToken::new(),
        tasks: TaskTracker::new(),
    };
    server.run(listener, shutdown).await;
    Ok(())
}

struct Server {
    addr: SocketAddr,
    router: Router,
    limits: Limits,
    metrics: Metrics,
    log: Arc<LogSummary>,
    slots: Arc<Slots<Conn>>,
    /// Tells connections to finish their request and close.
    stop: CancellationToken,
    /// Tells connections to close now (after the drain timeout).
    abort: CancellationToken,
    tasks: TaskTracker,
}

impl Server {
    async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown.fuse());
        let mut flush = tokio::time::interval(WINDOW);
        'accepting: loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = &mut shutdown => break,
                _ = flush.tick() => {
                    for line in self.log.flush(std::time::Instant::now()) {
                        self.write(&line);
                    }
                    continue;
                }
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if let Some(line) = self.log.record(
                        "accept_error",
                        Some(e.to_string()),
                        std::time::Instant::now(),
                    ) {
                        self.write(&line);
                    }
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let admitted = loop {
                let now = Instant::now();
                let admitted = self.slots.admit(
                    remote.ip(),
                    Conn::new(now),
                    now.into_std(),
                    OnFull::EvictAndWait,
                );
                match admitted {
                    Ok(admitted) => break admitted,
                    Err(Refusal::Evicting) => {
                        tokio::select! {
                            _ = self.slots.released() => {}
                            _ = &mut shutdown => break 'accepting,
                        }
                    }
                    Err(Refusal::Full { retry_at }) => {
                        let retry = retry_at.map(Instant::from_std);
                        tokio::select! {
                            _ = self.slots.released() => {}
                            _ = sleep_until(retry.unwrap_or(now + self.limits.idle_timeout)) => {}
                            _ = &mut shutdown => break 'accepting,
                        }
                    }
                    // No cap per source here; nothing to admit it to.
                    Err(Refusal::SourceLimit) => continue 'accepting,
                }
            };
            let connection = Connection {
                router: self.router.clone(),
                limits: self.limits,
                metrics: self.metrics.clone(),
                log: self.log.clone(),
                addr: self.addr,
                stop: self.stop.clone(),
                abort: self.abort.clone(),
            };
            self.tasks.spawn(connection.run(tcp, admitted.slot));
        }
        drop(listener);
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::info!(addr = %self.addr, left = self.tasks.len(), "closing the HTTP connections still open after the drain timeout");
            self.abort.cancel();
            self.tasks.wait().await;
        }
    }

    fn write(&self, line: &super::log_summary::Line) {
        write_line(self.addr, self.limits, line);
    }
}

fn closed(
    metrics: &Metrics,
    log: &LogSummary,
    addr: SocketAddr,
    limits: Limits,
    reason: CloseReason,
) {
    metrics.closed.with_label_values(&[reason.as_str()]).inc();
    // Idle connections expiring is what keep-alive is; only the others are worth a line.
    if reason == CloseReason::IdleTimeout {
        return;
    }
    if let Some(line) = log.record(reason.as_str(), None, std::time::Instant::now()) {
        write_line(addr, limits, &line);
    }
}

fn write_line(addr: SocketAddr, limits: Limits, line: &super::log_summary::Line) {
    let (count, seconds) = (line.count, line.seconds());
    match line.reason {
        "evicted" => tracing::warn!(
            %addr,
            "closed {count} idle HTTP connections in {seconds} s: the connection cap was reached"
        ),
        "header_timeout" => tracing::info!(
            %addr,
            "closed {count} HTTP connections in {seconds} s: request headers not complete within {:?}",
            limits.header_timeout
        ),
        "write_timeout" => tracing::info!(
            %addr,
            "closed {count} HTTP connections in {seconds} s: the client did not read its response for {:?}",
            limits.write_timeout
        ),
        other => tracing::warn!(
            %addr,
            error = line.detail.as_deref().unwrap_or_default(),
            "{count} HTTP accept failures in {seconds} s ({other}); pausing accepts briefly"
        ),
    }
}

/// One accepted connection's task.
struct Connection {
    router: Router,
    limits: Limits,
    metrics: Metrics,
    log: Arc<LogSummary>,
    addr: SocketAddr,
    stop: CancellationToken,
    abort: CancellationToken,
}

impl Connection {
    async fn run(self, tcp: TcpStream, slot: super::admission::Slot<Conn>) {
        self.metrics.open.inc();
        let state = slot.holder().clone();
        let io = TokioIo::new(Io {
            inner: tcp,
            conn: state.clone(),
            write_timeout: self.limits.write_timeout,
            write_stall: None,
        });
        let router = self.router.clone();
        let service_state = state.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let guard = RequestGuard::new(service_state.clone());
            let mut router = router.clone();
            async move {
                let response = match router.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response.map(|body| Guarded {
                    body,
                    _guard: guard,
                }))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // Our clock (Conn) times the headers; hyper's would also cut idle keep-alives.
        builder
            .header_read_timeout(None)
            .keep_alive(true)
            .max_header_size(MAX_BUFFER_BYTES)
            .max_buf_size(MAX_BUFFER_BYTES);
        let mut conn = pin!(builder.serve_connection(io, service));
        let mut stopping = false;
        let reason = loop {
            let now = Instant::now();
            let (wake, expired) = match state.deadline(&self.limits) {
                Some((at, reason)) => (at, (at <= now).then_some(reason)),
                // Serving a request: nothing to time here; look again later.
                None => (now + self.limits.header_timeout, None),
            };
            if let Some(reason) = expired {
                break Some(reason);
            }
            tokio::select! {
                _ = conn.as_mut() => {
                    break state.write_timed_out().then_some(CloseReason::WriteTimeout);
                }
                _ = sleep_until(wake) => {}
                _ = slot.evicted() => break Some(CloseReason::Evicted),
                _ = self.stop.cancelled(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = self.abort.cancelled() => break None,
            }
        };
        if let Some(reason) = reason {
            closed(&self.metrics, &self.log, self.addr, self.limits, reason);
        }
        self.metrics.open.dec();
    }
}

/// Where a connection is between requests, for its deadlines and for eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers since `since` (the connection opened, or the first byte
    /// of a request arrived).
    Headers { since: Instant },
    /// `requests` in flight (hyper serves one at a time; the count keeps it right anyway).
    Busy { requests: usize },
    /// No request since `since` (the previous response was written).
    Idle { since: Instant },
}

/// A connection's clock, shared by its I/O (bytes read), its service (requests) and its task.
struct Conn {
    phase: Mutex<Phase>,
    write_timed_out: std::sync::atomic::AtomicBool,
}

impl Conn {
    fn new(opened: Instant) -> Self {
        Self {
            phase: Mutex::new(Phase::Headers { since: opened }),
            write_timed_out: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Phase) -> R) -> R {
        f(&mut self.phase.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn on_read(&self, now: Instant) {
        self.with(|phase| {
            if let Phase::Idle { .. } = phase {
                *phase = Phase::Headers { since: now };
            }
        });
    }

    fn request_started(&self) {
        self.with(|phase| {
            *phase = match *phase {
                Phase::Busy { requests } => Phase::Busy {
                    requests: requests + 1,
                },
                _ => Phase::Busy { requests: 1 },
            }
        });
    }

    fn request_finished(&self, now: Instant) {
        self.with(|phase| {
            if let Phase::Busy { requests } = *phase {
                *phase = if requests > 1 {
                    Phase::Busy {
                        requests: requests - 1,
                    }
                } else {
                    Phase::Idle { since: now }
                };
            }
        });
    }

    /// When the connection must be closed if nothing changes, and why; `None` while serving.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, CloseReason)> {
        match self.with(|p| *p) {
            Phase::Headers { since } => {
                Some((since + limits.header_timeout, CloseReason::HeaderTimeout))
            }
            Phase::Idle { since } => Some((since + limits.idle_timeout, CloseReason::IdleTimeout)),
            Phase::Busy { .. } => None,
        }
    }

    fn write_timed_out(&self) -> bool {
        self.write_timed_out
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Holder for Conn {
    fn evictable_since(&self) -> Option<std::time::Instant> {
        match self.with(|p| *p) {
            Phase::Headers { since } | Phase::Idle { since } => Some(since.into_std()),
            Phase::Busy { .. } => None,
        }
    }
}

/// A request in flight: the connection is busy until the response body is written (or dropped).
struct RequestGuard(Arc<Conn>);

impl RequestGuard {
    fn new(conn: Arc<Conn>) -> Self {
        conn.request_started();
        Self(conn)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_finished(Instant::now());
    }
}

/// The response body, holding its request's guard until hyper has written it.
struct Guarded {
    body: Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket as the connection sees it: reads start a request's header clock, and writes that
/// stay blocked for `write_timeout` fail.
struct Io<T> {
    inner: T,
    conn: Arc<Conn>,
    write_timeout: Duration,
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<T> Io<T> {
    /// Called when a write could not proceed: fails once it has not for `write_timeout`.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let timeout = self.write_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.conn
                    .write_timed_out
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Poll::Ready(std::io::ErrorKind::TimedOut.into())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(&mut self, result: R) -> Poll<R> {
        self.write_stall = None;
        Poll::Ready(result)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.on_read(Instant::now());
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }
}

/// A request's method as a metric label: the standard methods by name, anything else `other`,
/// so that made-up methods cannot grow the number of series.
pub fn method_label(method: &hyper::Method) -> &'static str {
    use hyper::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The process's soft limit on open files, if it can be read.
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    // rlim_t is u64 on Linux but not on every target.
    #[allow(clippy::unnecessary_cast)]
    let current = limit.rlim_cur as u64;
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(current)
}

/// The cap actually used: the configured one, but at most half the open-file limit.
fn capped_by_fd_limit(configured: usize, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(limit) => {
            let share = usize::try_from(limit / FD_LIMIT_SHARE).unwrap_or(usize::MAX);
            configured.min(share.max(MIN_CONNECTIONS))
        }
        None => configured,
    }
}

#[cfg(test)]
mod tests;
