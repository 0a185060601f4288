//! s6 readiness notification: the service writes a line to its `notification-fd` when ready.

use std::os::fd::OwnedFd;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

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
