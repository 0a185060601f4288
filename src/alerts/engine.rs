//! From rule verdicts to notifications: a state machine per alert (and subject) — inactive,
//! pending (a condition holds, not yet for `forMs`), firing — that says what to tell and when.
//!
//! - **Firing** is told once when an alert starts firing; while it keeps firing, nothing more,
//!   except a reminder every `repeatIntervalMs`.
//! - **Resolved** is told once when a firing alert's condition clears, and only if its firing
//!   was told.
//! - **Rate limit**: at most `maxNotificationsPerHour` per alert and subject (a burst of that
//!   many, then one per `3600 s / max`), by `governor`. What cannot be told yet waits; only the
//!   newest state waits, so a flapping alert ends with its true state told and nothing in
//!   between that no longer holds (deduplicated: a state equal to the last one told is dropped).
//! - **Unknown** (the data for a rule could not be read) changes nothing: it neither fires nor
//!   resolves.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::rules::{Key, Verdict};
use crate::config::schema::alerts::{AlertName, AlertsConfig, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// One message for the channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub key: Key,
    pub severity: Severity,
    pub state: State,
    /// A firing alert told again after `repeatIntervalMs`.
    pub reminder: bool,
    pub summary: String,
    pub started_at: SystemTime,
    /// When it resolved.
    pub ended_at: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    pub for_duration: Duration,
    pub repeat_interval: Option<Duration>,
    pub max_per_hour: u32,
}

impl From<&AlertsConfig> for EngineConfig {
    fn from(c: &AlertsConfig) -> Self {
        Self {
            for_duration: c.for_duration,
            repeat_interval: c.repeat_interval,
            max_per_hour: c.max_per_hour,
        }
    }
}

/// How long a condition must hold before it fires: events (a restart, a failed attestation)
/// fire at once, conditions after `forMs`.
pub fn waits(alert: AlertName, for_duration: Duration) -> Duration {
    match alert {
        AlertName::ServiceRestarted
        | AlertName::RestartLimitNear
        | AlertName::AttestationFailed => Duration::ZERO,
        _ => for_duration,
    }
}

/// The rate limiter's clock is the engine's own step time, so the engine stays a pure function
/// of (its state, the time, the verdicts).
#[derive(Debug, Clone, Default)]
struct StepClock(Arc<AtomicU64>);

impl StepClock {
    fn set(&self, at: Duration) {
        self.0.store(
            u64::try_from(at.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl Clock for StepClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Inactive,
    Pending { since: Duration, wall: SystemTime },
    Firing { wall: SystemTime, summary: String },
}

#[derive(Debug, Clone)]
struct Tracked {
    phase: Phase,
    /// The last state told, and when.
    told: Option<(State, Duration)>,
    /// The newest state waiting to be told.
    outbox: Option<Notification>,
}

type Limiter = RateLimiter<Key, HashMapStateStore<Key>, StepClock, NoOpMiddleware<Duration>>;

pub struct Engine {
    config: EngineConfig,
    alerts: BTreeMap<Key, Tracked>,
    clock: StepClock,
    limiter: Limiter,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        let per_hour = NonZeroU32::new(config.max_per_hour.max(1)).unwrap_or(NonZeroU32::MIN);
        let clock = StepClock::default();
        let limiter = RateLimiter::new(
            Quota::per_hour(per_hour),
            HashMapStateStore::default(),
            clock.clone(),
        );
        Self {
            config,
            alerts: BTreeMap::new(),
            clock,
            limiter,
        }
    }

    /// The alerts firing now.
    pub fn firing(&self) -> impl Iterator<Item = &Key> {
        self.alerts
            .iter()
            .filter(|(_, t)| matches!(t.phase, Phase::Firing { .. }))
            .map(|(k, _)| k)
    }

    /// One evaluation: `now` is monotonic time (any fixed origin), `wall` the snapshot's time.
    pub fn step(
        &mut self,
        now: Duration,
        wall: SystemTime,
        verdicts: Vec<(Key, Verdict)>,
    ) -> Vec<Notification> {
        for (key, verdict) in verdicts {
            let tracked = self.alerts.entry(key.clone()).or_insert(Tracked {
                phase: Phase::Inactive,
                told: None,
                outbox: None,
            });
            let wait = waits(key.alert, self.config.for_duration);
            let notification =
                |state, summary: &str, started_at, ended_at, reminder| Notification {
                    key: key.clone(),
                    severity: key.alert.severity(),
                    state,
                    reminder,
                    summary: summary.to_owned(),
                    started_at,
                    ended_at,
                };
            match (&tracked.phase, verdict) {
                (_, Verdict::Unknown) | (Phase::Inactive, Verdict::Clear) => {}
                (Phase::Pending { .. }, Verdict::Clear) => tracked.phase = Phase::Inactive,
                (
                    Phase::Firing {
                        wall: since,
                        summary,
                    },
                    Verdict::Clear,
                ) => {
                    tracked.outbox = Some(notification(
                        State::Resolved,
                        summary,
                        *since,
                        Some(wall),
                        false,
                    ));
                    tracked.phase = Phase::Inactive;
                }
                (Phase::Inactive, Verdict::Active(summary)) if wait.is_zero() => {
                    tracked.outbox = Some(notification(State::Firing, &summary, wall, None, false));
                    tracked.phase = Phase::Firing { wall, summary };
                }
                (Phase::Inactive, Verdict::Active(_)) => {
                    tracked.phase = Phase::Pending { since: now, wall };
                }
                (
                    Phase::Pending {
                        since,
                        wall: started,
                    },
                    Verdict::Active(summary),
                ) => {
                    if now.saturating_sub(*since) >= wait {
                        let started = *started;
                        tracked.outbox =
                            Some(notification(State::Firing, &summary, started, None, false));
                        tracked.phase = Phase::Firing {
                            wall: started,
                            summary,
                        };
                    }
                }
                (Phase::Firing { wall: since, .. }, Verdict::Active(summary)) => {
                    let since = *since;
                    let remind = match (self.config.repeat_interval, tracked.told) {
                        (Some(every), Some((State::Firing, at))) => now.saturating_sub(at) >= every,
                        _ => false,
                    };
                    if remind && tracked.outbox.is_none() {
                        tracked.outbox =
                            Some(notification(State::Firing, &summary, since, None, true));
                    }
                    tracked.phase = Phase::Firing {
                        wall: since,
                        summary,
                    };
                }
            }
        }
        self.flush(now)
    }

    /// Sends what waits, as the rate limit allows; drops what would repeat the last state told.
    fn flush(&mut self, now: Duration) -> Vec<Notification> {
        self.clock.set(now);
        let mut out = Vec::new();
        for (key, tracked) in &mut self.alerts {
            let Some(pending) = &tracked.outbox else {
                continue;
            };
            let told = tracked.told.map(|(s, _)| s);
            let worth_telling = match pending.state {
                State::Firing => pending.reminder || told != Some(State::Firing),
                State::Resolved => told == Some(State::Firing),
            };
            if !worth_telling {
                tracked.outbox = None;
                continue;
            }
            if self.limiter.check_key(key).is_err() {
                continue;
            }
            if let Some(n) = tracked.outbox.take() {
                tracked.told = Some((n.state, now));
                out.push(n);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
