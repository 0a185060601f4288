//! `enclave alerts` (longrun `alerts`): the enclave's own alerts, for when the metrics path is
//! down and nobody sees Grafana's. Every `alerts.intervalMs` it collects a [`Snapshot`] of the
//! enclave from the local endpoints every service already exposes, evaluates the rules
//! ([`rules`]), turns their verdicts into firing and resolved notifications ([`engine`]:
//! deduplicated, rate-limited per alert) and hands them to one task per channel ([`deliver`]:
//! retried with backoff). It only reads: no service waits for it, and its failures are its own.
//!
//! [`Snapshot`]: crate::snapshot::Snapshot

pub mod deliver;
pub mod engine;
pub mod message;
pub mod metrics;
pub mod rules;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::deliver::{Channel, RetryPolicy};
use self::engine::{Engine, EngineConfig, Notification, State};
use self::metrics::AlertMetrics;
use self::rules::{Memory, Settings};
use crate::config::schema::alerts::AlertName;
use crate::config::Config;
use crate::paths::Root;
use crate::snapshot::{Collector, Snapshot};
use crate::telemetry::{self, server, Pusher};

/// A local endpoint that does not answer within this long counts as unreadable for one round.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error(transparent)]
    Collector(#[from] crate::snapshot::collect::CollectorError),
    #[error("alert channel: {0}")]
    Channel(#[from] deliver::SendError),
    #[error(transparent)]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Push(#[from] telemetry::push::PushError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs until SIGTERM/SIGINT. Without a channel it only waits for the signal.
pub async fn run(config: Config, root: Root) -> Result<(), AlertsError> {
    let stop = crate::service::readiness::termination()?;
    if !config.alerts.enabled() {
        tracing::info!("no alert channel configured (alerts.channels): the alerter is idle");
        stop.await;
        return Ok(());
    }
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(AlertMetrics::register(&registry)?);
    let instance = telemetry::identity(&config, "alerts").instance;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut channels = Vec::new();
    for (index, channel) in config.alerts.channels.iter().enumerate() {
        let channel = Channel::new(
            index,
            channel.clone(),
            &instance,
            RetryPolicy::default(),
            metrics.clone(),
        )?;
        tracing::info!(channel = %channel.name, origin = %channel.origin(),
            min_severity = channel.config.min_severity.as_str(), "alert channel");
        channels.push((
            channel.name.clone(),
            channel.kind(),
            channel.config.min_severity,
            deliver::spawn(channel, &tracker, cancel.clone()),
        ));
    }
    let kinds: Vec<_> = channels.iter().map(|c| c.1).collect();
    metrics.initialise(&kinds);
    let pusher = Pusher::start(
        &registry,
        &telemetry::targets_for(&config, false),
        &telemetry::identity(&config, "alerts"),
    )?;
    let interval = config.alerts.interval;
    let last_evaluation = Arc::new(Mutex::new(Instant::now()));
    serve_metrics(
        &config,
        &registry,
        interval,
        last_evaluation.clone(),
        &tracker,
        &cancel,
    );
    let settings = Settings::from_config(&config);
    let collector = Collector::new(root, Arc::new(config), interval.min(MAX_REQUEST_TIMEOUT))?;
    let mut engine = Engine::new(EngineConfig::from(&settings.alerts));
    let mut memory = Memory::default();
    let origin = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        channels = channels.len(),
        "alerter running"
    );
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stop => break,
        }
        let snapshot = tokio::select! {
            s = collector.collect() => s,
            _ = &mut stop => break,
        };
        count_errors(&metrics, &snapshot);
        let verdicts = rules::evaluate(&settings, &mut memory, &snapshot);
        let notifications = engine.step(origin.elapsed(), snapshot.taken_at, verdicts);
        metrics.evaluations.inc();
        *last_evaluation.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        for alert in AlertName::ALL {
            let firing = engine.firing().filter(|k| k.alert == alert).count();
            metrics
                .firing
                .with_label_values(&[alert.as_str()])
                .set(firing as i64);
        }
        for n in notifications {
            log(&n);
            for (name, kind, min_severity, queue) in &channels {
                if n.severity < *min_severity {
                    continue;
                }
                if let Err(TrySendError::Full(_) | TrySendError::Closed(_)) =
                    queue.try_send(n.clone())
                {
                    metrics
                        .notifications
                        .with_label_values(&[kind.as_str(), n.key.alert.as_str(), "dropped"])
                        .inc();
                    tracing::warn!(channel = %name, alert = %n.key.alert, subject = %n.key.subject,
                        "alert notification dropped: the channel's queue is full");
                }
            }
        }
    }
    tracing::info!("stopping");
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("alert channels did not stop within the shutdown timeout");
    }
    pusher.shutdown(SHUTDOWN_TIMEOUT).await;
    Ok(())
}

fn log(n: &Notification) {
    match n.state {
        State::Firing => tracing::warn!(alert = %n.key.alert, subject = %n.key.subject,
            severity = n.severity.as_str(), reminder = n.reminder, summary = %n.summary, "alert firing"),
        State::Resolved => tracing::info!(alert = %n.key.alert, subject = %n.key.subject,
            summary = %n.summary, "alert resolved"),
    }
}

fn count_errors(metrics: &AlertMetrics, s: &Snapshot) {
    let mut failed = Vec::new();
    if s.services.is_err() {
        failed.push("services");
    }
    if s.resources_error.is_some() {
        failed.push("resources");
    }
    if s.attestation.is_err() {
        failed.push("attestation");
    }
    if s.aggregator.is_err() {
        failed.push("aggregator");
    }
    if s.nodes
        .iter()
        .any(|n| n.health.is_err() || n.feeds.is_err())
    {
        failed.push("nodes");
    }
    if matches!(s.balances, Some(Err(_))) {
        failed.push("balances");
    }
    for part in failed {
        metrics.snapshot_errors.with_label_values(&[part]).inc();
    }
}

/// `/metrics` and `/healthz` on `ports.listenHost:ports.alerts`. A port that cannot be bound is
/// logged and skipped: the alerter still evaluates, notifies and pushes, and never takes the
/// enclave down over its own endpoint.
fn serve_metrics(
    config: &Config,
    registry: &prometheus::Registry,
    interval: Duration,
    last_evaluation: Arc<Mutex<Instant>>,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) {
    let addr = SocketAddr::new(config.ports.listen_host, config.ports.alerts);
    let health: server::HealthCheck = Arc::new(move || {
        let since = last_evaluation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        if since <= interval * 3 + MAX_REQUEST_TIMEOUT {
            Ok(())
        } else {
            Err(format!("no evaluation for {} s", since.as_secs()))
        }
    });
    let stopped = cancel.clone();
    let registry = registry.clone();
    tracker.spawn(async move {
        let shutdown = async move { stopped.cancelled().await };
        if let Err(e) = server::serve(addr, registry, health, shutdown).await {
            tracing::warn!(%addr, error = %e, "cannot serve the alerter's /metrics and /healthz; alerting goes on without them");
        }
    });
}
