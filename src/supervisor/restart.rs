//! The restart policy: a windowed intensity limit (as Erlang/OTP's MaxR in MaxT), so old
//! incidents are forgiven, with the enclave's one exponential backoff between restarts (no
//! jitter: operators read the delays in the log, and one service has nothing to fall in step
//! with).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::{Backoff, BackoffError};
use crate::config::schema::RestartPolicy;

/// Restart delays are deterministic.
const RESTART_JITTER: f64 = 0.0;

/// The configured limits, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartLimits {
    /// More restarts than this within `window` stop the enclave.
    pub max_restarts: u32,
    pub window: Duration,
    /// The delay before the n-th restart within the window (0-based).
    pub backoff: Backoff,
}

impl RestartLimits {
    pub fn from_policy(policy: &RestartPolicy) -> Result<Self, BackoffError> {
        Ok(Self {
            max_restarts: policy.max_restarts,
            window: policy.window,
            backoff: Backoff::new(policy.backoff_initial, policy.backoff_max, RESTART_JITTER)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after this delay.
    RestartAfter(Duration),
    /// More than `max_restarts` restarts within the window: stop everything.
    GiveUp,
}

/// Restarts of one service within the window.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    limits: RestartLimits,
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    pub fn new(limits: RestartLimits) -> Self {
        Self {
            limits,
            recent: VecDeque::new(),
        }
    }

    /// Called when the service died on its own (not by our shutdown).
    pub fn on_death(&mut self, now: Instant) -> Decision {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= self.limits.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= self.limits.max_restarts as usize {
            return Decision::GiveUp;
        }
        let attempt = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        self.recent.push_back(now);
        Decision::RestartAfter(self.limits.backoff.delay(attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_restarts: u32) -> RestartLimits {
        RestartLimits::from_policy(&RestartPolicy {
            max_restarts,
            window: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3),
        })
        .expect("valid")
    }

    const GIVE_UP: Option<u64> = None;

    /// (limit, seconds of each death since the first, delay in seconds or give up).
    #[test]
    fn the_restart_policy_by_table() {
        type Case = (&'static str, u32, &'static [(u64, Option<u64>)]);
        let cases: &[Case] = &[
            (
                "backoff doubles up to the cap, then the limit stops it",
                3,
                &[(0, Some(1)), (0, Some(2)), (0, Some(3)), (0, GIVE_UP)],
            ),
            (
                "restarts outside the window are forgiven",
                3,
                &[
                    (0, Some(1)),
                    (200, Some(2)),
                    (400, Some(2)),
                    (600, Some(2)),
                    (800, Some(2)),
                ],
            ),
            (
                "a quiet window starts the backoff over",
                3,
                &[(0, Some(1)), (1, Some(2)), (1000, Some(1)), (1001, Some(2))],
            ),
            (
                "a death exactly one window after the oldest forgives it",
                2,
                &[(0, Some(1)), (10, Some(2)), (300, Some(2)), (305, GIVE_UP)],
            ),
            (
                "a limit of one allows one restart",
                1,
                &[(0, Some(1)), (5, GIVE_UP)],
            ),
        ];
        for (case, max, deaths) in cases {
            let mut tracker = RestartTracker::new(limits(*max));
            let start = Instant::now();
            for (i, (at, expected)) in deaths.iter().enumerate() {
                let expected = match expected {
                    Some(secs) => Decision::RestartAfter(Duration::from_secs(*secs)),
                    None => Decision::GiveUp,
                };
                let decision = tracker.on_death(start + Duration::from_secs(*at));
                assert_eq!(decision, expected, "{case}: death {i}");
            }
        }
    }

    #[test]
    fn an_invalid_backoff_is_refused() {
        let policy = RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(1),
        };
        assert!(RestartLimits::from_policy(&policy).is_err());
    }
}
