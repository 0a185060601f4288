//! A scripted JSON-RPC node for unit tests: each request's `(method, params)` goes to a closure
//! that returns the answer's `result`/`error` members. It runs on its own thread and runtime,
//! so a closure may block (to simulate a slow node) without stalling the client under test.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use url::Url;

type Handler = Arc<dyn Fn(&str, &Value) -> Value + Send + Sync>;

pub struct MockNode {
    url: Url,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MockNode {
    /// The closure returns `{"result": …}` or `{"error": {…}}`; `{"http_status": 503,
    /// "body": "…"}` answers with that status and plain body instead.
    pub async fn start(handler: impl Fn(&str, &Value) -> Value + Send + Sync + 'static) -> Self {
        let handler: Handler = Arc::new(handler);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/{*path}", post(answer))
            .route("/", post(answer))
            .with_state(handler);
        enclave_testkit::serve_in_thread(listener, app, async {
            let _ = stopped.await;
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/rpc")).expect("url");
        Self {
            url,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> Url {
        self.url.clone()
    }
}

impl Drop for MockNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn answer(State(handler): State<Handler>, body: axum::body::Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return (StatusCode::BAD_REQUEST, "not JSON").into_response(),
    };
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    let params = request["params"].clone();
    let id = request["id"].clone();
    // The closure may block (simulated slowness): keep it off the accept loop.
    let reply = tokio::task::spawn_blocking(move || handler(&method, &params))
        .await
        .unwrap_or_else(|_| json!({"error": {"code": -32603, "message": "mock handler panicked"}}));
    if let Some(status) = reply.get("http_status").and_then(Value::as_u64) {
        let status =
            StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = reply["body"].as_str().unwrap_or_default().to_owned();
        return (status, body).into_response();
    }
    let mut envelope = json!({"jsonrpc": "2.0", "id": id});
    if let (Some(out), Some(fields)) = (envelope.as_object_mut(), reply.as_object()) {
        for (k, v) in fields {
            out.insert(k.clone(), v.clone());
        }
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        envelope.to_string(),
    )
        .into_response()
}
