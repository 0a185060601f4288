//! A node of a DON across enclaves (docs/design/don-across-tees.md#the-nodes): the oracle set
//! assembled from this enclave's own keys and the identities the supervisor admitted for the
//! other members (`run/enclave/members/<name>.json`, see `attestation::membership`), where the
//! other members' nodes are dialled, and which of their peers are admitted right now.
//!
//! The node never judges evidence itself: the supervisor verified every document it wrote, and
//! removes it the moment the member is refused. What the node decides here is plain: the set is
//! complete only when every other member is admitted; a peer is admitted while its member's
//! document is there and still lists its key; a member whose admitted keys differ from the set
//! the node runs with (it restarted with new keys) means the set is stale.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::schema::don::DonConfig;
use crate::config::schema::nodes::BOOTSTRAP_NODE;
use crate::config::Config;
use crate::keys::peer_id::PeerId;
use crate::keys::{KeyStore, NodePublicKeys};
use crate::node::contract::oracle_set::OracleSet;
use crate::node::runtime::error::NodeError;

/// The other members' admitted node keys, by member name.
pub type AdmittedKeys = BTreeMap<String, Vec<NodePublicKeys>>;

/// What a node of member `me` runs with once every other member is admitted.
#[derive(Debug, Clone)]
pub struct DonView {
    pub set: OracleSet,
    /// Every other member's oracle, dialled at the address the configuration gives for it (the
    /// bootstrap is dialled at its own, `P2pSettings::bootstrap_address`).
    pub static_addresses: HashMap<PeerId, String>,
    /// The keys each other member was admitted with when the set was assembled.
    pub admitted: AdmittedKeys,
    /// Peers of this enclave's own nodes: always admitted.
    pub own_peers: HashSet<PeerId>,
}

/// The admitted documents' directory and the DON they belong to.
#[derive(Debug, Clone)]
pub struct Members {
    pub don: DonConfig,
    pub me: String,
    pub dir: PathBuf,
}

impl Members {
    /// Every other member's admitted node keys that are there now; a document the node cannot
    /// read or that does not list exactly its member's nodes counts as not admitted (logged).
    pub fn read_admitted(&self) -> AdmittedKeys {
        let mut admitted = AdmittedKeys::new();
        for member in self.don.members.iter().filter(|m| m.name != self.me) {
            let path = self.dir.join(format!("{}.json", member.name));
            match read_document(&path, &member.nodes) {
                Ok(Some(keys)) => {
                    admitted.insert(member.name.clone(), keys);
                }
                Ok(None) => {}
                Err(detail) => {
                    tracing::error!(member = %member.name, path = %path.display(), %detail, "cannot use the member's admitted identity; it counts as not admitted")
                }
            }
        }
        admitted
    }

    /// The members not admitted in `admitted`, in the configuration's order.
    pub fn missing(&self, admitted: &AdmittedKeys) -> Vec<String> {
        self.don
            .members
            .iter()
            .filter(|m| m.name != self.me && !admitted.contains_key(&m.name))
            .map(|m| m.name.clone())
            .collect()
    }

    /// The oracle set from this enclave's own keys and the others' admitted ones, when every
    /// other member is admitted; else `Ok(None)`.
    pub fn assemble(
        &self,
        keys: &KeyStore,
        config: &Config,
        admitted: &AdmittedKeys,
    ) -> Result<Option<DonView>, NodeError> {
        if !self.missing(admitted).is_empty() {
            return Ok(None);
        }
        let public = |node: u32| -> Result<(NodePublicKeys, bool), NodeError> {
            let member = self.don.member_of(node).ok_or(NodeError::UnknownNode {
                node,
                total: config.nodes.total,
            })?;
            if member.name == self.me {
                return Ok((keys.load_public(node)?, true));
            }
            admitted
                .get(&member.name)
                .and_then(|keys| keys.iter().find(|k| k.node == node))
                .cloned()
                .map(|k| (k, false))
                .ok_or(NodeError::UnknownNode {
                    node,
                    total: config.nodes.total,
                })
        };
        let mut own_peers = HashSet::new();
        let mut static_addresses = HashMap::new();
        let mut place = |keys: NodePublicKeys, own: bool| -> NodePublicKeys {
            if own {
                own_peers.insert(keys.peer_id);
            } else if keys.node == BOOTSTRAP_NODE {
                // Dialled at the bootstrap address (settings), not as a peer of the set.
            } else if let Some(address) = self
                .don
                .member_of(keys.node)
                .and_then(|m| m.address_of(keys.node))
            {
                static_addresses.insert(keys.peer_id, address.to_owned());
            }
            keys
        };
        let (bootstrap, own) = public(BOOTSTRAP_NODE)?;
        let bootstrap = place(bootstrap, own);
        let mut oracles = Vec::new();
        for node in config.nodes.oracles() {
            let (keys, own) = public(node)?;
            oracles.push(place(keys, own));
        }
        Ok(Some(DonView {
            set: OracleSet { bootstrap, oracles },
            static_addresses,
            admitted: admitted.clone(),
            own_peers,
        }))
    }
}

impl Members {
    /// Asks the supervisor to check `member` again now (a node reconnected to it).
    pub fn request_recheck(&self, member: &str) -> std::io::Result<()> {
        let dir = self.dir.join(crate::attestation::membership::RECHECK_DIR);
        std::fs::create_dir_all(&dir)?;
        // Member names are validated (a-z, 0-9, '-'): a plain file name.
        std::fs::write(dir.join(member), b"")
    }
}

impl DonView {
    /// The other members whose nodes are among `peers` (each once, in name order).
    pub fn members_of(&self, peers: &HashSet<PeerId>) -> Vec<String> {
        let mut names: Vec<String> = self
            .admitted
            .iter()
            .filter(|(_, keys)| keys.iter().any(|k| peers.contains(&k.peer_id)))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// The peers admitted under `now`: this enclave's own, and each other member's whose admitted
    /// document lists the key the set has for it.
    pub fn admitted_peers(&self, now: &AdmittedKeys) -> HashSet<PeerId> {
        let mut peers = self.own_peers.clone();
        for keys in now.values() {
            peers.extend(keys.iter().map(|k| k.peer_id));
        }
        let in_set: HashSet<PeerId> = std::iter::once(self.set.bootstrap.peer_id)
            .chain(self.set.oracles.iter().map(|o| o.peer_id))
            .collect();
        peers.retain(|p| in_set.contains(p));
        peers
    }

    /// A member now admitted with other keys than those the set was assembled with (it was
    /// re-created with new keys): the set is stale.
    pub fn changed_member<'a>(&self, now: &'a AdmittedKeys) -> Option<&'a str> {
        now.iter()
            .find(|(name, keys)| self.admitted.get(*name).is_some_and(|old| old != *keys))
            .map(|(name, _)| name.as_str())
    }
}

/// Whether a member's new keys have stayed long enough to restart with them: a member briefly
/// admitted with other keys (two enclaves answering for it, until the supervisor notices and
/// refuses it) must not restart every node of the DON.
#[derive(Debug, Default)]
pub struct NewKeys {
    since: Option<(String, std::time::Instant)>,
}

impl NewKeys {
    /// `changed`: the member [`DonView::changed_member`] names now, if any. True once the same
    /// member has had new keys for `settle`.
    pub fn settled(
        &mut self,
        changed: Option<&str>,
        now: std::time::Instant,
        settle: std::time::Duration,
    ) -> bool {
        let Some(member) = changed else {
            self.since = None;
            return false;
        };
        match &self.since {
            Some((m, at)) if m == member => now.duration_since(*at) >= settle,
            _ => {
                self.since = Some((member.to_owned(), now));
                settle.is_zero()
            }
        }
    }
}

/// The node keys of an admitted identity document at `path`; `None` when there is none.
fn read_document(path: &Path, nodes: &[u32]) -> Result<Option<Vec<NodePublicKeys>>, String> {
    let bytes = match crate::config::regular_file::read_bounded(
        path,
        crate::attestation::membership::MAX_DOCUMENT_BYTES,
    ) {
        Ok(bytes) => bytes,
        Err(crate::config::regular_file::FileError::Io(e))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e.to_string()),
    };
    let document: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let listed = document["identity"]["nodes"]
        .as_array()
        .ok_or("identity.nodes is not a list")?;
    let mut keys = Vec::with_capacity(listed.len());
    for node in listed {
        let mut node = node.clone();
        if let Some(object) = node.as_object_mut() {
            object.remove("role");
        }
        let public: NodePublicKeys =
            serde_json::from_value(node).map_err(|e| format!("identity.nodes: {e}"))?;
        if public.peer_id.0 != public.offchain_public_key {
            return Err(format!(
                "identity.nodes: node {}'s peerId and offchainPublicKey differ",
                public.node
            ));
        }
        keys.push(public);
    }
    let mut listed: Vec<u32> = keys.iter().map(|k| k.node).collect();
    listed.sort_unstable();
    let mut expected = nodes.to_vec();
    expected.sort_unstable();
    if listed != expected {
        return Err(format!(
            "it lists nodes {listed:?}, but the member runs {expected:?}"
        ));
    }
    Ok(Some(keys))
}

#[cfg(test)]
mod tests;
