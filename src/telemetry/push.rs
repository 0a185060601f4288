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
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::backlog::{Backlog, Snapshot, MAX_BYTES};
use super::encode;
use super::target::{push_url, Identity};
use crate::config::schema::telemetry::{PushTarget, TargetKind};

const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";
const ATTEMPTS: u32 = 3;
const FIRST_RETRY: Duration = Duration::from_millis(200);

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
        let pushes = IntCounterVec::new(
            Opts::new(
                "enclave_telemetry_pushes_total",
                "Metric pushes by target and result.",
            ),
            &["target", "result"],
        )?;
        let backlog = IntGaugeVec::new(
            Opts::new(
                "enclave_telemetry_backlog_samples",
                "Samples waiting for an unreachable VictoriaMetrics target.",
            ),
            &["target"],
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "enclave_telemetry_dropped_samples_total",
                "Samples dropped because the backlog of an unreachable target was full.",
            ),
            &["target"],
        )?;
        registry.register(Box::new(pushes.clone()))?;
        registry.register(Box::new(backlog.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        Ok(Self {
            pushes,
            backlog,
            dropped,
        })
    }
}

/// The running push tasks of one service.
pub struct Pusher {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Pusher {
    /// Starts one task per target. Must be called inside a tokio runtime.
    pub fn start(
        registry: &Registry,
        targets: &[PushTarget],
        identity: &Identity,
    ) -> Result<Self, PushError> {
        let metrics = PushMetrics::register(registry)?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
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
            tasks.push(tokio::spawn(worker.run(stopped.clone())));
        }
        Ok(Self { tasks, stop })
    }

    /// A last push (Pushgateway: the group is deleted, so a stopped service leaves no stale
    /// values behind), bounded by `timeout`; a push still hanging then is aborted, so no push
    /// task outlives this call.
    pub async fn shutdown(mut self, timeout: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(timeout, join_all(&mut self.tasks))
            .await
            .is_err()
        {
            tracing::warn!("metric pushes did not finish before shutdown");
            for task in &self.tasks {
                task.abort();
            }
            join_all(&mut self.tasks).await;
        }
    }
}

/// Awaits each task, forgetting the ones that ended (so a second call awaits only the rest).
async fn join_all(tasks: &mut Vec<JoinHandle<()>>) {
    while let Some(task) = tasks.last_mut() {
        let _ = task.await;
        tasks.pop();
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

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.target.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.push_once().await,
                _ = stop.changed() => break,
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
        let mut delay = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
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
                Err(_) => {
                    let jitter = fastrand::u64(0..=delay.as_millis() as u64 / 2);
                    tokio::time::sleep(delay + Duration::from_millis(jitter)).await;
                    delay *= 2;
                }
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
