//! What every feed task of an oracle shares: its database, observer, contract state, network
//! (each behind a seam of [`ports`](crate::node::feed::ports)), keys, metrics, status and the
//! writes it tracks.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::keys::peer_id::PeerId;
use crate::node::contract::contract_state::ContractState;
use crate::node::feed::ports::{Outbox, PriceSource, ReportStore};
use crate::node::feed::status::NodeStatus;
use crate::node::feed::writes::Writes;
use crate::node::metrics::NodeMetrics;
use crate::node::ocr1::types::ConfigDigest;
use crate::node::protocol::pacemaker::PacemakerState;
use crate::node::transmission::transmitter::ToTransmit;

/// What every feed task of a node shares.
pub struct Shared {
    pub store: Arc<dyn ReportStore>,
    pub observer: Arc<dyn PriceSource>,
    pub contract: Arc<dyn ContractState>,
    /// Finalized reports go here to be sent on chain (`None`: no chain).
    pub transmissions: Option<mpsc::Sender<ToTransmit>>,
    pub network: Arc<dyn Outbox>,
    /// Oracle index → its peer.
    pub peers: Vec<PeerId>,
    /// Oracle index → node number, for labels and the API.
    pub nodes: Vec<u32>,
    pub onchain_key: k256::ecdsa::SigningKey,
    pub metrics: Arc<NodeMetrics>,
    pub status: Arc<NodeStatus>,
    pub pacemaker_writes: mpsc::Sender<(String, InstanceConfigKey, PacemakerState)>,
    /// Writes that failed and what is retried (a full disk must not lose reports silently).
    pub writes: Arc<Writes>,
}

/// The key a pacemaker state is stored under.
pub type InstanceConfigKey = ConfigDigest;
