//! The state every task of a node shares: the connection table (one live connection per peer),
//! the announcements known, and what to do with a received discovery or application frame.
//!
//! The table's lock is a std mutex held only for map operations and `try_send`s, never across an
//! await.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Notify};

use super::announcement::Announcement;
use super::config::NetworkConfig;
use super::frame::{self, Channel};
use super::stats::{bump, Stats};
use super::Inbound;
use crate::keys::peer_id::PeerId;

pub(crate) enum Role {
    /// Relays announcements, never dials, takes no application traffic.
    Bootstrap,
    Oracle {
        bootstrap: PeerId,
        announcement: Announcement,
    },
}

pub(crate) struct Shared {
    pub local: PeerId,
    pub role: Role,
    /// The oracle set without this node.
    pub oracles: HashSet<PeerId>,
    pub stats: Arc<Stats>,
    pub inbound: mpsc::Sender<Inbound>,
    pub max_frame_bytes: usize,
    send_queue: usize,
    /// The peers this node dials, with where to reach them.
    pub dial_targets: HashMap<PeerId, DialTarget>,
    table: Mutex<Table>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Table {
    connections: HashMap<PeerId, Entry>,
    /// Newest valid announcement per peer (the bootstrap's relay set; an oracle's view).
    announcements: HashMap<PeerId, Announcement>,
}

struct Entry {
    id: u64,
    /// Dialed by the side that should dial (see [`Shared::is_canonical`]).
    canonical: bool,
    /// The only sender of the connection's queue: dropping it (when the entry leaves the table)
    /// tells the connection's writer to finish and close.
    app: mpsc::Sender<Bytes>,
    outbox: Arc<Outbox>,
}

/// A peer this node dials. The feed lives here, not in the dialer, so that it stays open for
/// as long as the dialer runs (a closed feed ends the dialer).
pub(crate) struct DialTarget {
    pub addresses: watch::Sender<Vec<String>>,
    /// Its addresses come from announcements (else: a static address, or the bootstrap's).
    pub discovered: bool,
}

/// Discovery frames waiting for one connection, at most one per announced peer: a newer
/// announcement replaces an unsent older one, so a slow connection holds at most one frame per
/// peer however often announcements change.
#[derive(Default)]
pub(crate) struct Outbox {
    pending: Mutex<BTreeMap<PeerId, Bytes>>,
    pub notify: Notify,
}

impl Outbox {
    fn put(&self, about: PeerId, frame: Bytes) {
        lock(&self.pending).insert(about, frame);
        self.notify.notify_one();
    }

    pub fn take(&self) -> Vec<Bytes> {
        std::mem::take(&mut *lock(&self.pending))
            .into_values()
            .collect()
    }
}

/// What a connection gets when it enters the table.
pub(crate) struct Registration {
    pub id: u64,
    pub app: mpsc::Receiver<Bytes>,
    pub outbox: Arc<Outbox>,
}

/// A poisoned lock only means another task panicked mid-update of plain maps; carry on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(
        local: PeerId,
        role: Role,
        oracles: HashSet<PeerId>,
        stats: Arc<Stats>,
        inbound: mpsc::Sender<Inbound>,
        config: &NetworkConfig,
        dial_targets: HashMap<PeerId, DialTarget>,
    ) -> Self {
        Self {
            local,
            role,
            oracles,
            stats,
            inbound,
            max_frame_bytes: config.max_frame_bytes,
            send_queue: config.send_queue,
            dial_targets,
            table: Mutex::new(Table::default()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Whether `dialer` is the side that should dial `acceptor`: oracles dial the bootstrap,
    /// and between oracles the lower id dials.
    pub fn is_canonical(&self, dialer: PeerId, acceptor: PeerId) -> bool {
        let is_bootstrap = |p: PeerId| match &self.role {
            Role::Bootstrap => p == self.local,
            Role::Oracle { bootstrap, .. } => p == *bootstrap,
        };
        is_bootstrap(acceptor) || (!is_bootstrap(dialer) && dialer < acceptor)
    }

    /// Enters an established connection. A connection dialed by the canonical side replaces any
    /// other (a peer that dials again has lost its previous connection, even if we have not
    /// noticed yet); a non-canonical one only fills an empty slot or replaces another
    /// non-canonical one. `None`: refused as a duplicate.
    pub fn register(&self, peer: PeerId, canonical: bool) -> Option<Registration> {
        let (tx, rx) = mpsc::channel(self.send_queue);
        let outbox = Arc::new(Outbox::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut table = lock(&self.table);
        if let Some(existing) = table.connections.get(&peer) {
            if existing.canonical && !canonical {
                bump(&self.stats.duplicates_closed);
                tracing::debug!(peer = %peer.short(), "closing a second connection, the one dialed by the lower id stays");
                return None;
            }
            bump(&self.stats.duplicates_closed);
            tracing::debug!(peer = %peer.short(), "a new connection replaces the previous one");
        }
        table.connections.insert(
            peer,
            Entry {
                id,
                canonical,
                app: tx,
                outbox: outbox.clone(),
            },
        );
        bump(&self.stats.connects);
        match &self.role {
            Role::Bootstrap => {
                for (about, ann) in &table.announcements {
                    if *about != peer {
                        outbox.put(*about, announcement_frame(ann));
                    }
                }
            }
            Role::Oracle {
                bootstrap,
                announcement,
            } if *bootstrap == peer => {
                outbox.put(self.local, announcement_frame(announcement));
            }
            Role::Oracle { .. } => {}
        }
        Some(Registration {
            id,
            app: rx,
            outbox,
        })
    }

    /// Removes connection `id` of `peer` if it is still the one in the table.
    pub fn unregister(&self, peer: PeerId, id: u64) {
        let mut table = lock(&self.table);
        if table.connections.get(&peer).is_some_and(|e| e.id == id) {
            table.connections.remove(&peer);
        }
    }

    /// Closes the connection to `peer` (its writer sees its queue end).
    pub fn disconnect(&self, peer: PeerId) {
        if lock(&self.table).connections.remove(&peer).is_some() {
            tracing::info!(peer = %peer.short(), "closed the connection to a peer that is no longer admitted");
        }
    }

    /// Closes every connection (their writers see their queue end).
    pub fn close_all(&self) {
        lock(&self.table).connections.clear();
    }

    pub fn connected(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = lock(&self.table).connections.keys().copied().collect();
        peers.sort();
        peers
    }

    /// Queues an application payload for an oracle peer, or counts it dropped.
    pub fn send(&self, to: PeerId, payload: &Bytes) {
        if !self.sends_application() || !self.fits(payload) || !self.oracles.contains(&to) {
            bump(&self.stats.dropped_out);
            return;
        }
        let frame = frame::encode(Channel::Application, payload);
        let table = lock(&self.table);
        self.queue(&table, to, frame);
    }

    pub fn broadcast(&self, payload: &Bytes) {
        if !self.sends_application() || !self.fits(payload) {
            bump(&self.stats.dropped_out);
            return;
        }
        let frame = frame::encode(Channel::Application, payload);
        let table = lock(&self.table);
        for peer in &self.oracles {
            self.queue(&table, *peer, frame.clone());
        }
    }

    /// The bootstrap takes no part in consensus: it neither sends nor takes application frames.
    fn sends_application(&self) -> bool {
        matches!(self.role, Role::Oracle { .. })
    }

    fn fits(&self, payload: &Bytes) -> bool {
        let fits = payload.len() < self.max_frame_bytes;
        if !fits {
            tracing::warn!(
                bytes = payload.len(),
                max = self.max_frame_bytes,
                "dropping an outgoing payload over the frame limit"
            );
        }
        fits
    }

    fn queue(&self, table: &Table, to: PeerId, frame: Bytes) {
        let queued = table
            .connections
            .get(&to)
            .is_some_and(|entry| entry.app.try_send(frame).is_ok());
        if !queued {
            bump(&self.stats.dropped_out);
        }
    }

    /// Whether an application frame from `from` goes to the consumer.
    pub fn delivers_from(&self, from: PeerId) -> bool {
        matches!(self.role, Role::Oracle { .. }) && self.oracles.contains(&from)
    }

    /// A discovery frame from `from`. Bad announcements are counted and ignored; they never
    /// close the connection (a peer relaying a stale or foreign one is not misbehaving badly
    /// enough to lose all its traffic).
    pub fn on_discovery(&self, from: PeerId, payload: &[u8]) {
        let ann = match Announcement::decode(payload) {
            // Our own, relayed back: nothing to learn.
            Ok(ann) if ann.peer == self.local => return,
            Ok(ann) => ann,
            Err(e) => return self.invalid_announcement(from, &e),
        };
        if let Err(e) = ann.verify(|p| self.oracles.contains(p)) {
            return self.invalid_announcement(from, &e);
        }
        match &self.role {
            // Each oracle speaks for itself only: a relay by anyone else adds nothing.
            Role::Bootstrap if ann.peer != from => {
                self.invalid_announcement(from, &"not sent by the peer it announces")
            }
            Role::Bootstrap => self.relay(ann),
            Role::Oracle { bootstrap, .. } if from != *bootstrap => {
                self.invalid_announcement(from, &"not relayed by the bootstrap")
            }
            Role::Oracle { .. } => self.learn(ann),
        }
    }

    fn invalid_announcement(&self, from: PeerId, error: &dyn std::fmt::Display) {
        bump(&self.stats.invalid_announcements);
        tracing::warn!(from = %from.short(), %error, "ignoring an announcement");
    }

    /// Bootstrap: keep the newest announcement of a peer and pass it to every other connection.
    fn relay(&self, ann: Announcement) {
        let mut table = lock(&self.table);
        if !newer(&table.announcements, &ann) {
            return;
        }
        tracing::info!(peer = %ann.peer.short(), addrs = ?ann.addrs, counter = ann.counter, "peer announced its addresses");
        let frame = announcement_frame(&ann);
        for (peer, entry) in &table.connections {
            if *peer != ann.peer {
                entry.outbox.put(ann.peer, frame.clone());
            }
        }
        table.announcements.insert(ann.peer, ann);
    }

    /// Oracle: remember a peer's newest addresses and hand them to its dialer, if we dial it.
    fn learn(&self, ann: Announcement) {
        let mut table = lock(&self.table);
        if !newer(&table.announcements, &ann) {
            return;
        }
        match self.dial_targets.get(&ann.peer) {
            Some(target) if target.discovered => {
                tracing::info!(peer = %ann.peer.short(), addrs = ?ann.addrs, "discovered a peer's addresses");
                target.addresses.send_replace(ann.addrs.clone());
            }
            _ => {}
        }
        table.announcements.insert(ann.peer, ann);
    }
}

fn newer(known: &HashMap<PeerId, Announcement>, ann: &Announcement) -> bool {
    known.get(&ann.peer).is_none_or(|k| ann.counter > k.counter)
}

fn announcement_frame(ann: &Announcement) -> Bytes {
    frame::encode(Channel::Discovery, &ann.encode())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::node::p2p::test_keys::{id, key};

    fn announcement(seed: u8, port: u16, counter: u64) -> Announcement {
        Announcement::sign(&key(seed), vec![format!("127.0.0.1:{port}")], counter).expect("sign")
    }

    fn shared(local: u8, role: Role, oracles: &[u8], dial: &[u8]) -> Shared {
        let config = NetworkConfig::new(
            key(local),
            "127.0.0.1:0".parse().expect("addr"),
            None,
            vec![],
        );
        let dial_targets = dial
            .iter()
            .map(|s| {
                let target = DialTarget {
                    addresses: watch::Sender::new(Vec::new()),
                    discovered: true,
                };
                (id(*s), target)
            })
            .collect();
        Shared::new(
            id(local),
            role,
            oracles
                .iter()
                .filter(|s| **s != local)
                .map(|s| id(*s))
                .collect(),
            Arc::new(Stats::default()),
            mpsc::channel(1).0,
            &config,
            dial_targets,
        )
    }

    fn decoded(frames: Vec<Bytes>) -> Vec<Announcement> {
        frames
            .into_iter()
            .map(|f| {
                let (channel, payload) = frame::decode(f).expect("frame");
                assert_eq!(channel, Channel::Discovery);
                Announcement::decode(&payload).expect("announcement")
            })
            .collect()
    }

    fn invalid(s: &Shared) -> u64 {
        s.stats.invalid_announcements.load(Ordering::Relaxed)
    }

    #[test]
    fn the_bootstrap_relays_the_newest_announcement_of_each_oracle_to_the_others() {
        let boot = shared(9, Role::Bootstrap, &[1, 2, 3], &[]);
        let one = boot.register(id(1), true).expect("registered");
        let two = boot.register(id(2), true).expect("registered");

        boot.on_discovery(id(1), &announcement(1, 1001, 10).encode());
        assert_eq!(decoded(two.outbox.take()), vec![announcement(1, 1001, 10)]);
        assert!(one.outbox.take().is_empty(), "not echoed to its sender");

        // An older one (a replay of a previous run) changes nothing; a newer one replaces it.
        boot.on_discovery(id(1), &announcement(1, 1000, 9).encode());
        assert!(two.outbox.take().is_empty());
        boot.on_discovery(id(1), &announcement(1, 1002, 11).encode());
        assert_eq!(decoded(two.outbox.take()), vec![announcement(1, 1002, 11)]);

        // Someone else's announcement, even validly signed, is not accepted from oracle 2.
        boot.on_discovery(id(2), &announcement(1, 6666, 99).encode());
        // Nor a peer outside the set, nor garbage.
        let outsider = id(7);
        boot.on_discovery(outsider, &announcement(7, 7777, 1).encode());
        boot.on_discovery(id(2), b"\x01garbage");
        assert_eq!(invalid(&boot), 3);
        assert!(one.outbox.take().is_empty());

        // A later connection gets everything known so far, except its own.
        boot.on_discovery(id(2), &announcement(2, 2002, 20).encode());
        let three = boot.register(id(3), true).expect("registered");
        let mut got = decoded(three.outbox.take());
        got.sort_by_key(|a| a.counter);
        assert_eq!(
            got,
            vec![announcement(1, 1002, 11), announcement(2, 2002, 20)]
        );
    }

    #[test]
    fn an_oracle_learns_addresses_only_from_the_bootstrap_and_feeds_its_dialers() {
        let role = Role::Oracle {
            bootstrap: id(9),
            announcement: announcement(1, 1001, 10),
        };
        // Oracle 1 dials oracle 2 (at a discovered address).
        let oracle = shared(1, role, &[1, 2, 3], &[2]);
        let mut feed = oracle.dial_targets[&id(2)].addresses.subscribe();
        let to_bootstrap = oracle.register(id(9), true).expect("registered");
        assert_eq!(
            decoded(to_bootstrap.outbox.take()),
            vec![announcement(1, 1001, 10)],
            "announces itself on connecting to the bootstrap"
        );

        oracle.on_discovery(id(3), &announcement(2, 2002, 20).encode());
        assert_eq!(invalid(&oracle), 1, "only the bootstrap relays");
        assert!(!feed.has_changed().expect("open"));

        oracle.on_discovery(id(9), &announcement(2, 2002, 20).encode());
        assert!(feed.has_changed().expect("open"));
        assert_eq!(*feed.borrow_and_update(), vec!["127.0.0.1:2002".to_owned()]);
        oracle.on_discovery(id(9), &announcement(2, 2001, 19).encode());
        assert!(
            !feed.has_changed().expect("open"),
            "older announcement ignored"
        );

        let mut tampered = announcement(2, 2003, 21);
        tampered.addrs[0] = "10.6.6.6:2003".into();
        oracle.on_discovery(id(9), &tampered.encode());
        assert_eq!(invalid(&oracle), 2);
        assert!(!feed.has_changed().expect("open"));
    }

    #[test]
    fn the_lower_id_dials_and_its_connection_wins() {
        let (low, high) = if id(1) < id(2) { (1, 2) } else { (2, 1) };
        let role = Role::Oracle {
            bootstrap: id(9),
            announcement: announcement(low, 1001, 10),
        };
        let node = shared(low, role, &[1, 2], &[]);
        assert!(node.is_canonical(id(low), id(high)));
        assert!(!node.is_canonical(id(high), id(low)));
        assert!(
            node.is_canonical(id(low), id(9)),
            "oracles dial the bootstrap"
        );
        assert!(node.is_canonical(id(high), id(9)));
        assert!(
            !node.is_canonical(id(9), id(low)),
            "the bootstrap never dials"
        );

        // A connection the higher id dialed fills an empty slot...
        let mut reverse = node.register(id(high), false).expect("registered");
        // ...but gives way to the canonical one, which closes it (its queue ends).
        let canonical = node.register(id(high), true).expect("registered");
        assert!(reverse.app.try_recv().is_err());
        assert!(matches!(
            reverse.app.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        // A second non-canonical one is refused while the canonical one stands.
        assert!(node.register(id(high), false).is_none());
        // Its stale unregistration does not remove the winner.
        node.unregister(id(high), reverse.id);
        assert_eq!(node.connected(), vec![id(high)]);
        node.unregister(id(high), canonical.id);
        assert!(node.connected().is_empty());
        assert_eq!(node.stats.duplicates_closed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn sends_are_dropped_when_not_connected_full_or_not_for_an_oracle() {
        let role = Role::Oracle {
            bootstrap: id(9),
            announcement: announcement(1, 1001, 10),
        };
        let node = shared(1, role, &[1, 2], &[]);
        let dropped = || node.stats.dropped_out.load(Ordering::Relaxed);
        node.send(id(2), &Bytes::from_static(b"x"));
        assert_eq!(dropped(), 1, "not connected");
        let mut conn = node.register(id(2), true).expect("registered");
        node.register(id(9), true).expect("registered");
        node.send(id(9), &Bytes::from_static(b"x"));
        assert_eq!(dropped(), 2, "the bootstrap takes no application frames");
        for _ in 0..crate::node::p2p::DEFAULT_SEND_QUEUE {
            node.send(id(2), &Bytes::from_static(b"x"));
        }
        assert_eq!(dropped(), 2);
        node.broadcast(&Bytes::from_static(b"x"));
        assert_eq!(dropped(), 3, "queue full");
        node.send(id(2), &Bytes::from(vec![0u8; node.max_frame_bytes]));
        assert_eq!(dropped(), 4, "over the frame limit with its channel byte");
        let frame = conn.app.try_recv().expect("queued");
        assert_eq!(
            frame::decode(frame).expect("frame"),
            (Channel::Application, Bytes::from_static(b"x"))
        );

        let boot = shared(9, Role::Bootstrap, &[1, 2], &[]);
        boot.register(id(1), true).expect("registered");
        boot.broadcast(&Bytes::from_static(b"x"));
        boot.send(id(1), &Bytes::from_static(b"x"));
        assert_eq!(boot.stats.dropped_out.load(Ordering::Relaxed), 2);
    }
}
