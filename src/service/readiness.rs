//! s6 readiness notification: the service writes a line to its `notification-fd` when ready.

use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// The service side of a stop: completes on SIGTERM (the supervisor's down-signal) or SIGINT.
/// The handlers are installed before this returns, so a signal arriving early is not lost.
pub fn termination() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// The service side: a newline on the descriptor the supervisor handed over (`--notify-fd`),
/// written once the service accepts work.
pub fn notify_ready(fd: Option<i32>) {
    let Some(fd) = fd else { return };
    // SAFETY: the supervisor handed us this descriptor for exactly this write; we own it now.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    if let Err(e) = std::io::Write::write_all(&mut &file, b"\n") {
        tracing::warn!(fd, error = %e, "cannot notify readiness");
    }
}

/// Completes when a newline arrives on the pipe. A pipe closed without one (or unusable) never
/// completes: the service is then not ready, and its `timeout-up` or its exit decides.
pub async fn wait_for_readiness(fd: OwnedFd) {
    let Ok(mut receiver) = pipe::Receiver::from_owned_fd(fd) else {
        tracing::warn!("readiness pipe unusable; waiting for timeout-up");
        return std::future::pending().await;
    };
    let mut buf = [0u8; 512];
    loop {
        match receiver.read(&mut buf).await {
            Ok(0) | Err(_) => return std::future::pending().await,
            Ok(n) if buf[..n].contains(&b'\n') => return,
            Ok(_) => {}
        }
    }
}
