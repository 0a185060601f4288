//! Accepts peers: TLS (the verifier admits only allowed keys), the hello, then the connection
//! runs in its own task. Handshakes in progress are limited and time-bounded, so port scanners
//! and silent sockets cost little.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::connection;
use super::network::Shared;
use super::stats::bump;
use super::tasks::Tasks;
use super::verifier::{self, peer_id_of};
use super::HANDSHAKE_TIMEOUT;

/// Handshakes in progress at once; more connections are closed at once. Far above what a
/// few hundred peers reconnecting together need.
const MAX_HANDSHAKES: usize = 64;
/// After an accept error (out of file descriptors, say), wait before accepting again rather
/// than spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

pub(crate) struct Listener {
    pub shared: Arc<Shared>,
    pub listener: TcpListener,
    pub acceptor: TlsAcceptor,
    pub tasks: Tasks,
    pub stop: watch::Receiver<bool>,
}

impl Listener {
    pub async fn run(mut self) {
        let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = self.stop.wait_for(|s| *s) => return,
            };
            match accepted {
                Ok((tcp, remote)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        bump(&self.shared.stats.handshake_failures);
                        tracing::warn!(%remote, "too many handshakes in progress; closing a new connection");
                        continue;
                    };
                    let accepted = Accepted {
                        shared: self.shared.clone(),
                        acceptor: self.acceptor.clone(),
                        stop: self.stop.clone(),
                    };
                    self.tasks.spawn(accepted.run(tcp, remote, permit));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a peer connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }
}

/// One accepted TCP connection on its way to becoming a peer connection.
struct Accepted {
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    stop: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
enum AcceptError {
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("the peer's certificate carries no Ed25519 key")]
    NoPeer,
    #[error("{0}")]
    Hello(#[from] connection::HelloError),
    #[error("no hello within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
}

impl Accepted {
    async fn run(self, tcp: TcpStream, remote: SocketAddr, permit: OwnedSemaphorePermit) {
        let _ = tcp.set_nodelay(true);
        let max_frame_bytes = self.shared.max_frame_bytes;
        let handshake = async {
            let tls = self.acceptor.accept(tcp).await.map_err(AcceptError::Tls)?;
            // The verifier already admitted this key; read it back to know who this is.
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(peer_id_of)
                .ok_or(AcceptError::NoPeer)?;
            let (reader, writer) = connection::hello(tls, max_frame_bytes).await?;
            Ok::<_, AcceptError>((peer, reader, writer))
        };
        let established = timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .unwrap_or(Err(AcceptError::Timeout));
        drop(permit);
        match established {
            Ok((peer, reader, writer)) => {
                let canonical = self.shared.is_canonical(peer, self.shared.local);
                connection::serve(self.shared, peer, canonical, reader, writer, self.stop).await;
            }
            Err(AcceptError::Tls(e)) if verifier::is_refusal(&e) => {}
            Err(e) => {
                bump(&self.shared.stats.handshake_failures);
                // Debug: anyone can make these, one log line each would let them fill the logs.
                tracing::debug!(%remote, error = %e, "inbound connection failed before it was usable");
            }
        }
    }
}
