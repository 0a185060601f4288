//! Samples not yet delivered to VictoriaMetrics, kept with their timestamps while it is
//! unreachable. Bounded by age and by size: the oldest go first, and are counted.

use std::collections::VecDeque;
use std::time::Duration;

/// The most a backlog holds, whatever its age limit says.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// One gathered snapshot: sample lines that already carry their timestamp.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub taken_ms: i64,
    pub lines: Vec<String>,
    bytes: usize,
}

impl Snapshot {
    pub fn new(taken_ms: i64, lines: Vec<String>) -> Self {
        let bytes = lines.iter().map(|l| l.len() + 1).sum();
        Self {
            taken_ms,
            lines,
            bytes,
        }
    }
}

#[derive(Debug)]
pub struct Backlog {
    snapshots: VecDeque<Snapshot>,
    bytes: usize,
    max_age: Duration,
    max_bytes: usize,
    dropped_samples: u64,
}

impl Backlog {
    pub fn new(max_age: Duration, max_bytes: usize) -> Self {
        Self {
            snapshots: VecDeque::new(),
            bytes: 0,
            max_age,
            max_bytes,
            dropped_samples: 0,
        }
    }

    /// Adds a snapshot, then evicts what is too old (relative to it) or over the size limit.
    pub fn push(&mut self, snapshot: Snapshot) {
        let newest = snapshot.taken_ms;
        self.bytes += snapshot.bytes;
        self.snapshots.push_back(snapshot);
        let max_age_ms = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        while let Some(oldest) = self.snapshots.front() {
            let too_old = newest.saturating_sub(oldest.taken_ms) > max_age_ms;
            // The newest snapshot is always kept, even alone over the limit: it is the present.
            let too_big = self.bytes > self.max_bytes && self.snapshots.len() > 1;
            if !(too_old || too_big) {
                break;
            }
            if let Some(gone) = self.snapshots.pop_front() {
                self.bytes -= gone.bytes;
                self.dropped_samples += gone.lines.len() as u64;
            }
        }
    }

    pub fn front(&self) -> Option<&Snapshot> {
        self.snapshots.front()
    }

    pub fn pop_front(&mut self) {
        if let Some(gone) = self.snapshots.pop_front() {
            self.bytes -= gone.bytes;
        }
    }

    pub fn samples(&self) -> usize {
        self.snapshots.iter().map(|s| s.lines.len()).sum()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn dropped_samples(&self) -> u64 {
        self.dropped_samples
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(at: i64, n: usize) -> Snapshot {
        Snapshot::new(at, (0..n).map(|i| format!("m {i} {at}")).collect())
    }

    #[test]
    fn old_snapshots_age_out_and_are_counted() {
        let mut b = Backlog::new(Duration::from_secs(60), MAX_BYTES);
        b.push(snap(0, 2));
        b.push(snap(30_000, 2));
        b.push(snap(61_000, 2));
        assert_eq!(b.front().map(|s| s.taken_ms), Some(30_000));
        assert_eq!(b.dropped_samples(), 2);
        assert_eq!(b.samples(), 4);
    }

    #[test]
    fn size_is_bounded_but_the_newest_snapshot_stays() {
        let mut b = Backlog::new(Duration::from_secs(3600), 100);
        for t in 0..10 {
            b.push(snap(t * 1000, 3));
        }
        assert!(b.bytes() <= 100 || b.samples() == 3, "bytes {}", b.bytes());
        assert!(b.front().is_some());
        let mut big = Backlog::new(Duration::from_secs(3600), 1);
        big.push(snap(0, 5));
        assert_eq!(big.samples(), 5);
    }

    #[test]
    fn delivered_snapshots_leave_in_order() {
        let mut b = Backlog::new(Duration::from_secs(3600), MAX_BYTES);
        b.push(snap(1, 1));
        b.push(snap(2, 1));
        b.pop_front();
        assert_eq!(b.front().map(|s| s.taken_ms), Some(2));
        b.pop_front();
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }
}
