//! CPU accounting of one service across samples.
//!
//! The kernel only knows the CPU time of processes that are alive, so summing the live processes
//! of a tree would make the service's counter drop whenever a process exits. Instead each
//! process's growth since the previous sample is added to a running total that only ever grows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One process's CPU reading in a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcessCpu {
    pub pid: u32,
    /// Unix seconds. With the pid it tells a process apart from a later one given the same pid.
    pub start_time: u64,
    /// Seconds since the process started, measured on the kernel's uptime clock.
    pub run_time: u64,
    /// User plus system CPU time over the process's life, in milliseconds.
    pub cpu_ms: u64,
}

/// The identity and last CPU reading of a process seen in the previous sample.
#[derive(Debug, Clone, Copy)]
struct Seen {
    start_time: u64,
    cpu_ms: u64,
}

/// How much CPU a process used since the previous sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spent {
    /// Added to the service's total.
    total_ms: u64,
    /// The part known to fall within the interval; the only part the rate may use.
    interval_ms: u64,
}

/// A service's CPU over every process its tree ever had while sampled.
#[derive(Debug, Default)]
pub(super) struct CpuAccount {
    total_ms: u64,
    seen: HashMap<u32, Seen>,
    last_update: Option<Instant>,
}

impl CpuAccount {
    /// Folds in one sample of the tree's processes (none when the service is not running) and
    /// returns the CPU rate in cores since the previous update, or None on the first update.
    pub fn update(&mut self, processes: &[ProcessCpu], now: Instant) -> Option<f64> {
        let elapsed = self
            .last_update
            .map(|last| now.saturating_duration_since(last));
        let mut interval_ms = 0u64;
        let mut seen = HashMap::with_capacity(processes.len());
        for process in processes {
            let spent = self.spent(process, elapsed);
            self.total_ms = self.total_ms.saturating_add(spent.total_ms);
            interval_ms = interval_ms.saturating_add(spent.interval_ms);
            seen.insert(
                process.pid,
                Seen {
                    start_time: process.start_time,
                    cpu_ms: process.cpu_ms,
                },
            );
        }
        // Vanished pids are dropped here: they stop contributing, and a later process given the
        // same pid starts fresh.
        self.seen = seen;
        self.last_update = Some(now);
        rate(interval_ms, elapsed?)
    }

    pub fn total_seconds(&self) -> f64 {
        self.total_ms as f64 / 1000.0
    }

    fn spent(&self, process: &ProcessCpu, elapsed: Option<Duration>) -> Spent {
        match self.seen.get(&process.pid) {
            // A CPU time that went down means a new process got the pid within the same second.
            Some(previous)
                if previous.start_time == process.start_time
                    && process.cpu_ms >= previous.cpu_ms =>
            {
                let grown = process.cpu_ms - previous.cpu_ms;
                Spent {
                    total_ms: grown,
                    interval_ms: grown,
                }
            }
            _ => Spent {
                total_ms: process.cpu_ms,
                interval_ms: if started_within(process, elapsed) {
                    process.cpu_ms
                } else {
                    0
                },
            },
        }
    }
}

/// Whether a process not seen before started after the previous sample, so that all of its CPU
/// time belongs to the interval. An older one (the first sample of a service, or one the previous
/// sample missed) spent an unknown part of it earlier, and would make the rate spike.
fn started_within(process: &ProcessCpu, elapsed: Option<Duration>) -> bool {
    // Both run time and elapsed seconds are truncated, so a process younger than the interval
    // shows at most one second more than the interval's whole seconds.
    elapsed.is_some_and(|elapsed| process.run_time <= elapsed.as_secs() + 1)
}

fn rate(cpu_ms: u64, elapsed: Duration) -> Option<f64> {
    let seconds = elapsed.as_secs_f64();
    (seconds > 0.0).then(|| cpu_ms as f64 / 1000.0 / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, start_time: u64, run_time: u64, cpu_ms: u64) -> ProcessCpu {
        ProcessCpu {
            pid,
            start_time,
            run_time,
            cpu_ms,
        }
    }

    fn approx(actual: Option<f64>, expected: f64) {
        let actual = actual.unwrap_or(f64::NAN);
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    /// An account updated with `before`, then with `after` 5 s later: the account, the time of
    /// the first update and the rate of the second.
    fn five_seconds_apart(
        before: &[ProcessCpu],
        after: &[ProcessCpu],
    ) -> (CpuAccount, Instant, Option<f64>) {
        let mut account = CpuAccount::default();
        let t0 = Instant::now();
        account.update(before, t0);
        let rate = account.update(after, t0 + Duration::from_secs(5));
        (account, t0, rate)
    }

    #[test]
    fn the_first_update_counts_lifetime_cpu_but_has_no_rate() {
        let mut account = CpuAccount::default();
        let rate = account.update(&[process(10, 1_000, 500, 7_000)], Instant::now());
        assert_eq!(rate, None);
        assert_eq!(account.total_seconds(), 7.0);
    }

    #[test]
    fn growth_of_a_known_process_is_the_rate() {
        let (account, _, rate) = five_seconds_apart(
            &[process(10, 1_000, 500, 7_000)],
            &[process(10, 1_000, 505, 12_000)],
        );
        approx(rate, 1.0);
        assert_eq!(account.total_seconds(), 12.0);
    }

    #[test]
    fn a_vanished_process_keeps_its_cpu_in_the_total() {
        let (mut account, t0, rate) = five_seconds_apart(
            &[
                process(10, 1_000, 500, 7_000),
                process(11, 1_000, 500, 3_000),
            ],
            &[process(10, 1_000, 505, 7_500)],
        );
        approx(rate, 0.1);
        assert_eq!(account.total_seconds(), 10.5);
        let rate = account.update(&[], t0 + Duration::from_secs(10));
        approx(rate, 0.0);
        assert_eq!(account.total_seconds(), 10.5);
    }

    #[test]
    fn a_process_born_in_the_interval_counts_all_its_cpu() {
        let (account, _, rate) = five_seconds_apart(
            &[process(10, 1_000, 500, 7_000)],
            &[process(10, 1_000, 505, 7_000), process(12, 1_503, 2, 2_000)],
        );
        approx(rate, 0.4);
        assert_eq!(account.total_seconds(), 9.0);
    }

    #[test]
    fn an_old_process_seen_late_counts_in_the_total_but_not_in_the_rate() {
        let (account, _, rate) = five_seconds_apart(&[], &[process(10, 1_000, 500, 7_000)]);
        approx(rate, 0.0);
        assert_eq!(account.total_seconds(), 7.0);
    }

    #[test]
    fn a_reused_pid_starts_fresh() {
        // Same pid, later start: a different process, all of whose CPU is new.
        let (mut account, t0, rate) = five_seconds_apart(
            &[process(10, 1_000, 500, 7_000)],
            &[process(10, 1_503, 2, 1_000)],
        );
        approx(rate, 0.2);
        assert_eq!(account.total_seconds(), 8.0);
        // Same pid and start second, but less CPU than before: also a different process.
        let rate = account.update(&[process(10, 1_503, 1, 400)], t0 + Duration::from_secs(10));
        approx(rate, 0.08);
        assert_eq!(account.total_seconds(), 8.4);
    }

    #[test]
    fn the_total_never_goes_down_across_restarts() {
        let mut account = CpuAccount::default();
        let t0 = Instant::now();
        let mut last = 0.0;
        let readings: [&[ProcessCpu]; 4] = [
            &[process(10, 1_000, 1, 900)],
            &[],
            &[process(20, 1_010, 1, 300)],
            &[process(20, 1_010, 6, 200)],
        ];
        for (i, processes) in readings.into_iter().enumerate() {
            account.update(processes, t0 + Duration::from_secs(5 * i as u64));
            assert!(account.total_seconds() >= last, "went down at {i}");
            last = account.total_seconds();
        }
        assert_eq!(last, 1.4);
    }
}
