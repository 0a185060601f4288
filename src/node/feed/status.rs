//! What the node API shows: each feed's protocol position and its recent rounds, kept in memory
//! (bounded) by the feed tasks. Finalized reports themselves are read from the database.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::node::feed::health::Health;
use crate::node::ocr1::types::ConfigDigest;

/// Rounds remembered per feed for `/v1/rounds`.
pub const ROUNDS_KEPT: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    InProgress,
    Finalized,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundRecord {
    pub feed: String,
    pub epoch: u32,
    pub round: u8,
    /// The leader's node number.
    pub leader: u32,
    #[serde(with = "unix_ms")]
    pub started_at: SystemTime,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Node numbers of the oracles whose observations the leader's report request carried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observers: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct FeedStatus {
    pub digest: ConfigDigest,
    pub epoch: u32,
    pub leader: u32,
    pub rounds: VecDeque<RoundRecord>,
    /// When the feed's protocol instance started.
    pub started_at: Instant,
    /// The last round that ended in a report or in a decision not to report.
    pub last_completed: Option<Instant>,
    pub last_round_started: Option<Instant>,
    /// When the last report was finalized (since this node started).
    pub last_report: Option<SystemTime>,
    /// This oracle's last observation: when, and why it failed (bounded text).
    pub last_observation: Option<(Instant, Option<String>)>,
    /// As last evaluated by the health watch.
    pub health: Health,
}

/// Observation errors carry the aggregator's reasons; this much of them is kept.
const MAX_OBSERVATION_ERROR: usize = 300;

#[derive(Debug, Default)]
pub struct NodeStatus {
    feeds: Mutex<BTreeMap<String, FeedStatus>>,
    /// Feeds held back from starting, with why (for `/health`).
    waiting: Mutex<BTreeMap<String, String>>,
}

impl NodeStatus {
    /// `feed` cannot start yet, because of `why`.
    pub fn waiting(&self, feed: &str, why: String) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(feed.to_owned(), why);
    }

    pub fn not_waiting(&self, feed: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(feed);
    }

    /// Why `feed` has not started, if something holds it back.
    pub fn waiting_for(&self, feed: &str) -> Option<String> {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(feed)
            .cloned()
    }

    pub fn add_feed(&self, feed: &str, digest: ConfigDigest) {
        self.lock().insert(
            feed.to_owned(),
            FeedStatus {
                digest,
                epoch: 0,
                leader: 0,
                rounds: VecDeque::new(),
                started_at: Instant::now(),
                last_completed: None,
                last_round_started: None,
                last_report: None,
                last_observation: None,
                health: Health::Starting,
            },
        );
    }

    /// This oracle's observation for `feed`: `Ok` or why it has none.
    pub fn observed(&self, feed: &str, result: Result<(), String>) {
        if let Some(f) = self.lock().get_mut(feed) {
            let error = result.err().map(|mut e| {
                if e.len() > MAX_OBSERVATION_ERROR {
                    let cut = (0..=MAX_OBSERVATION_ERROR)
                        .rev()
                        .find(|&i| e.is_char_boundary(i))
                        .unwrap_or(0);
                    e.truncate(cut);
                    e.push('…');
                }
                e
            });
            f.last_observation = Some((Instant::now(), error));
        }
    }

    /// Runs `visit` on every feed under one lock (the health watch, each second: no copies).
    pub fn visit_mut(&self, mut visit: impl FnMut(&str, &mut FeedStatus)) {
        for (name, feed) in self.lock().iter_mut() {
            visit(name, feed);
        }
    }

    /// Each feed's evaluated health and when its last report was finalized.
    pub fn health(&self) -> BTreeMap<String, (Health, Option<SystemTime>)> {
        self.lock()
            .iter()
            .map(|(name, f)| (name.clone(), (f.health.clone(), f.last_report)))
            .collect()
    }

    pub fn feed(&self, feed: &str) -> Option<FeedStatus> {
        self.lock().get(feed).cloned()
    }

    pub fn feeds(&self) -> BTreeMap<String, FeedStatus> {
        self.lock().clone()
    }

    pub fn epoch(&self, feed: &str, epoch: u32, leader: u32) {
        if let Some(f) = self.lock().get_mut(feed) {
            f.epoch = epoch;
            f.leader = leader;
        }
    }

    pub fn round_started(&self, feed: &str, epoch: u32, round: u8) {
        let mut feeds = self.lock();
        let Some(f) = feeds.get_mut(feed) else { return };
        if f.rounds.len() == ROUNDS_KEPT {
            f.rounds.pop_front();
        }
        let leader = f.leader;
        f.last_round_started = Some(Instant::now());
        f.rounds.push_back(RoundRecord {
            feed: feed.to_owned(),
            epoch,
            round,
            leader,
            started_at: SystemTime::now(),
            outcome: Outcome::InProgress,
            duration_ms: None,
            observers: Vec::new(),
        });
    }

    pub fn round_observers(&self, feed: &str, epoch: u32, round: u8, observers: Vec<u32>) {
        self.update(feed, epoch, round, |r| r.observers = observers);
    }

    pub fn round_finished(&self, feed: &str, epoch: u32, round: u8, outcome: Outcome) {
        if let Some(f) = self.lock().get_mut(feed) {
            f.last_completed = Some(Instant::now());
            if outcome == Outcome::Finalized {
                f.last_report = Some(SystemTime::now());
            }
        }
        self.update(feed, epoch, round, |r| {
            r.outcome = outcome;
            r.duration_ms = r.started_at.elapsed().ok().map(|d| d.as_millis() as u64);
        });
    }

    /// The newest `limit` rounds of one feed or of all, newest first.
    pub fn rounds(&self, feed: Option<&str>, limit: usize) -> Vec<RoundRecord> {
        let feeds = self.lock();
        let mut rounds: Vec<RoundRecord> = feeds
            .iter()
            .filter(|(name, _)| feed.is_none_or(|f| f == name.as_str()))
            .flat_map(|(_, f)| f.rounds.iter().cloned())
            .collect();
        rounds.sort_by(|a, b| {
            (b.started_at, b.epoch, b.round).cmp(&(a.started_at, a.epoch, a.round))
        });
        rounds.truncate(limit);
        rounds
    }

    fn update(&self, feed: &str, epoch: u32, round: u8, change: impl FnOnce(&mut RoundRecord)) {
        let mut feeds = self.lock();
        let Some(f) = feeds.get_mut(feed) else { return };
        if let Some(r) = f
            .rounds
            .iter_mut()
            .rev()
            .find(|r| r.epoch == epoch && r.round == round)
        {
            change(r);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FeedStatus>> {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub mod unix_ms {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_bounded_and_listed_newest_first() {
        let status = NodeStatus::default();
        status.add_feed("A", ConfigDigest([0; 16]));
        status.epoch("A", 1, 3);
        for round in 0..=250u8 {
            status.round_started("A", 1, round);
        }
        status.round_finished("A", 1, 250, Outcome::Finalized);
        let rounds = status.rounds(Some("A"), 1000);
        assert_eq!(rounds.len(), ROUNDS_KEPT);
        assert_eq!(rounds[0].round, 250);
        assert_eq!(rounds[0].outcome, Outcome::Finalized);
        assert_eq!(rounds[0].leader, 3);
        assert!(status.rounds(Some("B"), 10).is_empty());
        assert_eq!(status.rounds(None, 5).len(), 5);
    }
}
