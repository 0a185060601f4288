use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::verifier::Gate;
use crate::keys::peer_id::PeerId;

pub const DEFAULT_MAX_FRAME_BYTES: usize = 1 << 20;
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(200);
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(10);
pub const DEFAULT_SEND_QUEUE: usize = 256;

/// Everything a node's network layer needs; see the module documentation for the behaviour.
#[derive(Clone)]
pub struct NetworkConfig {
    /// The node's P2P key; its public half is the node's [`PeerId`].
    pub identity: SigningKey,
    /// Where to accept peers (port 0: any free port, see [`super::NetworkHandle::listen_addr`]).
    pub listen: SocketAddr,
    /// `host:port` addresses other nodes should dial (at most 10); empty: the bound listen
    /// address. Ignored on the bootstrap, which only ever accepts.
    pub announce: Vec<String>,
    /// `None` makes this node the bootstrap; otherwise the bootstrap's key and `host:port`.
    pub bootstrap: Option<(PeerId, String)>,
    /// The oracle set (may include this node, which is ignored).
    pub peers: Vec<PeerId>,
    /// Peers dialed at a fixed `host:port`; their announcements are then not needed.
    pub static_addresses: HashMap<PeerId, String>,
    /// Asked at every handshake whether a peer of the set is admitted right now (a DON across
    /// enclaves: its member's attestation verifies); `None`: every peer of the set is.
    pub admitted: Option<Gate>,
    /// Largest frame (channel byte + payload) sent or accepted; a peer sending more is
    /// disconnected.
    pub max_frame_bytes: usize,
    /// Reconnection backoff: the first retry waits about `reconnect_min`, doubling up to
    /// `reconnect_max`, each with jitter.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Outgoing frames queued per peer before [`super::NetworkHandle::send`] drops.
    pub send_queue: usize,
}

impl NetworkConfig {
    /// A configuration with the defaults (1 MiB frames, 200 ms..10 s backoff, 256 frames per
    /// peer), no static addresses and announcing the listen address.
    pub fn new(
        identity: SigningKey,
        listen: SocketAddr,
        bootstrap: Option<(PeerId, String)>,
        peers: Vec<PeerId>,
    ) -> Self {
        Self {
            identity,
            listen,
            announce: Vec::new(),
            bootstrap,
            peers,
            static_addresses: HashMap::new(),
            admitted: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            send_queue: DEFAULT_SEND_QUEUE,
        }
    }
}

impl std::fmt::Debug for NetworkConfig {
    /// Without the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkConfig")
            .field("peer_id", &PeerId(self.identity.verifying_key().to_bytes()))
            .field("listen", &self.listen)
            .field("announce", &self.announce)
            .field("bootstrap", &self.bootstrap)
            .field("peers", &self.peers)
            .field("static_addresses", &self.static_addresses)
            .field("admitted", &self.admitted.as_ref().map(|_| "gate"))
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("send_queue", &self.send_queue)
            .finish()
    }
}
