//! The restart policy: a windowed intensity limit (as Erlang/OTP's MaxR in MaxT), so old
//! incidents are forgiven, with exponential backoff between restarts.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::schema::RestartPolicy;

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
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
        }
    }

    /// Called when the service died on its own (not by our shutdown).
    pub fn on_death(&mut self, now: Instant) -> Decision {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= self.policy.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            return Decision::GiveUp;
        }
        self.recent.push_back(now);
        let doublings = (self.recent.len() - 1).min(20) as u32;
        let delay = self
            .policy
            .backoff_initial
            .saturating_mul(1 << doublings)
            .min(self.policy.backoff_max);
        Decision::RestartAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_the_limit_stops_it() {
        let mut t = RestartTracker::new(policy());
        let now = Instant::now();
        assert_eq!(
            t.on_death(now),
            Decision::RestartAfter(Duration::from_secs(1))
        );
        assert_eq!(
            t.on_death(now),
            Decision::RestartAfter(Duration::from_secs(2))
        );
        assert_eq!(
            t.on_death(now),
            Decision::RestartAfter(Duration::from_secs(3))
        );
        assert_eq!(t.on_death(now), Decision::GiveUp);
    }

    #[test]
    fn restarts_outside_the_window_are_forgiven() {
        let mut t = RestartTracker::new(policy());
        let start = Instant::now();
        for i in 0..10 {
            let at = start + Duration::from_secs(200 * i);
            assert!(
                matches!(t.on_death(at), Decision::RestartAfter(_)),
                "death {i}"
            );
        }
    }
}
