//! The push client every service uses: one task per target gathers the registry every
//! interval and sends it outward, with retries, never blocking the service that owns it.
//!
//! Pushgateway gets the whole group with PUT (it replaces the group, so it is never chunked)
//! and no timestamps (it rejects them). VictoriaMetrics gets timestamped samples; while it is
//! unreachable they wait in a bounded backlog and are delivered, oldest first, once it is back,
//! so an outage loses no data.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backlog::{Backlog, Snapshot, MAX_BYTES};
use super::encode;
use super::register;
use super::target::{push_url, Identity};
use crate::backoff::Backoff;
use crate::config::schema::telemetry::{PushTarget, TargetKind};

const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";
const ATTEMPTS: u32 = 3;
/// Retry n waits `200 ms · 2ⁿ` plus up to half of it: the step is the top of that range and a
/// third of it is jitter (the first retry waits 300 ms, the shared type never going below its
/// first delay).
const RETRY_BACKOFF: Backoff = Backoff::constant(
    Duration::from_millis(300),
    Duration::from_millis(300 << ATTEMPTS),
    1.0 / 3.0,
);

#[derive(Debug, Error)]
pub enum PushError {
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("header {0} is not valid")]
    Header(String),
    #[error(transparent)]
    Metrics(#[from] prometheus::Error),
}

/// Counters about the pushing itself, in the same registry (so they are pushed too).
#[derive(Clone)]
struct PushMetrics {
    pushes: IntCounterVec,
    backlog: IntGaugeVec,
    dropped: IntCounterVec,
}

impl PushMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let pushes = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "enclave_telemetry_pushes_total",
                    "Metric pushes by target and result.",
                ),
                &["target", "result"],
            )?,
        )?;
        let backlog = register(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "enclave_telemetry_backlog_samples",
                    "Samples waiting for an unreachable VictoriaMetrics target.",
                ),
                &["target"],
            )?,
        )?;
        let dropped = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "enclave_telemetry_dropped_samples_total",
                    "Samples dropped because the backlog of an unreachable target was full.",
                ),
                &["target"],
            )?,
        )?;
        Ok(Self {
            pushes,
            backlog,
            dropped,
        })
    }
}

/// The running push tasks of one service: it owns them, stops them and joins them.
pub struct Pusher {
    tasks: TaskTracker,
    /// Ends the push loops (each makes its last push).
    stop: CancellationToken,
    /// Ends whatever a task is still doing (a last push that hangs).
    abort: CancellationToken,
}

impl Pusher {
    /// Starts one task per target. Must be called inside a tokio runtime.
    pub fn start(
        registry: &Registry,
        targets: &[PushTarget],
        identity: &Identity,
    ) -> Result<Self, PushError> {
        let metrics = PushMetrics::register(registry)?;
        let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
        let tasks = TaskTracker::new();
        for (i, target) in targets.iter().enumerate() {
            let label = format!("{i}:{}", kind_name(target.kind));
            let worker = Worker::new(
                registry.clone(),
                target.clone(),
                identity,
                label,
                metrics.clone(),
            )?;
            tracing::info!(target = %target.url, kind = kind_name(target.kind), interval_ms = target.interval.as_millis() as u64, "pushing metrics");
            let (stop, abort) = (stop.clone(), abort.clone());
            tasks.spawn(async move {
                tokio::select! {
                    _ = worker.run(stop) => {}
                    _ = abort.cancelled() => {}
                }
            });
        }
        tasks.close();
        Ok(Self { tasks, stop, abort })
    }

    /// A last push (Pushgateway: the group is deleted, so a stopped service leaves no stale
    /// values behind), bounded by `timeout`; a push still hanging then is aborted, so no push
    /// task outlives this call.
    pub async fn shutdown(self, timeout: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("metric pushes did not finish before shutdown");
            self.abort.cancel();
            self.tasks.wait().await;
        }
    }

    /// The push tasks, for tests that check none outlives [`shutdown`](Self::shutdown).
    pub fn tracker(&self) -> TaskTracker {
        self.tasks.clone()
    }
}

fn kind_name(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Pushgateway => "pushgateway",
        TargetKind::VictoriaMetrics => "victoriametrics",
    }
}

struct Worker {
    registry: Registry,
    target: PushTarget,
    url: reqwest::Url,
    client: reqwest::Client,
    label: String,
    metrics: PushMetrics,
    backlog: Backlog,
    /// Evictions already added to the dropped counter (evictions happen when a snapshot is added).
    dropped_reported: u64,
    failures_in_a_row: u64,
}

impl Worker {
    fn new(
        registry: Registry,
        target: PushTarget,
        identity: &Identity,
        label: String,
        metrics: PushMetrics,
    ) -> Result<Self, PushError> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &target.headers {
            let n =
                HeaderName::try_from(name.as_str()).map_err(|_| PushError::Header(name.clone()))?;
            let mut v = HeaderValue::try_from(value.expose().as_str())
                .map_err(|_| PushError::Header(name.clone()))?;
            v.set_sensitive(true);
            headers.insert(n, v);
        }
        let client = reqwest::Client::builder()
            .timeout(target.timeout)
            .default_headers(headers)
            .build()
            .map_err(PushError::Client)?;
        Ok(Self {
            url: push_url(&target, identity),
            backlog: Backlog::new(target.buffer, MAX_BYTES),
            registry,
            client,
            label,
            metrics,
            target,
            dropped_reported: 0,
            failures_in_a_row: 0,
        })
    }

    async fn run(mut self, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(self.target.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.push_once().await,
                _ = stop.cancelled() => break,
            }
        }
        match self.target.kind {
            TargetKind::Pushgateway => self.delete_group().await,
            TargetKind::VictoriaMetrics => self.push_once().await,
        }
    }

    async fn push_once(&mut self) {
        let text = encode::text(&self.registry);
        let ok = match self.target.kind {
            TargetKind::Pushgateway => self.send_with_retries(reqwest::Method::PUT, text).await,
            TargetKind::VictoriaMetrics => {
                let taken = now_ms();
                self.backlog.push(Snapshot::new(
                    taken,
                    encode::timestamped_samples(&text, taken),
                ));
                self.deliver_backlog().await
            }
        };
        self.record(ok);
    }

    /// Sends the backlog oldest first; stops at the first failure (the rest waits).
    async fn deliver_backlog(&mut self) -> bool {
        let mut ok = true;
        while let Some(snapshot) = self.backlog.front() {
            let batches: Vec<String> = snapshot
                .lines
                .chunks(self.target.batch_size.max(1) as usize)
                .map(|chunk| chunk.join("\n") + "\n")
                .collect();
            let mut delivered = true;
            for body in batches {
                if !self.send_with_retries(reqwest::Method::POST, body).await {
                    delivered = false;
                    break;
                }
            }
            if !delivered {
                ok = false;
                break;
            }
            self.backlog.pop_front();
        }
        let dropped = self.backlog.dropped_samples() - self.dropped_reported;
        if dropped > 0 {
            self.metrics
                .dropped
                .with_label_values(&[self.label.as_str()])
                .inc_by(dropped);
            self.dropped_reported = self.backlog.dropped_samples();
        }
        self.metrics
            .backlog
            .with_label_values(&[self.label.as_str()])
            .set(self.backlog.samples() as i64);
        ok
    }

    /// A few quick attempts with exponential backoff and jitter, all well inside one interval.
    async fn send_with_retries(&self, method: reqwest::Method, body: String) -> bool {
        let budget = self.target.interval / 2;
        let started = tokio::time::Instant::now();
        let mut retries = RETRY_BACKOFF.attempts();
        for attempt in 1..=ATTEMPTS {
            let delay = retries.next_delay();
            match self.send(method.clone(), body.clone()).await {
                Ok(()) => return true,
                Err(e)
                    if !e.retryable
                        || attempt == ATTEMPTS
                        || started.elapsed() + delay > budget =>
                {
                    self.log_failure(&e.message);
                    return false;
                }
                Err(_) => tokio::time::sleep(delay).await,
            }
        }
        false
    }

    async fn send(&self, method: reqwest::Method, body: String) -> Result<(), SendError> {
        let mut request = self
            .client
            .request(method, self.url.clone())
            .header(CONTENT_TYPE, CONTENT)
            .body(body);
        if let Some(auth) = &self.target.basic_auth {
            request = request.basic_auth(&auth.username, Some(auth.password.expose()));
        }
        let response = request.send().await.map_err(|e| SendError {
            message: describe(&e),
            retryable: true,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(200).collect();
        Err(SendError {
            message: format!("HTTP {status}: {}", excerpt.trim()),
            // A refusal (bad credentials, a malformed body) will not change within seconds;
            // the next interval tries again.
            retryable: status.is_server_error() || matches!(status.as_u16(), 408 | 429),
        })
    }

    async fn delete_group(&self) {
        let mut request = self.client.delete(self.url.clone());
        if let Some(auth) = &self.target.basic_auth {
            request = request.basic_auth(&auth.username, Some(auth.password.expose()));
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(target = %self.target.url, status = %r.status(), "the Pushgateway refused to delete the group at shutdown")
            }
            Err(e) => {
                tracing::warn!(target = %self.target.url, error = %describe(&e), "cannot delete the Pushgateway group at shutdown")
            }
        }
    }

    fn record(&mut self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.metrics
            .pushes
            .with_label_values(&[self.label.as_str(), result])
            .inc();
        if ok {
            if self.failures_in_a_row > 0 {
                tracing::info!(target = %self.target.url, after_failures = self.failures_in_a_row, "metric pushes succeed again");
            }
            self.failures_in_a_row = 0;
        } else {
            self.failures_in_a_row += 1;
        }
    }

    fn log_failure(&self, error: &str) {
        // The first failure and then every tenth: an unreachable receiver must not flood the log.
        if self.failures_in_a_row.is_multiple_of(10) {
            tracing::warn!(
                target = %self.target.url,
                failures_in_a_row = self.failures_in_a_row + 1,
                backlog_samples = self.backlog.samples(),
                error = %error,
                "metric push failed"
            );
        }
    }
}

struct SendError {
    message: String,
    retryable: bool,
}

/// A reqwest error without its URL (which may carry credentials in its query).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let source = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    format!("{kind}: {}", source.split(" for url").next().unwrap_or(""))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::{Fields, Report};
    use crate::config::schema::telemetry::read_push_target;

    fn target(url: &str) -> PushTarget {
        let config = serde_json::json!({"url": url, "intervalMs": 1000, "timeoutMs": 60_000});
        let mut report = Report::default();
        let fields = Fields::of(&mut report, "t", &config).expect("an object");
        let target = read_push_target(&mut report, fields, false).expect("a target");
        assert!(report.is_ok(), "{:?}", report.problems);
        target
    }

    #[tokio::test]
    async fn shutdown_ends_every_push_task_even_when_the_last_push_hangs() {
        // A receiver that accepts and never answers: the last push would wait its 60 s timeout.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let identity = Identity {
            job: "test".to_owned(),
            instance: "test-1".to_owned(),
        };
        let targets = [target(&format!("http://{addr}"))];
        let pusher = Pusher::start(&Registry::new(), &targets, &identity).expect("start");
        let tracker = pusher.tracker();
        assert_eq!(tracker.len(), 1);
        tokio::time::timeout(
            Duration::from_secs(10),
            pusher.shutdown(Duration::from_millis(300)),
        )
        .await
        .expect("shutdown returns after its timeout");
        assert!(tracker.is_empty(), "a push task outlived shutdown");
        tokio::time::timeout(Duration::from_secs(1), tracker.wait())
            .await
            .expect("the tracker is closed and empty");
        accepted.abort();
    }
}
