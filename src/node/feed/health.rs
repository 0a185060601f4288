//! Whether each feed of an oracle is reporting, and if not, why: the per-feed part of `/health`
//! and of the live view. A feed is healthy while rounds complete (a report, or a decision that
//! none is needed); a feed where no round completes for longer than a healthy feed can take is
//! stale, with the most likely reason from what this oracle saw. The node logs the reason once
//! when a feed goes stale and once when it recovers.

use std::time::{Duration, Instant};

use crate::config::schema::consensus::ConsensusConfig;

/// The longest a healthy feed goes without completing a round: a full round (ΔRound, the
/// observation timeout and ΔGrace) after a leader change (ΔProgress).
pub fn stale_after(consensus: &ConsensusConfig, observation_timeout: Duration) -> Duration {
    consensus.delta_round + consensus.delta_progress + consensus.delta_grace + observation_timeout
}

/// What this oracle knows about one running feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen<'a> {
    pub now: Instant,
    /// When the feed's protocol instance started.
    pub started_at: Instant,
    /// The last round that ended in a report or a decision not to report.
    pub last_completed: Option<Instant>,
    /// The last round this oracle was asked to observe.
    pub last_round_started: Option<Instant>,
    /// This oracle's last observation: when, and the error if it failed.
    pub last_observation: Option<(Instant, Option<&'a str>)>,
    pub peers_connected: usize,
    /// Other oracles needed for a quorum (2f).
    pub peers_needed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Nothing completed yet, but the feed has not been running for long.
    Starting,
    Ok,
    Stale {
        /// Since the last completed round (or the start).
        silent_for: Duration,
        reason: String,
    },
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Ok => "ok",
            Health::Stale { .. } => "stale",
        }
    }

    /// `no report for 82 s: <why>`, for stale feeds.
    pub fn reason(&self) -> Option<String> {
        match self {
            Health::Stale { silent_for, reason } => Some(format!(
                "no report for {} s: {reason}",
                silent_for.as_secs()
            )),
            _ => None,
        }
    }
}

pub fn evaluate(seen: &Seen<'_>, stale_after: Duration) -> Health {
    let since = seen.last_completed.unwrap_or(seen.started_at);
    let silent_for = seen.now.saturating_duration_since(since);
    if silent_for <= stale_after {
        return if seen.last_completed.is_some() {
            Health::Ok
        } else {
            Health::Starting
        };
    }
    Health::Stale {
        silent_for,
        reason: cause(seen, since),
    }
}

/// The most likely reason, most specific first: this oracle's own observation failing, too few
/// peers for a quorum, rounds that start but never complete, no round at all.
fn cause(seen: &Seen<'_>, since: Instant) -> String {
    if let Some((at, Some(error))) = seen.last_observation {
        if at >= since {
            return error.to_owned();
        }
    }
    if seen.peers_connected < seen.peers_needed {
        return format!(
            "only {} other oracle(s) connected, {} needed for a quorum",
            seen.peers_connected, seen.peers_needed
        );
    }
    if seen.last_round_started.is_some_and(|at| at >= since) {
        return "rounds start but none completes: fewer than 2f+1 oracles observe, or their reports are not signed".to_owned();
    }
    "no round started: no leader is asking for observations".to_owned()
}

/// A change worth one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Stopped { reason: String },
    Recovered { silent_for: Duration },
}

/// Remembers whether a feed was stale, so that each change is logged once.
#[derive(Debug, Default, Clone)]
pub struct Watch {
    stale_since: Option<Instant>,
}

impl Watch {
    pub fn step(&mut self, health: &Health, now: Instant) -> Option<Transition> {
        match (health, self.stale_since) {
            (Health::Stale { silent_for, .. }, None) => {
                self.stale_since = Some(now.checked_sub(*silent_for).unwrap_or(now));
                health.reason().map(|reason| Transition::Stopped { reason })
            }
            (Health::Ok, Some(since)) => {
                self.stale_since = None;
                Some(Transition::Recovered {
                    silent_for: now.saturating_duration_since(since),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Duration = Duration::from_secs(60);

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn health_follows_the_last_completed_round_and_names_the_likeliest_cause() {
        let t0 = Instant::now();
        let base = Seen {
            now: at(t0, 100),
            started_at: t0,
            last_completed: None,
            last_round_started: None,
            last_observation: None,
            peers_connected: 3,
            peers_needed: 2,
        };
        let unavailable = "no price for BTC-USD: price unavailable from every source";
        let cases: Vec<(&str, Seen<'_>, &str, Option<&str>)> = vec![
            (
                "just started",
                Seen { now: at(t0, 30), ..base },
                "starting",
                None,
            ),
            (
                "a round completed recently",
                Seen { last_completed: Some(at(t0, 50)), ..base },
                "ok",
                None,
            ),
            (
                "own observation failed since the last completed round",
                Seen {
                    last_completed: Some(at(t0, 10)),
                    last_observation: Some((at(t0, 95), Some(unavailable))),
                    last_round_started: Some(at(t0, 95)),
                    ..base
                },
                "stale",
                Some("no report for 90 s: no price for BTC-USD: price unavailable from every source"),
            ),
            (
                "an observation failure before the last completed round is old news",
                Seen {
                    last_completed: Some(at(t0, 10)),
                    last_observation: Some((at(t0, 5), Some(unavailable))),
                    peers_connected: 1,
                    ..base
                },
                "stale",
                Some("no report for 90 s: only 1 other oracle(s) connected, 2 needed for a quorum"),
            ),
            (
                "rounds start and observations succeed but nothing completes",
                Seen {
                    last_round_started: Some(at(t0, 99)),
                    last_observation: Some((at(t0, 99), None)),
                    ..base
                },
                "stale",
                Some("no report for 100 s: rounds start but none completes: fewer than 2f+1 oracles observe, or their reports are not signed"),
            ),
            (
                "no round at all",
                base,
                "stale",
                Some("no report for 100 s: no round started: no leader is asking for observations"),
            ),
        ];
        for (name, seen, status, reason) in cases {
            let health = evaluate(&seen, STALE);
            assert_eq!(health.as_str(), status, "{name}: {health:?}");
            assert_eq!(health.reason().as_deref(), reason, "{name}");
        }
    }

    #[test]
    fn a_feed_that_stops_and_recovers_is_logged_once_each_way() {
        let t0 = Instant::now();
        let stale = |secs| Health::Stale {
            silent_for: Duration::from_secs(secs),
            reason: "why".into(),
        };
        let mut watch = Watch::default();
        let steps = [
            (Health::Starting, 1, None),
            (Health::Ok, 2, None),
            (
                stale(61),
                70,
                Some(Transition::Stopped {
                    reason: "no report for 61 s: why".into(),
                }),
            ),
            (stale(62), 71, None),
            (stale(100), 109, None),
            (
                Health::Ok,
                120,
                Some(Transition::Recovered {
                    silent_for: Duration::from_secs(111),
                }),
            ),
            (Health::Ok, 121, None),
        ];
        for (health, secs, expected) in steps {
            assert_eq!(watch.step(&health, at(t0, secs)), expected, "at {secs} s");
        }
    }

    #[test]
    fn the_threshold_is_a_round_after_a_leader_change() {
        let consensus = crate::config::schema::consensus::read_consensus(
            &mut crate::config::reader::Report::default(),
            None,
            4,
        );
        assert_eq!(
            stale_after(&consensus, Duration::from_secs(5)),
            Duration::from_secs(30 + 35 + 12 + 5)
        );
    }
}
