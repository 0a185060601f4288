//! `enclave process-metrics`: per-service process metrics and the PostgreSQL metrics, served on
//! `ports.listenHost` (127.0.0.1):`ports.processMetrics` (env `PROCESS_METRICS_PORT`) and pushed to every target.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Cli;
use crate::config::Config;
use crate::exit;
use crate::postgres::bootstrap::superuser_password_if_present;
use crate::postgres::layout::Layout;
use crate::postgres::metrics::{pool, PostgresMetrics};
use crate::postgres::provision::superuser_credentials;
use crate::process_metrics::{
    run_sampling, ProcessMetrics, DEFAULT_INTERVAL_MS, DEFAULT_MAX_FAILURES, MIN_INTERVAL_MS,
};
use crate::service::state::StateDir;
use crate::telemetry::{self, server, Pusher};

const PUSH_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// The metrics endpoint finishes its answers in progress within this after a stop.
const TASKS_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(cli: &Cli, notify_fd: Option<i32>) -> anyhow::Result<u8> {
    let root = cli.root();
    let verified = cli.service_config()?;
    let config = verified.config;
    let port =
        env_number("PROCESS_METRICS_PORT")?.unwrap_or(u64::from(config.ports.process_metrics));
    let port = u16::try_from(port)
        .map_err(|_| anyhow::anyhow!("PROCESS_METRICS_PORT: {port} is not a port"))?;
    let interval_ms = env_number("PROCESS_METRICS_INTERVAL_MS")?.unwrap_or(DEFAULT_INTERVAL_MS);
    if interval_ms < MIN_INTERVAL_MS {
        anyhow::bail!(
            "PROCESS_METRICS_INTERVAL_MS: must be >= {MIN_INTERVAL_MS}, not {interval_ms}"
        );
    }
    let registry = Registry::new();
    let processes = ProcessMetrics::new(StateDir::new(&root));
    registry.register(Box::new(processes.clone()))?;
    let postgres = PostgresMetrics::register(&registry)?;
    let layout = Layout::new(&root, &config);
    // Sampling runs on the blocking pool; the async work (serving, pushing) is light.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = SocketAddr::new(config.ports.listen_host, port);
    runtime.block_on(async {
        // Bound before readiness is signalled: "up" means `/metrics` answers.
        let listener = server::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        crate::service::readiness::notify_ready(notify_fd);
        serve_and_sample(
            &config,
            registry,
            processes,
            postgres,
            layout,
            listener,
            Duration::from_millis(interval_ms),
        )
        .await
    })
}

fn env_number(name: &str) -> anyhow::Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name}: not a number: {v:?}")),
        Err(_) => Ok(None),
    }
}

async fn serve_and_sample(
    config: &Config,
    registry: Registry,
    processes: ProcessMetrics,
    postgres: PostgresMetrics,
    layout: Layout,
    listener: tokio::net::TcpListener,
    interval: Duration,
) -> anyhow::Result<u8> {
    let addr = listener.local_addr()?;
    let pusher = Pusher::start(
        &registry,
        &telemetry::targets_for(config, false),
        &telemetry::identity(config, "process-metrics"),
    )?;
    // The server and the PostgreSQL refresher are this function's: cancelled and joined below.
    let (cancel, tasks) = (CancellationToken::new(), TaskTracker::new());
    let sampled = processes.clone();
    let health: server::HealthCheck = Arc::new(move || match sampled.last_sample_succeeded() {
        Some(true) => Ok(()),
        Some(false) => Err("the last process sample failed".into()),
        None => Err("no process sample yet".into()),
    });
    let server = tasks.spawn(server::serve_listener(
        listener,
        registry,
        health,
        axum::Router::new(),
        cancel.clone().cancelled_owned(),
    ));
    tasks.spawn(refresh_postgres(postgres, layout, interval, cancel.clone()));
    tasks.close();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let code = tokio::select! {
        result = run_sampling(processes, interval, DEFAULT_MAX_FAILURES) => match result {
            Ok(()) => exit::OK,
            Err(e) => {
                tracing::error!(error = %e, max_failures = DEFAULT_MAX_FAILURES, "sampling keeps failing; exiting so the supervisor restarts the exporter");
                exit::FAILURE
            }
        },
        result = server => {
            tracing::error!(%addr, result = ?result.map(|r| r.map_err(|e| e.to_string())), "the metrics endpoint stopped");
            exit::FAILURE
        }
        _ = term.recv() => exit::OK,
        _ = int.recv() => exit::OK,
    };
    cancel.cancel();
    if tokio::time::timeout(TASKS_SHUTDOWN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("the metrics endpoint did not stop in time");
    }
    pusher.shutdown(PUSH_SHUTDOWN_TIMEOUT).await;
    Ok(code)
}

/// PostgreSQL's metrics, refreshed every interval. The superuser's password exists only once
/// the cluster is bootstrapped; until then (and whenever the server is down) `up` is 0.
async fn refresh_postgres(
    metrics: PostgresMetrics,
    layout: Layout,
    interval: Duration,
    cancel: CancellationToken,
) {
    // Cancellation also ends a query in progress, not only the wait between two.
    cancel
        .run_until_cancelled(refresh_postgres_forever(metrics, layout, interval))
        .await;
}

async fn refresh_postgres_forever(metrics: PostgresMetrics, layout: Layout, interval: Duration) {
    let mut pg_pool = None;
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        if pg_pool.is_none() {
            match superuser_password_if_present(&layout) {
                Ok(Some(password)) => {
                    pg_pool = Some(pool(&superuser_credentials(&layout, password)))
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the PostgreSQL superuser password")
                }
            }
        }
        if let Some(p) = &pg_pool {
            if let Err(e) = metrics.refresh(p).await {
                tracing::debug!(error = %e, "PostgreSQL metrics unavailable");
            }
        }
    }
}
