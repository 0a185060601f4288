//! The feed task's seams, after libocr's protocol (which receives its database, data source and
//! transmitter as interfaces): what a feed needs from the database, the price aggregator and
//! the P2P network, as traits. The node wires in PostgreSQL ([`Store`]), the HTTP observer
//! ([`Observer`]) and the TLS network ([`NetworkHandle`]); the feed task's tests wire in
//! in-memory ones and drive its decisions (sign or refuse, store or keep, send) without them.

use async_trait::async_trait;
use bytes::Bytes;
use rust_decimal::Decimal;

use crate::keys::peer_id::PeerId;
use crate::node::feed::observe::{ObserveError, Observer};
use crate::node::ocr1::types::ConfigDigest;
use crate::node::p2p::NetworkHandle;
use crate::node::store::{FinalizedReport, SignGuard, Store, StoreError};

/// What the signing guard records before a report is signed: the round, and the hash of the
/// report's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedRound {
    pub digest: ConfigDigest,
    pub epoch: u32,
    pub round: u8,
    pub report_hash: [u8; 32],
}

/// What a feed writes to its database.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Records that this node signs this report for its round, unless it signed something else
    /// there before (see [`Store::guard_signature`]).
    async fn guard_signature(&self, signed: SignedRound) -> Result<SignGuard, StoreError>;

    /// Stores a finalized report with its pending transmission; `false` when it was stored
    /// before.
    async fn save_finalized(&self, report: &FinalizedReport) -> Result<bool, StoreError>;
}

/// Where a feed's observations come from.
#[async_trait]
pub trait PriceSource: Send + Sync {
    async fn observe(&self, feed: &str) -> Result<Decimal, ObserveError>;
}

/// How a feed's messages reach the other oracles. Sending never waits: a peer that cannot take
/// a message now misses it, as libocr's network does.
pub trait Outbox: Send + Sync {
    fn send(&self, to: PeerId, payload: Bytes);
    /// To every oracle of the set except this node.
    fn broadcast(&self, payload: Bytes);
}

#[async_trait]
impl ReportStore for Store {
    async fn guard_signature(&self, s: SignedRound) -> Result<SignGuard, StoreError> {
        Store::guard_signature(self, s.digest, s.epoch, s.round, s.report_hash).await
    }

    async fn save_finalized(&self, report: &FinalizedReport) -> Result<bool, StoreError> {
        Store::save_finalized(self, report).await
    }
}

#[async_trait]
impl PriceSource for Observer {
    async fn observe(&self, feed: &str) -> Result<Decimal, ObserveError> {
        Observer::observe(self, feed).await
    }
}

impl Outbox for NetworkHandle {
    fn send(&self, to: PeerId, payload: Bytes) {
        NetworkHandle::send(self, to, payload)
    }

    fn broadcast(&self, payload: Bytes) {
        NetworkHandle::broadcast(self, payload)
    }
}
