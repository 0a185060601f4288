//! Accepts peers: TLS (the verifier admits only allowed keys), the hello, then the connection
//! runs in its own task.
//!
//! Until a peer has proved its key, its connection is a stranger's, and strangers must not be
//! able to take the room the configured peers need (a restarted oracle must get its peers back
//! while someone holds idle connections on every P2P port):
//!
//! - handshakes in progress take one of [`MAX_HANDSHAKES`] slots, at most
//!   [`MAX_HANDSHAKES_PER_SOURCE`] per address (loopback exempt: in a single-enclave DON every
//!   peer is 127.0.0.1);
//! - the whole TLS ClientHello must arrive within `CLIENT_HELLO_TIMEOUT` (3 s; a dialer sends it
//!   at once), TLS and the hello within `HANDSHAKE_TIMEOUT` (10 s);
//! - with every slot taken, the oldest handshake (at least [`EVICT_AFTER`] old) is closed for the
//!   newcomer instead of refusing it. A real handshake takes milliseconds, so it completes long
//!   before 64 newer connections push it out, while a flood only ever replaces its own
//!   connections. Only a flood of more than 64 / 2 s = 32 connections per second from loopback
//!   (or from 8 addresses) still refuses newcomers.
//!
//! Every connection closed before authentication is counted by reason and logged as a summary,
//! at most one line per reason every 10 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at};
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};

use super::connection;
use super::network::Shared;
use super::stats::{bump, InboundClose, Stats};
use super::tasks::Tasks;
use super::verifier::{self, peer_id_of};
use super::{CLIENT_HELLO_TIMEOUT, HANDSHAKE_TIMEOUT};
use crate::net::admission::{AdmittedAt, OnFull, Refusal, Slot, SlotLimits, Slots};
use crate::net::log_summary::{Line, WINDOW};

/// Handshakes in progress at once. Far above what a few hundred peers reconnecting together need.
pub(crate) const MAX_HANDSHAKES: usize = 64;
/// Handshakes in progress from one (non-loopback) address, or IPv6 /64.
pub(crate) const MAX_HANDSHAKES_PER_SOURCE: usize = 8;
/// A handshake younger than this is never closed for a newcomer.
pub(crate) const EVICT_AFTER: Duration = Duration::from_secs(2);
/// After an accept error (out of file descriptors, say), wait before accepting again rather
/// than spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// The log summary's key for accept errors.
const ACCEPT_ERROR: &str = "accept_error";

pub(crate) const SLOT_LIMITS: SlotLimits = SlotLimits {
    capacity: MAX_HANDSHAKES,
    per_source: Some(MAX_HANDSHAKES_PER_SOURCE),
    evict_after: EVICT_AFTER,
};

pub(crate) struct Listener {
    pub shared: Arc<Shared>,
    pub listener: TcpListener,
    pub acceptor: TlsAcceptor,
    pub tasks: Tasks,
    pub stop: watch::Receiver<bool>,
}

impl Listener {
    pub async fn run(mut self) {
        let slots = Slots::new(SLOT_LIMITS);
        let mut flush = tokio::time::interval(WINDOW);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = flush.tick() => {
                    for line in self.shared.stats.log.flush(Instant::now()) {
                        write_line(&line);
                    }
                    continue;
                }
                _ = self.stop.wait_for(|s| *s) => return,
            };
            match accepted {
                Ok((tcp, remote)) => {
                    let now = Instant::now();
                    let stats = &self.shared.stats;
                    let admitted = slots.admit(remote.ip(), AdmittedAt(now), now, OnFull::Replace);
                    let admitted = match admitted {
                        Ok(admitted) => admitted,
                        Err(refusal) => {
                            let reason = match refusal {
                                Refusal::SourceLimit => InboundClose::SourceLimit,
                                Refusal::Full { .. } | Refusal::Evicting => InboundClose::SlotsFull,
                            };
                            bump(&stats.handshake_failures);
                            closed(stats, reason, Some(remote.ip().to_string()));
                            continue;
                        }
                    };
                    if admitted.evicted {
                        // Its task sees the eviction and ends; it is counted here, once.
                        bump(&stats.handshake_failures);
                        closed(stats, InboundClose::Evicted, None);
                    }
                    let accepted = Accepted {
                        shared: self.shared.clone(),
                        acceptor: self.acceptor.clone(),
                        stop: self.stop.clone(),
                    };
                    self.tasks.spawn(accepted.run(tcp, remote, admitted.slot));
                }
                Err(e) => {
                    // Out of file descriptors lasts as long as the flood that caused it.
                    let line = self.shared.stats.log.record(
                        ACCEPT_ERROR,
                        Some(e.to_string()),
                        Instant::now(),
                    );
                    if let Some(line) = line {
                        write_line(&line);
                    }
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }
}

/// Counts a connection closed before authentication and logs it as part of a summary.
fn closed(stats: &Stats, reason: InboundClose, detail: Option<String>) {
    stats.closed(reason);
    if let Some(line) = stats.log.record(reason.as_str(), detail, Instant::now()) {
        write_line(&line);
    }
}

/// Writes one summary line (refusals by the verifiers share the summary; see `verifier.rs`).
pub(crate) fn write_line(line: &Line) {
    let (count, seconds) = (line.count, line.seconds());
    let detail = line.detail.as_deref().unwrap_or("");
    if line.reason == ACCEPT_ERROR {
        tracing::warn!(
            count,
            error = detail,
            "cannot accept peer connections ({count} failures in {seconds} s); pausing accepts briefly"
        );
        return;
    }
    let reason = InboundClose::ALL
        .into_iter()
        .find(|r| r.as_str() == line.reason);
    match reason {
        Some(InboundClose::SlotsFull) => tracing::warn!(
            count,
            latest_source = detail,
            "closed {count} inbound P2P connections in {seconds} s: handshake slots full \
             ({MAX_HANDSHAKES} handshakes in progress, none older than {EVICT_AFTER:?})"
        ),
        Some(InboundClose::SourceLimit) => tracing::warn!(
            count,
            latest_source = detail,
            "closed {count} inbound P2P connections in {seconds} s: their address already had \
             {MAX_HANDSHAKES_PER_SOURCE} handshakes in progress"
        ),
        Some(InboundClose::Evicted) => tracing::warn!(
            count,
            "closed {count} unauthenticated P2P connections in {seconds} s: handshake slots full, \
             the oldest handshakes made room for new connections"
        ),
        Some(InboundClose::ClientHelloTimeout) => tracing::info!(
            count,
            "closed {count} inbound P2P connections in {seconds} s: no TLS ClientHello within \
             {CLIENT_HELLO_TIMEOUT:?}"
        ),
        Some(InboundClose::HandshakeTimeout) => tracing::info!(
            count,
            "closed {count} inbound P2P connections in {seconds} s: TLS handshake and hello not \
             done within {HANDSHAKE_TIMEOUT:?}"
        ),
        Some(InboundClose::HandshakeError) => tracing::info!(
            count,
            latest_error = detail,
            "closed {count} inbound P2P connections in {seconds} s: not TLS, or a broken \
             handshake or hello"
        ),
        Some(InboundClose::Refused) | None => {
            verifier::write_refusal_line(line);
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
    #[error("no complete TLS ClientHello within {CLIENT_HELLO_TIMEOUT:?}")]
    ClientHelloTimeout,
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("the peer's certificate carries no Ed25519 key")]
    NoPeer,
    #[error("{0}")]
    Hello(#[from] connection::HelloError),
    #[error("no hello within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    #[error("closed to make room for a newer connection")]
    Evicted,
    #[error("the node is stopping")]
    Stopped,
}

impl Accepted {
    async fn run(mut self, tcp: TcpStream, remote: SocketAddr, slot: Slot<AdmittedAt>) {
        let _ = tcp.set_nodelay(true);
        let max_frame_bytes = self.shared.max_frame_bytes;
        let config = self.acceptor.config().clone();
        let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        let handshake = async {
            let lazy = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
            let start = timeout(CLIENT_HELLO_TIMEOUT, lazy)
                .await
                .map_err(|_| AcceptError::ClientHelloTimeout)?
                .map_err(AcceptError::Tls)?;
            let tls = start.into_stream(config).await.map_err(AcceptError::Tls)?;
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
        let established = tokio::select! {
            result = timeout_at(deadline, handshake) => result.unwrap_or(Err(AcceptError::Timeout)),
            _ = slot.evicted() => Err(AcceptError::Evicted),
            _ = self.stop.wait_for(|s| *s) => Err(AcceptError::Stopped),
        };
        drop(slot);
        let stats = &self.shared.stats;
        let reason = match established {
            Ok((peer, reader, writer)) => {
                let canonical = self.shared.is_canonical(peer, self.shared.local);
                connection::serve(self.shared, peer, canonical, reader, writer, self.stop).await;
                return;
            }
            // Counted where it was decided.
            Err(AcceptError::Evicted | AcceptError::Stopped) => return,
            Err(AcceptError::Tls(e)) if verifier::is_refusal(&e) => {
                // Counted and logged by the verifier.
                stats.closed(InboundClose::Refused);
                return;
            }
            Err(AcceptError::ClientHelloTimeout) => InboundClose::ClientHelloTimeout,
            Err(AcceptError::Timeout) => InboundClose::HandshakeTimeout,
            Err(ref e @ (AcceptError::Tls(_) | AcceptError::NoPeer | AcceptError::Hello(_))) => {
                tracing::debug!(%remote, error = %e, "inbound connection failed before it was usable");
                bump(&stats.handshake_failures);
                closed(stats, InboundClose::HandshakeError, Some(e.to_string()));
                return;
            }
        };
        bump(&stats.handshake_failures);
        tracing::debug!(%remote, reason = reason.as_str(), "inbound connection timed out before it was usable");
        closed(stats, reason, None);
    }
}
