//! `GET /v1/identity`: the identity document as the supervisor last wrote it (identity, digests,
//! attestation, evidence, birth evidence), on every node's API and on the supervisor's port. A
//! router of its own, so both servers add it with one line.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::IDENTITY_FILE;
use crate::paths::Root;

/// The document is a few dozen KiB; a larger file is not one the supervisor wrote.
const MAX_DOCUMENT_BYTES: u64 = 8 * 1024 * 1024;

/// `/v1/identity`, reading `<root>/run/enclave/identity.json` at every request (the supervisor
/// rewrites it when the attestation completes).
pub fn router(root: &Root) -> Router {
    let path = Arc::new(root.map(super::IDENTITY_DIR).join(IDENTITY_FILE));
    Router::new()
        .route("/v1/identity", get(identity))
        .with_state(path)
}

async fn identity(State(path): State<Arc<PathBuf>>) -> Response {
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            crate::config::regular_file::read_bounded(&path, MAX_DOCUMENT_BYTES)
        })
        .await
    };
    let unavailable = |message: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"statusCode": 503, "error": message, "message": message})),
        )
            .into_response()
    };
    match read {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Ok(Err(crate::config::regular_file::FileError::Io(e)))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            unavailable("no identity published yet")
        }
        Ok(Err(e)) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the identity document");
            unavailable("the identity document cannot be read")
        }
        Err(e) => {
            tracing::error!(error = %e, "the identity reader failed");
            unavailable("the identity document cannot be read")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr) -> (u16, String) {
        let response = reqwest::get(format!("http://{addr}/v1/identity"))
            .await
            .expect("request");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    #[tokio::test]
    async fn the_identity_is_served_as_written_and_503_before_there_is_one() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = Root::new(tmp.path());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, router(&root)).await });
        let (status, body) = get(addr).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("no identity published yet"), "{body}");
        let dir = tmp.path().join("run/enclave");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let document = "{\"identity\":{},\"evidence\":{\"provider\":\"tdx\",\"quote\":\"AA==\"}}\n";
        std::fs::write(dir.join(IDENTITY_FILE), document).expect("write");
        assert_eq!(get(addr).await, (200, document.to_owned()));
        server.abort();
    }
}
