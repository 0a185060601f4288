//! The container's stdout, best effort: one writer thread behind a queue bounded in lines and
//! bytes; what does not fit is dropped, counted, and announced at most once a second.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::lock;

/// Lines waiting for the container's stdout.
pub(super) const STDOUT_QUEUE_LINES: usize = 8192;
/// Bytes waiting for the container's stdout: 8192 lines of 16 KiB would be 128 MiB in PID 1.
const STDOUT_QUEUE_BYTES: usize = 8 * 1024 * 1024;
const DROP_NOTICE_INTERVAL: Duration = Duration::from_secs(1);

/// Counters shared with the stdout writer. The writer must not hold the hub, which holds the
/// queue's sender: it would then never see the queue close.
pub(super) struct Progress {
    pub(super) readers: AtomicUsize,
    pub(super) queued_bytes: AtomicUsize,
    pub(super) dropped: AtomicU64,
    pub(super) reported: AtomicU64,
    writer_alive: AtomicBool,
    lock: Mutex<()>,
    changed: Condvar,
}

impl Progress {
    pub(super) fn new() -> Self {
        Self {
            readers: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            writer_alive: AtomicBool::new(true),
            lock: Mutex::new(()),
            changed: Condvar::new(),
        }
    }

    /// Wakes `wait_idle`. Taking the lock orders this after a waiter's check of the counters.
    pub(super) fn notify(&self) {
        let _guard = lock(&self.lock);
        self.changed.notify_all();
    }

    pub(super) fn reserve(&self, len: usize) -> bool {
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        // An empty queue takes any line, so a single long line is never refused.
        if before > 0 && before + len > STDOUT_QUEUE_BYTES {
            self.release(len);
            return false;
        }
        true
    }

    pub(super) fn release(&self, len: usize) {
        if self.queued_bytes.fetch_sub(len, Ordering::AcqRel) == len {
            self.notify();
        }
    }

    fn unreported(&self) -> u64 {
        let dropped = self.dropped.load(Ordering::Acquire);
        dropped.saturating_sub(self.reported.load(Ordering::Acquire))
    }

    fn idle(&self) -> bool {
        self.readers.load(Ordering::Acquire) == 0
            && self.queued_bytes.load(Ordering::Acquire) == 0
            && (self.unreported() == 0 || !self.writer_alive.load(Ordering::Acquire))
    }

    pub(super) fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut guard = lock(&self.lock);
        loop {
            if self.idle() {
                return true;
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return false;
            }
            guard = match self.changed.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// Counts a reader from creation to drop, so a reader whose thread never starts is uncounted too.
pub(super) struct ActiveReader(Arc<Progress>);

impl ActiveReader {
    pub(super) fn new(progress: Arc<Progress>) -> Self {
        progress.readers.fetch_add(1, Ordering::AcqRel);
        Self(progress)
    }
}

impl Drop for ActiveReader {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::AcqRel);
        self.0.notify();
    }
}

pub(super) fn start_writer(
    queue: Receiver<Vec<u8>>,
    sink: Box<dyn Write + Send>,
    progress: Arc<Progress>,
) {
    let for_thread = Arc::clone(&progress);
    let spawned = thread::Builder::new()
        .name("log stdout".to_owned())
        .spawn(move || run_writer(queue, sink, for_thread));
    if let Err(e) = spawned {
        // The queue's receiver is gone with the closure, so every stdout line counts as
        // dropped; the files still get them.
        progress.writer_alive.store(false, Ordering::Release);
        tracing::warn!(error = %e, "cannot start the log writer; service output goes to files only");
    }
}

fn run_writer(queue: Receiver<Vec<u8>>, mut sink: Box<dyn Write + Send>, progress: Arc<Progress>) {
    let mut notices = DropNotices { last: None };
    loop {
        match queue.recv_timeout(notices.next_check(&progress)) {
            Ok(line) => write_line(&mut *sink, &line, &progress),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        notices.emit_due(&mut *sink, &progress);
    }
    progress.writer_alive.store(false, Ordering::Release);
    progress.notify();
}

fn write_line(sink: &mut dyn Write, line: &[u8], progress: &Progress) {
    // A closed or failing stdout must not back the queue up: the line is in the files anyway.
    let _ = sink.write_all(line);
    if progress.queued_bytes.load(Ordering::Acquire) == line.len() {
        let _ = sink.flush();
    }
    progress.release(line.len());
}

/// The `[supervisor] N log lines dropped` notice, at most once per `DROP_NOTICE_INTERVAL`.
struct DropNotices {
    last: Option<Instant>,
}

impl DropNotices {
    /// How long the writer may wait for a line. Even with nothing to report it wakes up now and
    /// then, because a drop can be counted just after it last looked.
    fn next_check(&self, progress: &Progress) -> Duration {
        match (progress.unreported(), self.last) {
            (0, _) => DROP_NOTICE_INTERVAL,
            (_, None) => Duration::ZERO,
            (_, Some(t)) => DROP_NOTICE_INTERVAL.saturating_sub(t.elapsed()),
        }
    }

    fn emit_due(&mut self, sink: &mut dyn Write, progress: &Progress) {
        let dropped = progress.dropped.load(Ordering::Acquire);
        let unreported = dropped.saturating_sub(progress.reported.load(Ordering::Acquire));
        let recent = self
            .last
            .is_some_and(|t| t.elapsed() < DROP_NOTICE_INTERVAL);
        if unreported == 0 || recent {
            return;
        }
        let notice = format!(
            "[supervisor] {unreported} log lines dropped from stdout (kept in the log files)\n"
        );
        let _ = sink.write_all(notice.as_bytes());
        let _ = sink.flush();
        self.last = Some(Instant::now());
        progress.reported.store(dropped, Ordering::Release);
        progress.notify();
    }
}
