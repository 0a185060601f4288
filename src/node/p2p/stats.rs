//! Counters of one node's network layer: shared by every task, read as a [`NetworkStats`]
//! snapshot (the node's metrics export them as `_total` counters).

use std::sync::atomic::{AtomicU64, Ordering};

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
}

/// Adds one; counters are statistics, so relaxed ordering is enough.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Stats {
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
        }
    }
}
