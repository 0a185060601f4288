//! Counters of one node's network layer: shared by every task, read as a [`NetworkStats`]
//! snapshot (the node's metrics export them as `_total` counters).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::net::log_summary::LogSummary;

/// Why this node closed an inbound connection before the peer was authenticated (the `reason`
/// label of `enclave_node_p2p_inbound_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundClose {
    /// Every handshake slot taken by handshakes too young to be evicted: the newcomer closed.
    SlotsFull,
    /// Its address (not loopback) already had its share of handshakes in progress.
    SourceLimit,
    /// The oldest handshake in progress, closed to make room for a newcomer.
    Evicted,
    /// No complete TLS ClientHello in time.
    ClientHelloTimeout,
    /// TLS and the hello not done in time.
    HandshakeTimeout,
    /// Not TLS, a broken handshake, or no valid hello.
    HandshakeError,
    /// The verifier refused the peer's key (also in `handshake_refusals`).
    Refused,
}

impl InboundClose {
    pub const ALL: [InboundClose; 7] = [
        InboundClose::SlotsFull,
        InboundClose::SourceLimit,
        InboundClose::Evicted,
        InboundClose::ClientHelloTimeout,
        InboundClose::HandshakeTimeout,
        InboundClose::HandshakeError,
        InboundClose::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InboundClose::SlotsFull => "slots_full",
            InboundClose::SourceLimit => "source_limit",
            InboundClose::Evicted => "evicted",
            InboundClose::ClientHelloTimeout => "client_hello_timeout",
            InboundClose::HandshakeTimeout => "handshake_timeout",
            InboundClose::HandshakeError => "handshake_error",
            InboundClose::Refused => "refused",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A snapshot of the counters since [`super::start`]. Bytes count whole frames as sent on the
/// wire inside TLS (channel tag + payload, without the 4-byte length prefix).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Outgoing payloads not queued: peer not connected, not an oracle, queue full or too big.
    pub dropped_out: u64,
    /// Received frames not delivered: application frames on the bootstrap or from a peer outside
    /// the oracle set, or the consumer's receiver is gone.
    pub dropped_in: u64,
    /// TLS handshakes our verifiers refused: unknown key, not the peer we dialed, bad signature.
    pub handshake_refusals: u64,
    /// Connections that failed before they were usable for any other reason: not TLS, timeout,
    /// missing hello, the peer refused us, too many handshakes at once. A TCP connect that fails
    /// is not one (see `dials`).
    pub handshake_failures: u64,
    /// Connections closed because the peer sent a frame over `max_frame_bytes`.
    pub oversize_frames: u64,
    /// Connections closed because the peer broke the framing protocol (unknown channel, bad
    /// control message).
    pub protocol_errors: u64,
    /// Announcements refused (bad signature, peer outside the set, malformed, not from the
    /// announced peer itself).
    pub invalid_announcements: u64,
    /// Outgoing connection attempts (TCP connect started).
    pub dials: u64,
    /// Connections that completed TLS and the hello exchange (both directions).
    pub connects: u64,
    /// Established connections that ended (including duplicates closed).
    pub disconnects: u64,
    /// Established connections closed because another one to the same peer won.
    pub duplicates_closed: u64,
    /// Inbound connections closed before the peer was authenticated, by [`InboundClose`].
    pub inbound_closed: [u64; InboundClose::ALL.len()],
}

impl NetworkStats {
    pub fn inbound_closed(&self, reason: InboundClose) -> u64 {
        self.inbound_closed[reason.index()]
    }
}

#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub dropped_out: AtomicU64,
    pub dropped_in: AtomicU64,
    pub handshake_refusals: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub oversize_frames: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub invalid_announcements: AtomicU64,
    pub dials: AtomicU64,
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    pub duplicates_closed: AtomicU64,
    pub inbound_closed: [AtomicU64; InboundClose::ALL.len()],
    /// Summarises refusals and closed connections for the logs: anyone can cause them, so they
    /// must not get a line each.
    pub log: LogSummary,
}

/// Adds one; counters are statistics, so relaxed ordering is enough.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Stats {
    pub fn closed(&self, reason: InboundClose) {
        bump(&self.inbound_closed[reason.index()]);
    }

    pub fn snapshot(&self) -> NetworkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetworkStats {
            frames_in: get(&self.frames_in),
            bytes_in: get(&self.bytes_in),
            frames_out: get(&self.frames_out),
            bytes_out: get(&self.bytes_out),
            dropped_out: get(&self.dropped_out),
            dropped_in: get(&self.dropped_in),
            handshake_refusals: get(&self.handshake_refusals),
            handshake_failures: get(&self.handshake_failures),
            oversize_frames: get(&self.oversize_frames),
            protocol_errors: get(&self.protocol_errors),
            invalid_announcements: get(&self.invalid_announcements),
            dials: get(&self.dials),
            connects: get(&self.connects),
            disconnects: get(&self.disconnects),
            duplicates_closed: get(&self.duplicates_closed),
            inbound_closed: std::array::from_fn(|i| get(&self.inbound_closed[i])),
        }
    }
}
