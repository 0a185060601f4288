//! The one exponential backoff every retry loop of the enclave uses (reconnecting peers and
//! streams, refetching prices, pushing metrics, delivering alerts, restarting services, reading a
//! contract at start): validated once when built, so a loop can never spin with a zero delay or
//! wait past its cap, and property-tested below.
//!
//! The delay before attempt `n` (0-based) is the step `min · 2ⁿ` capped at `max`, less a random
//! share of it up to `jitter` (so peers or services that failed together do not retry in step),
//! and never below `min`: `delay(n) ∈ [max(min, step·(1 − jitter)), step]`. A jitter of 0 makes it
//! deterministic (the supervisor's restart delays, which operators read in the log).

use std::time::Duration;

/// Why a backoff cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackoffError {
    #[error("the first delay must be positive")]
    ZeroMin,
    #[error("the longest delay ({max:?}) is shorter than the first ({min:?})")]
    MaxBelowMin { min: Duration, max: Duration },
    #[error("the jitter must be a fraction between 0 and 1 (got {0})")]
    Jitter(f64),
}

/// Exponential backoff settings: first delay, cap and jitter fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
}

/// Doublings beyond this change nothing for any cap a duration can express sensibly, and keep
/// the multiplication far from overflow.
const MAX_DOUBLINGS: u32 = 32;

impl Backoff {
    /// Settings with `min ≤ max`, `min > 0` and `0 ≤ jitter ≤ 1`.
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Result<Self, BackoffError> {
        if min.is_zero() {
            return Err(BackoffError::ZeroMin);
        }
        if max < min {
            return Err(BackoffError::MaxBelowMin { min, max });
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(BackoffError::Jitter(jitter));
        }
        Ok(Self { min, max, jitter })
    }

    /// For constants known to be valid; panics (at start, in a test) if they are not.
    pub const fn constant(min: Duration, max: Duration, jitter: f64) -> Self {
        assert!(!min.is_zero(), "backoff: zero first delay");
        assert!(
            min.as_nanos() <= max.as_nanos(),
            "backoff: cap below the first delay"
        );
        assert!(
            jitter >= 0.0 && jitter <= 1.0,
            "backoff: jitter outside 0..=1"
        );
        Self { min, max, jitter }
    }

    pub fn min(&self) -> Duration {
        self.min
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// The step before jitter for attempt `n` (0-based): `min · 2ⁿ`, at most `max`.
    pub fn step(&self, attempt: u32) -> Duration {
        self.min
            .saturating_mul(1u32 << attempt.min(MAX_DOUBLINGS - 1))
            .min(self.max)
    }

    /// The delay for attempt `n` given a uniform sample `u` in `[0, 1)` (pure: what the property
    /// tests and the table tests of each caller use).
    pub fn delay_with(&self, attempt: u32, u: f64) -> Duration {
        let step = self.step(attempt);
        let share = (self.jitter * u.clamp(0.0, 1.0)).clamp(0.0, 1.0);
        step.mul_f64(1.0 - share).max(self.min)
    }

    /// The delay for attempt `n` with a random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, fastrand::f64())
    }

    /// A counter of consecutive attempts over these settings.
    pub fn attempts(&self) -> Attempts {
        Attempts {
            backoff: *self,
            attempt: 0,
        }
    }
}

/// Consecutive failures of one retry loop: each [`next_delay`](Self::next_delay) moves one step
/// up, [`reset`](Self::reset) (after a success) back to the first delay.
#[derive(Debug, Clone)]
pub struct Attempts {
    backoff: Backoff,
    attempt: u32,
}

impl Attempts {
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.backoff.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last reset.
    pub fn count(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn invalid_settings_are_refused_with_the_reason() {
        let cases = [
            (ms(0), ms(10), 0.5, Some(BackoffError::ZeroMin)),
            (
                ms(10),
                ms(5),
                0.5,
                Some(BackoffError::MaxBelowMin {
                    min: ms(10),
                    max: ms(5),
                }),
            ),
            (ms(10), ms(20), -0.1, Some(BackoffError::Jitter(-0.1))),
            (ms(10), ms(20), 1.5, Some(BackoffError::Jitter(1.5))),
            (ms(10), ms(10), 0.0, None),
            (ms(10), ms(20), 1.0, None),
        ];
        for (min, max, jitter, expected) in cases {
            assert_eq!(
                Backoff::new(min, max, jitter).err(),
                expected,
                "{min:?} {max:?} {jitter}"
            );
        }
        assert!(Backoff::new(ms(1), ms(2), f64::NAN).is_err());
    }

    #[test]
    fn without_jitter_the_delays_double_up_to_the_cap() {
        let backoff = Backoff::new(ms(1000), ms(30_000), 0.0).expect("valid");
        let delays: Vec<u64> = (0..7)
            .map(|n| backoff.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    }

    #[test]
    fn attempts_count_up_and_reset_to_the_first_delay() {
        let mut attempts = Backoff::new(ms(100), ms(10_000), 0.0)
            .expect("valid")
            .attempts();
        assert_eq!(attempts.next_delay(), ms(100));
        assert_eq!(attempts.next_delay(), ms(200));
        assert_eq!(attempts.count(), 2);
        attempts.reset();
        assert_eq!(attempts.count(), 0);
        assert_eq!(attempts.next_delay(), ms(100));
    }

    proptest! {
        #[test]
        fn every_delay_lies_between_the_first_delay_and_the_cap(
            min_ms in 1u64..100_000,
            extra_ms in 0u64..10_000_000,
            jitter in 0.0f64..=1.0,
            attempt in any::<u32>(),
            u in 0.0f64..1.0,
        ) {
            let backoff = Backoff::new(ms(min_ms), ms(min_ms + extra_ms), jitter).expect("valid");
            let delay = backoff.delay_with(attempt, u);
            prop_assert!(delay >= backoff.min());
            prop_assert!(delay <= backoff.max());
            let step = backoff.step(attempt);
            prop_assert!(delay <= step);
            prop_assert!(delay >= step.mul_f64(1.0 - jitter).max(backoff.min()));
        }

        #[test]
        fn steps_never_shrink_from_one_attempt_to_the_next(
            min_ms in 1u64..100_000,
            extra_ms in 0u64..10_000_000,
            attempt in 0u32..u32::MAX,
        ) {
            let backoff = Backoff::new(ms(min_ms), ms(min_ms + extra_ms), 0.3).expect("valid");
            prop_assert!(backoff.step(attempt) <= backoff.step(attempt + 1));
        }

        #[test]
        fn enough_attempts_reach_the_cap(
            min_ms in 1u64..100_000,
            extra_ms in 0u64..10_000_000,
        ) {
            let backoff = Backoff::new(ms(min_ms), ms(min_ms + extra_ms), 0.0).expect("valid");
            prop_assert_eq!(backoff.delay(64), backoff.max());
        }
    }
}
