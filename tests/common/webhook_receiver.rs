//! A local HTTP receiver for alert notifications: records every POST (path, headers, JSON body)
//! and answers like the service it stands for (`204` on Discord-style paths, `200 ok` else).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: Option<String>,
    pub body: Value,
}

#[derive(Clone)]
pub struct WebhookReceiver {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl WebhookReceiver {
    pub fn start() -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = received.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push(Received {
                    path: uri.path().to_owned(),
                    content_type: headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                if uri.path().starts_with("/api/webhooks/") {
                    StatusCode::NO_CONTENT.into_response()
                } else {
                    (StatusCode::OK, "ok").into_response()
                }
            }
        });
        let base = crate::common::receivers::serve_on("127.0.0.1", app);
        Self { base, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}
