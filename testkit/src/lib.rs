//! Helpers for enclave's tests and benchmarks, in a crate of their own so that they can never
//! reach the attested binary: `enclave` has this crate as a dev-dependency only, and a normal or
//! release build never compiles it. docs/development/tests.md.
//!
//! - [`serve_in_thread`]: a stand-in HTTP server (an exchange, an EVM node, a receiver) on a
//!   thread and runtime of its own.
//! - [`promtool_check_metrics`]: Prometheus's own lint of a metrics exposition.

use std::ffi::OsStr;
use std::future::Future;
use std::io::Write;
use std::process::{Command, Stdio};

/// Serves `app` on `listener` from a new thread with its own single-threaded runtime until
/// `until` completes (`std::future::pending()` for as long as the process runs). Its own
/// runtime lets a handler block (a slow node, a stalled upstream) without stalling the code
/// under test, and lets the server outlive any one test's runtime.
pub fn serve_in_thread(
    listener: std::net::TcpListener,
    app: axum::Router,
    until: impl Future<Output = ()> + Send + 'static,
) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await;
        });
    });
}

/// `program check metrics` on `text`: the outer `Err` says why promtool cannot run (a test
/// skips); inside, `Ok(output)` when the lint passes, `Err(output)` when it does not.
pub fn promtool_check_metrics(
    program: impl AsRef<OsStr>,
    text: &str,
) -> Result<Result<String, String>, String> {
    let mut child = Command::new(program)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool ({e})"))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool finishes");
    let shown = format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(if output.status.success() {
        Ok(shown)
    } else {
        Err(shown)
    })
}
