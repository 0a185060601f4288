//! The consensus nodes' network (docs/design/consensus-and-p2p.md, ocr-and-sources.md A.3): every node talks
//! to the others over TCP with mutual TLS 1.3, one connection per peer pair carrying discovery
//! and application frames.
//!
//! - **Identity**: a node is its Ed25519 key ([`PeerId`]). Each start makes a throwaway
//!   self-signed certificate for that key; nothing but the key in it is looked at.
//! - **Who may connect**: the verifiers accept a certificate only if its key is one of the
//!   configured oracles (or the bootstrap), and a dialer only if it is the peer it dialed; the
//!   TLS 1.3 handshake signature proves the key is held. Anyone else fails the handshake before a
//!   single frame is read (`handshake_refusals`).
//! - **Frames**: u32 length-delimited, at most `max_frame_bytes`; a bigger one ends that
//!   connection (`oversize_frames`). The first byte of a frame is its channel: control (hello,
//!   keepalive), discovery or application.
//! - **Who dials**: oracles dial the bootstrap; between oracles the one with the lower key bytes
//!   dials and the other accepts; the bootstrap never dials. Should both directions connect, the
//!   one dialed by the lower key stays. Lost connections are redialed with exponential backoff and
//!   jitter.
//! - **Discovery**: node 1, the bootstrap, takes no part in consensus. Each oracle sends it a
//!   signed announcement of its addresses (counter = start time in ms, so a restart supersedes);
//!   the bootstrap keeps the newest per oracle and relays all of them to every oracle, which
//!   checks each signature and dials the peers it should at the announced address. Peers with a
//!   static address are dialed there without waiting for an announcement.
//! - **Unauthenticated connections** cannot take the room the configured peers need: handshakes
//!   in progress are limited (64, at most 8 per non-loopback address) and time-bounded (the
//!   ClientHello within 3 s, everything within 10 s); when all slots are taken, the oldest
//!   handshake makes room for the newcomer (see `listener.rs`). What anyone can cause is logged
//!   as a summary at most every 10 s per reason and counted (`inbound_closed`).
//! - **Backpressure**: `send` never waits (bounded per-peer queue, drop + count when full);
//!   received application frames wait for room in the bounded inbound channel, which stalls
//!   only that connection's reads.

mod announcement;
mod config;
mod connection;
mod dialer;
mod error;
mod frame;
mod handle;
mod listener;
pub mod metrics;
mod network;
mod stats;
mod tasks;
#[cfg(test)]
mod test_keys;
mod tls;
mod verifier;

use std::time::Duration;

pub use announcement::AnnouncementError;
pub use config::{
    NetworkConfig, DEFAULT_MAX_FRAME_BYTES, DEFAULT_RECONNECT_MAX, DEFAULT_RECONNECT_MIN,
    DEFAULT_SEND_QUEUE,
};
pub use error::P2pError;
pub use handle::{start, Inbound, NetworkHandle};
pub use stats::{InboundClose, NetworkStats};
pub use verifier::Gate;

pub use crate::keys::peer_id::PeerId;

/// TCP connect, TLS handshake and hello together must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An accepted connection must have sent its whole TLS ClientHello within this (a real dialer
/// sends it right after connecting).
const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// Received application payloads waiting for the consumer (all peers together).
const INBOUND_CAPACITY: usize = 1024;
