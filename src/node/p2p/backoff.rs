//! Reconnection delays: exponential from `min` to `max`, each drawn from the upper half of the
//! current step so that peers which lost each other at the same moment do not redial in step.

use std::time::Duration;

pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call doubles the step until `max`.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let jitter = fastrand::u64(0..=half.as_millis() as u64);
        (half + Duration::from_millis(jitter)).max(Duration::from_millis(1))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let min = Duration::from_millis(200);
        let max = Duration::from_secs(10);
        let mut backoff = Backoff::new(min, max);
        for step_ms in [200u64, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000] {
            let d = backoff.next_delay().as_millis() as u64;
            assert!(
                d >= step_ms / 2 && d <= step_ms,
                "{d} not in [{}, {step_ms}]",
                step_ms / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= min);
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        for _ in 0..1000 {
            assert!(backoff.next_delay() <= Duration::from_secs(10));
        }
    }
}
