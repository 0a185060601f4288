//! For tests and benchmarks only (compiled with `cfg(test)` or the `test-support` feature, never
//! in a release build): serving a stand-in HTTP server from a thread and runtime of its own, so
//! that a handler may block (a slow node, a stalled upstream) without stalling the code under
//! test, and the server outlives any one test runtime.

use std::future::Future;

/// Serves `app` on `listener` from a new thread with its own single-threaded runtime until
/// `until` completes (`std::future::pending()` for as long as the process runs).
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
