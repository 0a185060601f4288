//! The node's part in a DON across enclaves, as tasks: wait until every other member is admitted
//! (the oracle set is complete only then), then keep the P2P gate in step with the admitted
//! documents: a member the supervisor refuses is disconnected and refused at every handshake
//! until it is admitted again; a member admitted with new keys that stay (twice the re-check
//! period) stops the node, which the supervisor restarts with the new set (node 1 then puts it
//! on the contracts). Until then its new keys are not in the set, so they are not admitted. Decisions are in
//! [`super::members`].

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::members::{AdmittedKeys, DonView, Members, NewKeys};
use crate::config::Config;
use crate::keys::peer_id::PeerId;
use crate::keys::KeyStore;
use crate::node::p2p::{Gate, NetworkHandle};
use crate::node::runtime::error::NodeError;

/// How often the admitted documents are read again.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// A member's new keys must stay at least this long before the node restarts with them.
const SETTLE_MIN: Duration = Duration::from_secs(30);
/// While waiting, the same list of missing members is logged again this often.
const WAITING_REPEAT: Duration = Duration::from_secs(60);

/// Reads the admitted documents off the async threads (they are small, but files all the same).
async fn read(members: &Members) -> AdmittedKeys {
    let members = members.clone();
    tokio::task::spawn_blocking(move || members.read_admitted())
        .await
        .unwrap_or_default()
}

/// Waits until every other member is admitted and returns the view, or `None` when `stop`
/// resolves first.
pub async fn wait_for_members(
    members: &Members,
    keys: &KeyStore,
    config: &Config,
    mut stop: impl Future<Output = ()> + Unpin,
) -> Result<Option<DonView>, NodeError> {
    let mut logged: Option<(Vec<String>, Instant)> = None;
    loop {
        let admitted = read(members).await;
        if let Some(view) = members.assemble(keys, config, &admitted)? {
            tracing::info!(
                member = %members.me,
                "every member of the DON is admitted; starting with their keys"
            );
            return Ok(Some(view));
        }
        let missing = members.missing(&admitted);
        let repeat = logged
            .as_ref()
            .is_none_or(|(last, at)| *last != missing || at.elapsed() >= WAITING_REPEAT);
        if repeat {
            tracing::info!(
                member = %members.me,
                waiting_for = %missing.join(", "),
                "waiting for the other members of the DON to be admitted by attestation"
            );
            logged = Some((missing, Instant::now()));
        }
        tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = &mut stop => return Ok(None),
        }
    }
}

/// The peers admitted right now, shared by the P2P gate and [`watch_members`].
#[derive(Clone, Default)]
pub struct AdmittedPeers(Arc<RwLock<HashSet<PeerId>>>);

impl AdmittedPeers {
    pub fn new(peers: HashSet<PeerId>) -> Self {
        Self(Arc::new(RwLock::new(peers)))
    }

    pub fn gate(&self) -> Gate {
        let peers = self.0.clone();
        Arc::new(move |peer: &PeerId| {
            peers
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(peer)
        })
    }

    /// Replaces the set; returns the peers that were admitted and no longer are.
    fn replace(&self, now: HashSet<PeerId>) -> Vec<PeerId> {
        let mut peers = self.0.write().unwrap_or_else(|p| p.into_inner());
        let dropped = peers.difference(&now).copied().collect();
        *peers = now;
        dropped
    }
}

/// Until `stop`: keeps `peers` to what the admitted documents say, disconnects a peer whose
/// member is refused, and reports a member admitted with new keys to `fatal`.
pub async fn watch_members(
    members: Members,
    view: DonView,
    peers: AdmittedPeers,
    network: NetworkHandle,
    fatal: mpsc::Sender<NodeError>,
    stop: CancellationToken,
) {
    // Twice the re-check period: two enclaves answering for one member are refused by then.
    let settle = (members.don.recheck * 2).max(SETTLE_MIN);
    let mut new_keys = NewKeys::default();
    let mut connected: HashSet<PeerId> = HashSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
        // A (re)connection to a member's node: its evidence is checked again at once, not only
        // at the next re-check.
        let now_connected: HashSet<PeerId> = network.connected().into_iter().collect();
        let reconnected: HashSet<PeerId> = now_connected.difference(&connected).copied().collect();
        connected = now_connected;
        for member in view.members_of(&reconnected) {
            let request = {
                let members = members.clone();
                let name = member.clone();
                tokio::task::spawn_blocking(move || members.request_recheck(&name)).await
            };
            if !matches!(request, Ok(Ok(()))) {
                tracing::warn!(%member, "cannot ask the supervisor to check the reconnected member again");
            }
        }
        let now = read(&members).await;
        let changed = view.changed_member(&now);
        if new_keys.settled(changed, Instant::now(), settle) {
            let _ = fatal.try_send(NodeError::MembersChanged {
                member: changed.unwrap_or_default().to_owned(),
            });
            return;
        }
        for peer in peers.replace(view.admitted_peers(&now)) {
            tracing::warn!(peer = %peer.short(), "a DON member is no longer admitted: its node is disconnected and refused until it is admitted again");
            network.disconnect(peer);
        }
    }
}
