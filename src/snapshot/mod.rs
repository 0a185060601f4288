//! One picture of the running enclave, gathered from what every service already exposes: the
//! supervisor's state files, the identity document, the process-metrics exporter's `/metrics`,
//! the price aggregator's `/quotes/batch`, and each node's `/health`, `/v1/feeds`,
//! `/v1/feeds/{name}/latest` (and node 1's `/metrics` for transmitter balances). The live view
//! (`enclave status --watch`) renders it; the alerter evaluates its rules over it.
//!
//! Every part is gathered on its own: a part that cannot be read is an `Err` with the reason, and
//! the rest of the picture is still there.

pub mod collect;
pub mod prom_text;
#[cfg(test)]
pub mod testing;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rust_decimal::Decimal;

use crate::service::state::ServiceState;

pub use collect::Collector;

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub taken_at: SystemTime,
    /// Every service's state, with its CPU and memory when the exporter answered.
    pub services: Result<Vec<ServiceView>, String>,
    /// Why CPU and memory are missing (the process-metrics exporter did not answer).
    pub resources_error: Option<String>,
    /// `Ok(None)`: no identity document published (yet).
    pub attestation: Result<Option<AttestationView>, String>,
    /// The aggregator's answer for every configured feed.
    pub aggregator: Result<BTreeMap<String, FeedQuote>, String>,
    pub nodes: Vec<NodeView>,
    /// Transmitter balances (node 1 reads them); `None` without a chain.
    pub balances: Option<Result<Vec<Balance>, String>>,
    /// The configured feeds, in configuration order.
    pub feeds: Vec<FeedInfo>,
    /// A DON across enclaves: whether this enclave's supervisor admits each other member now
    /// (`enclave_don_member_admitted`, `…_unreachable`); `None` without `don`.
    pub members: Option<Result<BTreeMap<String, MemberView>, String>>,
}

/// Another DON member as this enclave's supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberView {
    pub admitted: bool,
    /// Its identity could not be fetched at the last check.
    pub unreachable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    pub state: ServiceState,
    /// Cores in use over the exporter's last interval.
    pub cpu_cores: Option<f64>,
    pub memory_bytes: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationView {
    /// `pending`, `quoted`, `unavailable` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub quote_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeedQuote {
    /// `ok` or `unavailable`.
    pub status: String,
    pub price: Option<Decimal>,
    pub reason: Option<String>,
    pub sources: Vec<SourceQuote>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceQuote {
    pub source: String,
    pub used: bool,
    pub reason: Option<String>,
    pub age_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Bootstrap,
    Oracle,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub node: u32,
    pub role: Role,
    pub health: Result<NodeHealth, String>,
    /// Oracles only: per feed, what `/v1/feeds` and `/v1/feeds/{name}/latest` say.
    pub feeds: Result<BTreeMap<String, NodeFeed>, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeHealth {
    pub ready: bool,
    pub reasons: Vec<String>,
    pub peers_connected: u64,
    pub peers_expected: u64,
    pub feeds: BTreeMap<String, FeedHealthView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedHealthView {
    /// `starting`, `ok`, `stale` or `waiting`.
    pub status: String,
    pub reason: Option<String>,
    pub last_report_ms_ago: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeFeed {
    pub epoch: Option<u32>,
    pub leader: Option<u32>,
    /// `latest` is what the contract holds (with a chain), else the DON's latest report.
    pub latest_on_chain: bool,
    pub latest: Option<Answer>,
    /// This oracle's latest finalized report.
    pub report: Option<Report>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub answer: Decimal,
    pub epoch: u32,
    pub round: u8,
    /// Unix ms: when it was finalized, or the contract's `latestTimestamp`.
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub answer: Answer,
    /// The oracles' observations, sorted.
    pub observations: Vec<Decimal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    pub node: u32,
    pub address: String,
    pub wei: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeedInfo {
    pub name: String,
    pub heartbeat: Duration,
}

impl Snapshot {
    pub fn oracles(&self) -> impl DoubleEndedIterator<Item = &NodeView> {
        self.nodes.iter().filter(|n| n.role == Role::Oracle)
    }

    /// The newest finalized report of `feed` among the oracles that answered, with its node (the
    /// lowest-numbered of those that have it).
    pub fn newest_report(&self, feed: &str) -> Option<(u32, &Report)> {
        // `max_by_key` keeps the last of equals: reversed, that is the first node.
        self.oracles()
            .rev()
            .filter_map(|n| {
                let report = n.feeds.as_ref().ok()?.get(feed)?.report.as_ref()?;
                Some((n.node, report))
            })
            .max_by_key(|(_, r)| (r.answer.epoch, r.answer.round, r.answer.at_ms))
    }

    /// The contract's answer for `feed`, from the oracles that read it (the newest one).
    pub fn on_chain(&self, feed: &str) -> Option<&Answer> {
        self.oracles()
            .filter_map(|n| {
                let f = n.feeds.as_ref().ok()?.get(feed)?;
                f.latest_on_chain.then_some(f.latest.as_ref()?)
            })
            .max_by_key(|a| (a.epoch, a.round, a.at_ms))
    }

    /// Whether any oracle reads `feed`'s contract (`false`: no chain, or nobody answered).
    pub fn has_chain(&self, feed: &str) -> bool {
        self.oracles().any(|n| {
            n.feeds
                .as_ref()
                .ok()
                .and_then(|f| f.get(feed))
                .is_some_and(|f| f.latest_on_chain)
        })
    }

    pub fn unix_ms(&self) -> u64 {
        unix_ms(self.taken_at)
    }
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
