//! Log lines about things anyone on the network can cause (refused, evicted or timed-out
//! connections) must not let them fill the logs: per reason, the first event is logged at once
//! and then at most one line per window, carrying how many happened since the last line.
//!
//! This module only counts and decides; the caller writes each [`Line`] it is handed with its
//! own wording and level. Something must call [`LogSummary::flush`] now and then, so that the
//! last events of a burst are reported when no further event comes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per reason per this.
pub const WINDOW: Duration = Duration::from_secs(10);

/// One line to write: `count` events of `reason` over `over` (the time since the first of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub reason: &'static str,
    pub count: u64,
    pub over: Duration,
    /// The detail of the latest event, when the caller gave one.
    pub detail: Option<String>,
}

impl Line {
    /// `over` in whole seconds, at least 1 once more than one event is summed up (for "in N s").
    pub fn seconds(&self) -> u64 {
        if self.count <= 1 {
            self.over.as_secs()
        } else {
            self.over.as_secs().max(1)
        }
    }
}

#[derive(Debug)]
pub struct LogSummary {
    window: Duration,
    reasons: Mutex<BTreeMap<&'static str, Pending>>,
}

#[derive(Debug, Default)]
struct Pending {
    count: u64,
    first: Option<Instant>,
    last_line: Option<Instant>,
    detail: Option<String>,
}

impl Default for LogSummary {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl LogSummary {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            reasons: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one event; returns the line to write if this reason may have one now.
    pub fn record(
        &self,
        reason: &'static str,
        detail: Option<String>,
        now: Instant,
    ) -> Option<Line> {
        let mut reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        let pending = reasons.entry(reason).or_default();
        pending.count += 1;
        pending.first.get_or_insert(now);
        if detail.is_some() {
            pending.detail = detail;
        }
        self.due(reason, pending, now)
    }

    /// The lines of reasons with events not yet reported whose window has passed.
    pub fn flush(&self, now: Instant) -> Vec<Line> {
        let mut reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        reasons
            .iter_mut()
            .filter(|(_, p)| p.count > 0)
            .filter_map(|(reason, p)| self.due(reason, p, now))
            .collect()
    }

    fn due(&self, reason: &'static str, pending: &mut Pending, now: Instant) -> Option<Line> {
        if pending
            .last_line
            .is_some_and(|at| now.saturating_duration_since(at) < self.window)
        {
            return None;
        }
        let line = Line {
            reason,
            count: pending.count,
            over: now.saturating_duration_since(pending.first.unwrap_or(now)),
            detail: pending.detail.take(),
        };
        pending.count = 0;
        pending.first = None;
        pending.last_line = Some(now);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_logged_at_once_and_then_one_line_per_window_with_the_count() {
        let log = LogSummary::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let first = log.record("full", None, at(0)).expect("first at once");
        assert_eq!((first.count, first.seconds()), (1, 0));
        // A flood: 312 more within the window, nothing logged...
        for i in 1..=312 {
            assert_eq!(log.record("full", None, at(i * 20)), None);
        }
        // ...another reason is independent...
        assert!(log.record("timeout", None, at(500)).is_some());
        // ...until the window passed: flush reports them with the time they span.
        assert!(log.flush(at(9_999)).is_empty());
        let lines = log.flush(at(10_000));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].reason, "full");
        assert_eq!(lines[0].count, 312);
        assert_eq!(lines[0].over, Duration::from_millis(10_000 - 20));
        assert_eq!(lines[0].seconds(), 9);
        // Nothing pending: nothing to flush, and the next event waits for the next window.
        assert!(log.flush(at(30_000)).is_empty());
        assert_eq!(log.record("full", None, at(15_000)), None);
        let line = log
            .record("full", None, at(20_000))
            .expect("a window later");
        assert_eq!(line.count, 2);
    }

    #[test]
    fn the_latest_detail_is_kept_for_the_line() {
        let log = LogSummary::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let line = log.record("refused", Some("…a".into()), t0).expect("line");
        assert_eq!(line.detail.as_deref(), Some("…a"));
        log.record("refused", Some("…b".into()), t0 + Duration::from_secs(1));
        log.record("refused", None, t0 + Duration::from_secs(2));
        let lines = log.flush(t0 + Duration::from_secs(10));
        assert_eq!(lines[0].detail.as_deref(), Some("…b"));
        assert_eq!(lines[0].count, 2);
    }

    #[test]
    fn a_steady_flood_gives_at_most_one_line_per_window_per_reason() {
        let log = LogSummary::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let mut lines = 0;
        // 45 s of 130 events per second (what the P2P flood caused), flushed every second.
        for ms in (0..45_000u64).step_by(7) {
            let now = t0 + Duration::from_millis(ms);
            lines += usize::from(log.record("full", None, now).is_some());
            if ms % 1000 == 0 {
                lines += log.flush(now).len();
            }
        }
        assert!(lines <= 5, "{lines} lines in 45 s");
    }
}
