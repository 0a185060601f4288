//! A local HTTP receiver for alert notifications: records every POST (path, headers, JSON body)
//! and answers like the service it stands for (`204` on Discord-style paths, `200 ok` else).

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(format!("http://{}", listener.local_addr().expect("addr")))
                    .expect("send");
                let app = axum::Router::new().fallback(
                    move |uri: Uri, headers: HeaderMap, body: Bytes| {
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
                    },
                );
                let _ = axum::serve(listener, app).await;
            });
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("receiver started");
        Self { base, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}
