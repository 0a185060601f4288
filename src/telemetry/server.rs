//! The local HTTP endpoint every service has: `GET /metrics` (the registry it also pushes) and
//! `GET /healthz`. Bound to 127.0.0.1: inside the TEE nothing scrapes, locally it helps.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::Registry;

use super::encode;
use crate::net::http_server::{self, Limits};

/// What `/healthz` reports: `Ok` → 200 `ok`, `Err(reason)` → 503 with the reason.
pub type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct AppState {
    registry: Registry,
    health: HealthCheck,
}

pub fn router(registry: Registry, health: HealthCheck) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(AppState { registry, health })
}

/// Serves until `shutdown` completes, with the limits of [`Limits::METRICS`] (its connection
/// metrics go into `registry`). Binding fails loudly (a port clash must not go unseen).
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    health: HealthCheck,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(addr, registry, health, Router::new(), shutdown).await
}

/// [`serve`] with more routes (`extra`, without a fallback of its own): the supervisor's port
/// also answers `/v1/identity`.
pub async fn serve_with(
    addr: SocketAddr,
    registry: Registry,
    health: HealthCheck,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_listener(bind(addr).await?, registry, health, extra, shutdown).await
}

/// The listener [`serve_listener`] takes: bound first by a service that signals readiness.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    Ok(listener)
}

/// [`serve_with`] on a listener already bound.
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    registry: Registry,
    health: HealthCheck,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(registry.clone(), health).merge(extra);
    http_server::serve(listener, app, Limits::METRICS, &registry, shutdown).await?;
    Ok(())
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        encode::text(&state.registry),
    )
        .into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    match (state.health)() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unhealthy", "reason": reason})),
        )
            .into_response(),
    }
}

async fn not_found(request: axum::extract::Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": "not found", "path": request.uri().path()})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::IntGauge;

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{addr}{path}"))
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    #[tokio::test]
    async fn metrics_health_and_unknown_paths() {
        let registry = Registry::new();
        let g = IntGauge::new("demo_gauge", "Demo.").expect("metric");
        registry.register(Box::new(g.clone())).expect("register");
        g.set(7);
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let h = healthy.clone();
        let health: HealthCheck = Arc::new(move || {
            if h.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(())
            } else {
                Err("database unreachable".into())
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router(registry, health)).await });
        let (code, body) = get_text(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("demo_gauge 7"));
        assert_eq!(get_text(addr, "/healthz").await, (200, "ok\n".into()));
        healthy.store(false, std::sync::atomic::Ordering::SeqCst);
        let (code, body) = get_text(addr, "/healthz").await;
        assert_eq!(code, 503);
        assert!(body.contains("database unreachable"));
        let (code, body) = get_text(addr, "/nope").await;
        assert_eq!(code, 404);
        assert!(body.contains("\"error\""));
    }
}
