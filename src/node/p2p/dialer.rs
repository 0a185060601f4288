//! Keeps the connection to one peer this node should dial: dial its current address, run the
//! connection, and after a loss or a failed dial wait (backoff with jitter) and dial again. A new
//! address (a fresh announcement) cuts the wait short.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};
use tokio_rustls::TlsConnector;

use super::connection::{self, HelloError, Reader, Writer};
use super::network::Shared;
use super::stats::bump;
use super::verifier;
use super::HANDSHAKE_TIMEOUT;
use crate::backoff::Attempts;
use crate::keys::peer_id::PeerId;

/// A connection that lasted this long was healthy: the next loss starts the backoff over.
const STABLE: Duration = Duration::from_secs(5);

pub(crate) struct Dialer {
    pub shared: Arc<Shared>,
    pub target: PeerId,
    /// The target's addresses; empty until known.
    pub addresses: watch::Receiver<Vec<String>>,
    pub connector: TlsConnector,
    pub backoff: Attempts,
    pub stop: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("{0}")]
    Hello(#[from] HelloError),
    #[error("no TLS handshake and hello within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

impl Dialer {
    pub async fn run(mut self) {
        let peer = self.target.short();
        let mut next_address = 0usize;
        let mut failures = 0u32;
        loop {
            let addresses = self.addresses.borrow_and_update().clone();
            if addresses.is_empty() {
                tracing::debug!(%peer, "waiting for the peer's address");
                tokio::select! {
                    changed = self.addresses.changed() => if changed.is_err() { return },
                    _ = self.stop.wait_for(|s| *s) => return,
                }
                continue;
            }
            let address = &addresses[next_address % addresses.len()];
            bump(&self.shared.stats.dials);
            match self.dial(address).await {
                Ok((reader, writer)) => {
                    failures = 0;
                    let started = Instant::now();
                    connection::serve(
                        self.shared.clone(),
                        self.target,
                        true,
                        reader,
                        writer,
                        self.stop.clone(),
                    )
                    .await;
                    if started.elapsed() >= STABLE {
                        self.backoff.reset();
                    }
                }
                Err(e) => {
                    if matches!(
                        e,
                        DialError::Tls(_) | DialError::Hello(_) | DialError::Timeout
                    ) && !e.io().is_some_and(verifier::is_refusal)
                    {
                        bump(&self.shared.stats.handshake_failures);
                    }
                    failures += 1;
                    // The first failure matters to an operator; a peer that stays down would
                    // otherwise log every few seconds.
                    if failures == 1 {
                        tracing::warn!(%peer, %address, error = %e, "cannot reach peer; retrying");
                    } else {
                        tracing::debug!(%peer, %address, error = %e, failures, "cannot reach peer");
                    }
                    next_address = next_address.wrapping_add(1);
                }
            }
            if *self.stop.borrow() {
                return;
            }
            let delay = self.backoff.next_delay();
            tokio::select! {
                _ = sleep(delay) => {}
                changed = self.addresses.changed() => {
                    if changed.is_err() { return }
                    // Somewhere new to try: no reason to wait out a backoff earned elsewhere.
                    self.backoff.reset();
                    next_address = 0;
                }
                _ = self.stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn dial(&self, address: &str) -> Result<(Reader<Tls>, Writer<Tls>), DialError> {
        let tcp = timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(address))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            .map_err(DialError::Connect)?;
        // Consensus messages are small and latency-bound.
        let _ = tcp.set_nodelay(true);
        let handshake = async {
            let tls = self
                .connector
                .connect(super::tls::server_name(), tcp)
                .await
                .map_err(DialError::Tls)?;
            Ok(connection::hello(tls, self.shared.max_frame_bytes).await?)
        };
        timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .unwrap_or(Err(DialError::Timeout))
    }
}

impl DialError {
    /// The I/O error behind a failure, for classifying refusals.
    fn io(&self) -> Option<&std::io::Error> {
        match self {
            DialError::Connect(e) | DialError::Tls(e) => Some(e),
            DialError::Hello(HelloError::Io(e)) => Some(e),
            _ => None,
        }
    }
}
