//! Starting a node's network and the handle the rest of the node uses.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::announcement::{check_address, Announcement};
use super::config::NetworkConfig;
use super::dialer::Dialer;
use super::error::P2pError;
use super::frame::MIN_FRAME_BYTES;
use super::listener::Listener;
use super::network::{DialTarget, Role, Shared};
use super::stats::{NetworkStats, Stats};
use super::tasks::Tasks;
use super::tls::{self, TlsIdentity};
use super::verifier::Allowed;
use super::INBOUND_CAPACITY;
use crate::backoff::Backoff;
use crate::keys::peer_id::PeerId;

/// How long [`NetworkHandle::shutdown`] waits for connections to close.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// An application payload received from an oracle peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub from: PeerId,
    pub payload: Bytes,
}

/// The running network of a node. Clones share it; it stops when [`Self::shutdown`] is called or
/// the last clone is dropped.
#[derive(Clone)]
pub struct NetworkHandle {
    shared: Arc<Shared>,
    control: Arc<Control>,
}

struct Control {
    stop: watch::Sender<bool>,
    all_done: Mutex<Option<mpsc::Receiver<()>>>,
    listen_addr: SocketAddr,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl NetworkHandle {
    /// Queues `payload` for oracle `to`. Never waits: dropped (and counted) if `to` is not a
    /// connected oracle, its queue is full, or the payload exceeds the frame limit.
    pub fn send(&self, to: PeerId, payload: Bytes) {
        self.shared.send(to, &payload);
    }

    /// [`Self::send`] to every oracle of the set except this node (never the bootstrap).
    pub fn broadcast(&self, payload: Bytes) {
        self.shared.broadcast(&payload);
    }

    /// Closes the connection to `peer`, if there is one (a DON member that is no longer
    /// admitted); whoever dials next goes through the handshake's checks again.
    pub fn disconnect(&self, peer: PeerId) {
        self.shared.disconnect(peer);
    }

    /// Peers with an established connection, sorted; on an oracle this includes the bootstrap.
    pub fn connected(&self) -> Vec<PeerId> {
        self.shared.connected()
    }

    pub fn stats(&self) -> NetworkStats {
        self.shared.stats.snapshot()
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.shared.local
    }

    /// The address actually bound (the port when `listen` asked for port 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.control.listen_addr
    }

    /// Stops accepting and dialing, closes every connection (TLS close, so peers see an orderly
    /// end) and waits, at most a few seconds, for all of it to finish.
    pub async fn shutdown(self) {
        let _ = self.control.stop.send(true);
        self.shared.close_all();
        let all_done = match self.control.all_done.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(mut all_done) = all_done {
            if tokio::time::timeout(SHUTDOWN_TIMEOUT, all_done.recv())
                .await
                .is_err()
            {
                tracing::warn!("P2P connections did not close before the shutdown timeout");
            }
        }
        tracing::info!(peer = %self.shared.local.short(), "P2P network stopped");
    }
}

/// Binds the listen address, then starts accepting and (on an oracle) dialing in the background.
/// Must be called inside a tokio runtime.
pub async fn start(
    config: NetworkConfig,
) -> Result<(NetworkHandle, mpsc::Receiver<Inbound>), P2pError> {
    validate(&config)?;
    // Each redial waits a random share of its step (the upper half), so peers that lost each
    // other at the same moment do not redial in step.
    let reconnect = Backoff::new(config.reconnect_min, config.reconnect_max, RECONNECT_JITTER)
        .map_err(|e| P2pError::Config(format!("reconnect backoff: {e}")))?;
    let local = PeerId(config.identity.verifying_key().to_bytes());
    let oracles: HashSet<PeerId> = config
        .peers
        .iter()
        .copied()
        .filter(|p| *p != local)
        .collect();
    let mut allowed = oracles.clone();
    if let Some((bootstrap, _)) = &config.bootstrap {
        allowed.insert(*bootstrap);
        if !config.peers.contains(&local) {
            tracing::warn!(peer = %local.short(), "this oracle is not in its own peer set; the others will refuse it");
        }
    }
    let allowed = Allowed::new(allowed, config.admitted.clone());

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| P2pError::Bind {
            addr: config.listen,
            source,
        })?;
    let listen_addr = listener.local_addr().map_err(|source| P2pError::Bind {
        addr: config.listen,
        source,
    })?;

    let role = match &config.bootstrap {
        None => Role::Bootstrap,
        Some((bootstrap, _)) => {
            let addrs = if config.announce.is_empty() {
                if listen_addr.ip().is_unspecified() {
                    tracing::warn!(%listen_addr, "announcing an unspecified address; peers on other hosts need `announce`");
                }
                vec![listen_addr.to_string()]
            } else {
                config.announce.clone()
            };
            // Unix time in ms: a restart announces a higher counter than the previous run did.
            let counter = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default();
            Role::Oracle {
                bootstrap: *bootstrap,
                announcement: Announcement::sign(&config.identity, addrs, counter)?,
            }
        }
    };

    let stats = Arc::new(Stats::default());
    let identity = TlsIdentity::new(&config.identity)?;
    let server_config = tls::server_config(&identity, allowed.clone(), stats.clone())?;

    // Oracles dial the bootstrap and every higher oracle; the bootstrap dials nobody.
    let mut dial_targets = HashMap::new();
    if let Some((bootstrap, address)) = &config.bootstrap {
        let fixed = |address: &String| DialTarget {
            addresses: watch::Sender::new(vec![address.clone()]),
            discovered: false,
        };
        dial_targets.insert(*bootstrap, fixed(address));
        for peer in oracles.iter().filter(|p| local < **p) {
            let target = match config.static_addresses.get(peer) {
                Some(address) => fixed(address),
                None => DialTarget {
                    addresses: watch::Sender::new(Vec::new()),
                    discovered: true,
                },
            };
            dial_targets.insert(*peer, target);
        }
    }

    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
    let shared = Arc::new(Shared::new(
        local,
        role,
        oracles,
        stats.clone(),
        inbound_tx,
        &config,
        dial_targets,
    ));
    let (stop_tx, stop) = watch::channel(false);
    let (tasks, all_done) = Tasks::new();

    // Everything that can fail comes before the first spawn, so an error leaves nothing running.
    let mut dialers = Vec::with_capacity(shared.dial_targets.len());
    for (target, feed) in &shared.dial_targets {
        let client_config = tls::client_config(&identity, *target, allowed.clone(), stats.clone())?;
        dialers.push(Dialer {
            shared: shared.clone(),
            target: *target,
            addresses: feed.addresses.subscribe(),
            connector: TlsConnector::from(client_config),
            backoff: reconnect.attempts(),
            stop: stop.clone(),
        });
    }
    tasks.spawn(
        Listener {
            shared: shared.clone(),
            listener,
            acceptor: TlsAcceptor::from(server_config),
            tasks: tasks.clone(),
            stop: stop.clone(),
        }
        .run(),
    );
    for dialer in dialers {
        tasks.spawn(dialer.run());
    }
    drop(tasks);

    tracing::info!(
        peer = %local.short(),
        %listen_addr,
        role = if config.bootstrap.is_none() { "bootstrap" } else { "oracle" },
        oracles = shared.oracles.len(),
        "P2P network started"
    );
    let handle = NetworkHandle {
        shared,
        control: Arc::new(Control {
            stop: stop_tx,
            all_done: Mutex::new(Some(all_done)),
            listen_addr,
        }),
    };
    Ok((handle, inbound_rx))
}

/// The share of a redial's step left to chance.
const RECONNECT_JITTER: f64 = 0.5;

fn validate(config: &NetworkConfig) -> Result<(), P2pError> {
    let bad = |what: String| Err(P2pError::Config(what));
    let local = PeerId(config.identity.verifying_key().to_bytes());
    if config.max_frame_bytes < MIN_FRAME_BYTES || config.max_frame_bytes > u32::MAX as usize {
        return bad(format!(
            "max_frame_bytes must be {MIN_FRAME_BYTES}..{}, got {}",
            u32::MAX,
            config.max_frame_bytes
        ));
    }
    if config.send_queue == 0 {
        return bad("send_queue must be at least 1".into());
    }
    if let Some((bootstrap, address)) = &config.bootstrap {
        if *bootstrap == local {
            return bad("the bootstrap's key is this node's own key".into());
        }
        if config.peers.contains(bootstrap) {
            return bad(format!(
                "the bootstrap {} is also listed as an oracle",
                bootstrap.short()
            ));
        }
        check_address(address)?;
    }
    for (peer, address) in &config.static_addresses {
        check_address(address)?;
        if !config.peers.contains(peer) {
            return bad(format!(
                "static address for {}, which is not in the peer set",
                peer.short()
            ));
        }
    }
    Ok(())
}
