//! Service log capture. Every supervised process writes its stdout and stderr to one pipe; each
//! line read from it goes to the container's stdout prefixed `[<service>] ` and to size-rotated
//! files `<log_root>/<service>/current` + `@<timestamp>.s` archives, like s6-log `n10 s10485760`.
//!
//! The files get every line: a flooding service is slowed by the disk, through its own pipe only.
//! The container's stdout is best effort: one writer thread behind a bounded queue, so a slow
//! stdout or a flood costs stdout lines (counted and announced), never a blocked reader or
//! supervisor.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::schema::LogPolicy;
use crate::logging::untrusted::escape_all;

/// Longer lines are emitted in pieces of this size, so a line without `\n` cannot grow unbounded.
const MAX_LINE: usize = 16 * 1024;
/// Lines waiting for the container's stdout.
const STDOUT_QUEUE_LINES: usize = 8192;
/// Bytes waiting for the container's stdout: 8192 lines of 16 KiB would be 128 MiB in PID 1.
const STDOUT_QUEUE_BYTES: usize = 8 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;
const DROP_NOTICE_INTERVAL: Duration = Duration::from_secs(1);
const CURRENT: &str = "current";
/// humantime cannot format instants past 9999-12-31T23:59:59Z.
const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// Captures the output of every service. Cheap to clone; all clones share the same state.
#[derive(Clone)]
pub struct LogHub {
    hub: Arc<Hub>,
}

struct Hub {
    log_root: PathBuf,
    policy: LogPolicy,
    /// One file per service, shared by all of its processes (a service restarts many times).
    files: Mutex<HashMap<String, Arc<Mutex<ServiceLog>>>>,
    stdout: SyncSender<Vec<u8>>,
    progress: Arc<Progress>,
}

/// Counters shared with the stdout writer. The writer must not hold the hub, which holds the
/// queue's sender: it would then never see the queue close.
struct Progress {
    readers: AtomicUsize,
    queued_bytes: AtomicUsize,
    dropped: AtomicU64,
    reported: AtomicU64,
    writer_alive: AtomicBool,
    lock: Mutex<()>,
    changed: Condvar,
}

impl LogHub {
    /// `log_root` = `<root>/var/log`. Starts one writer thread for the container's stdout.
    pub fn new(log_root: PathBuf, policy: LogPolicy) -> Self {
        Self::with_sink(log_root, policy, Box::new(io::stdout()))
    }

    fn with_sink(log_root: PathBuf, policy: LogPolicy, sink: Box<dyn Write + Send>) -> Self {
        let (stdout, queue) = mpsc::sync_channel(STDOUT_QUEUE_LINES);
        let progress = Arc::new(Progress::new());
        start_writer(queue, sink, Arc::clone(&progress));
        let hub = Hub {
            log_root,
            policy,
            files: Mutex::new(HashMap::new()),
            stdout,
            progress,
        };
        Self { hub: Arc::new(hub) }
    }

    /// Takes ownership of the read end of a service's output pipe and starts a reader thread that
    /// runs until EOF, i.e. until every copy of the write end is closed: the supervisor must close
    /// its own copy once the child is spawned. Called once per spawned process of the service.
    pub fn attach(&self, service: &str, pipe_read_end: OwnedFd) {
        let reader = Reader {
            service: service.to_owned(),
            prefix: format!("[{service}] ").into_bytes(),
            log: self.hub.service_log(service),
            hub: Arc::clone(&self.hub),
            _active: ActiveReader::new(Arc::clone(&self.hub.progress)),
        };
        let pipe = File::from(pipe_read_end);
        let spawned = thread::Builder::new()
            .name(thread_name(service))
            .spawn(move || reader.run(pipe));
        // On failure the closure, and with it the pipe and the reader count, is dropped.
        if let Err(e) = spawned {
            tracing::warn!(
                service,
                error = %e,
                "cannot start a log reader; the process will get EPIPE on output"
            );
        }
    }

    /// How many lines were dropped from the container's stdout because it could not keep up.
    pub fn dropped_lines(&self) -> u64 {
        self.hub.progress.dropped.load(Ordering::Acquire)
    }

    /// Waits, up to `timeout`, until every attached reader has hit EOF and the stdout queue is
    /// drained (including the notice of dropped lines), so the last lines are not lost at exit.
    pub fn flush(&self, timeout: Duration) {
        if !self.hub.progress.wait_idle(timeout) {
            tracing::debug!(?timeout, "log flush timed out; some output may be lost");
        }
    }
}

impl Hub {
    fn service_log(&self, service: &str) -> Arc<Mutex<ServiceLog>> {
        let mut files = lock(&self.files);
        let log = files.entry(service.to_owned()).or_insert_with(|| {
            let file = is_file_name(service)
                .then(|| RotatingFile::new(self.log_root.join(service), self.policy));
            Arc::new(Mutex::new(ServiceLog::new(service, file)))
        });
        Arc::clone(log)
    }

    /// Queues a whole line for the container's stdout, or counts it as dropped: never blocks.
    fn send_stdout(&self, line: Vec<u8>) {
        let len = line.len();
        let progress = &self.progress;
        if !progress.reserve(len) {
            progress.dropped.fetch_add(1, Ordering::AcqRel);
            return;
        }
        if self.stdout.try_send(line).is_err() {
            progress.dropped.fetch_add(1, Ordering::AcqRel);
            progress.release(len);
        }
    }
}

/// Service names become directory names: keep them inside the log root.
fn is_file_name(service: &str) -> bool {
    !service.is_empty() && service != "." && service != ".." && !service.contains(['/', '\0'])
}

fn thread_name(service: &str) -> String {
    // A NUL in a thread name panics in spawn.
    format!("log {}", service.replace('\0', ""))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking writer leaves consistent data behind (at worst a half-written line in a
    // file), so carrying on beats losing all logs.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Progress {
    fn new() -> Self {
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
    fn notify(&self) {
        let _guard = lock(&self.lock);
        self.changed.notify_all();
    }

    fn reserve(&self, len: usize) -> bool {
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        // An empty queue takes any line, so a single long line is never refused.
        if before > 0 && before + len > STDOUT_QUEUE_BYTES {
            self.release(len);
            return false;
        }
        true
    }

    fn release(&self, len: usize) {
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

    fn wait_idle(&self, timeout: Duration) -> bool {
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
struct ActiveReader(Arc<Progress>);

impl ActiveReader {
    fn new(progress: Arc<Progress>) -> Self {
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

/// Reads one process's pipe until EOF.
struct Reader {
    service: String,
    prefix: Vec<u8>,
    log: Arc<Mutex<ServiceLog>>,
    hub: Arc<Hub>,
    _active: ActiveReader,
}

impl Reader {
    fn run(self, mut pipe: File) {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut lines = LineSplitter::default();
        let mut emit = |line: &[u8]| self.emit(line);
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => lines.push(&buf[..n], &mut emit),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(
                        service = %self.service,
                        error = %e,
                        "cannot read the service's output pipe"
                    );
                    break;
                }
            }
        }
        lines.finish(&mut emit);
    }

    fn emit(&self, line: &[u8]) {
        let text = shown(line);
        self.hub.send_stdout(self.stdout_line(&text));
        lock(&self.log).append(text.as_bytes());
    }

    fn stdout_line(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + text.len() + 1);
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
        out
    }
}

/// A line of a service's output as it is kept and shown: UTF-8 (invalid bytes replaced) with
/// control characters other than tab escaped, so that no output (a PostgreSQL message quoting a
/// client's input, a stray escape sequence) can rewrite the terminal or fake a line break
/// within the container's stdout or the log files.
fn shown(line: &[u8]) -> std::borrow::Cow<'_, str> {
    match String::from_utf8_lossy(line) {
        std::borrow::Cow::Borrowed(text) => escape_all(text, |c| c == '\t'),
        std::borrow::Cow::Owned(text) => {
            std::borrow::Cow::Owned(escape_all(&text, |c| c == '\t').into_owned())
        }
    }
}

/// Cuts a byte stream into lines of at most `MAX_LINE` bytes, without their `\n`.
#[derive(Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn push<F: FnMut(&[u8])>(&mut self, mut data: &[u8], emit: &mut F) {
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            let segment = &data[..newline.unwrap_or(data.len())];
            self.extend(segment, emit);
            if newline.is_some() {
                emit(&self.partial);
                self.partial.clear();
            }
            data = &data[segment.len() + usize::from(newline.is_some())..];
        }
    }

    fn extend<F: FnMut(&[u8])>(&mut self, mut segment: &[u8], emit: &mut F) {
        while !segment.is_empty() {
            // Emitting only when more bytes follow keeps a line of exactly MAX_LINE whole,
            // instead of a full piece followed by an empty line.
            if self.partial.len() == MAX_LINE {
                emit(&self.partial);
                self.partial.clear();
            }
            let take = (MAX_LINE - self.partial.len()).min(segment.len());
            self.partial.extend_from_slice(&segment[..take]);
            segment = &segment[take..];
        }
    }

    /// The output of a process that did not end its last line.
    fn finish<F: FnMut(&[u8])>(self, emit: &mut F) {
        if !self.partial.is_empty() {
            emit(&self.partial);
        }
    }
}

/// A service's log file, with the error reporting of its writes.
struct ServiceLog {
    service: String,
    /// `None` when the service name cannot be a directory name.
    file: Option<RotatingFile>,
    failing: bool,
    record: Vec<u8>,
}

impl ServiceLog {
    fn new(service: &str, file: Option<RotatingFile>) -> Self {
        Self {
            service: service.to_owned(),
            file,
            failing: false,
            record: Vec::new(),
        }
    }

    /// Every line ends with `\n` in the file, pieces of long lines and final partial lines too,
    /// so the next process's first line starts on a line of its own.
    fn append(&mut self, line: &[u8]) {
        self.record.clear();
        self.record.extend_from_slice(line);
        self.record.push(b'\n');
        let result = match &mut self.file {
            Some(file) => file.append(&self.record),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the service name cannot be a directory name",
            )),
        };
        self.report(result);
    }

    /// Warns when writes start failing, not for every line of a persistent failure.
    fn report(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    tracing::warn!(
                        service = %self.service,
                        error = %e,
                        "cannot write the service's log file; its output still goes to stdout"
                    );
                }
                self.failing = true;
            }
        }
    }
}

/// `<dir>/current`, renamed to `<dir>/@<timestamp>.s` when full.
struct RotatingFile {
    dir: PathBuf,
    policy: LogPolicy,
    /// Closed after an error, so the next line reopens it and re-reads its size.
    current: Option<Current>,
}

struct Current {
    file: File,
    size: u64,
}

impl RotatingFile {
    fn new(dir: PathBuf, policy: LogPolicy) -> Self {
        Self {
            dir,
            policy,
            current: None,
        }
    }

    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        let len = record.len() as u64;
        let mut current = match self.current.take() {
            Some(c) => c,
            None => open_current(&self.dir)?,
        };
        let mut pruned = Ok(());
        // An empty file takes any record, so a record larger than the limit is still kept.
        if current.size > 0 && current.size.saturating_add(len) > self.policy.max_file_bytes {
            drop(current);
            fs::rename(
                self.dir.join(CURRENT),
                self.dir.join(archive_name(SystemTime::now())),
            )?;
            // Too many archives is no reason to lose the line: report it after writing.
            pruned = prune(&self.dir, self.policy.archives);
            current = open_current(&self.dir)?;
        }
        current.file.write_all(record)?;
        current.size += len;
        self.current = Some(current);
        pruned
    }
}

/// Appends to what a previous boot left, as s6-log does.
fn open_current(dir: &Path) -> io::Result<Current> {
    DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CURRENT))?;
    let size = file.metadata()?.len();
    Ok(Current { file, size })
}

/// `@<RFC 3339 UTC with nanoseconds>.s`: fixed width, so names sort by age.
fn archive_name(now: SystemTime) -> String {
    // humantime panics before the epoch and fails after year 9999; a clock that wrong only
    // risks two archives sharing a name, the later replacing the earlier.
    let max = UNIX_EPOCH + Duration::from_secs(MAX_RFC3339_SECS);
    let now = now.clamp(UNIX_EPOCH, max);
    format!("@{}.s", humantime::format_rfc3339_nanos(now))
}

fn is_archive(name: &str) -> bool {
    name.starts_with('@') && name.ends_with(".s")
}

/// Deletes the oldest archives so that at most `keep` remain.
fn prune(dir: &Path, keep: u32) -> io::Result<()> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_archive(n))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep as usize);
    for name in &names[..excess] {
        match fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn start_writer(queue: Receiver<Vec<u8>>, sink: Box<dyn Write + Send>, progress: Arc<Progress>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const WAIT: Duration = Duration::from_secs(10);

    /// Collects what the hub writes to "stdout"; blocks writes while the gate is closed.
    #[derive(Clone)]
    struct TestSink {
        out: Arc<Mutex<Vec<u8>>>,
        open: Arc<(Mutex<bool>, Condvar)>,
    }

    impl TestSink {
        fn new(open: bool) -> Self {
            Self {
                out: Arc::new(Mutex::new(Vec::new())),
                open: Arc::new((Mutex::new(open), Condvar::new())),
            }
        }

        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }

        fn text(&self) -> String {
            String::from_utf8(self.out.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for TestSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (gate, cond) = &*self.open;
            let mut open = gate.lock().unwrap();
            while !*open {
                open = cond.wait(open).unwrap();
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn policy(max_file_bytes: u64, archives: u32) -> LogPolicy {
        LogPolicy {
            max_file_bytes,
            archives,
        }
    }

    fn hub(root: &Path, policy: LogPolicy, sink: &TestSink) -> LogHub {
        LogHub::with_sink(root.to_owned(), policy, Box::new(sink.clone()))
    }

    /// Attaches a fresh pipe and returns its write end, as the child would hold it.
    fn attach(hub: &LogHub, service: &str) -> File {
        let (read, write) = nix::unistd::pipe().unwrap();
        hub.attach(service, read);
        File::from(write)
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn read(path: impl AsRef<Path>) -> Vec<u8> {
        fs::read(path).unwrap_or_default()
    }

    fn archives(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| is_archive(n))
            .collect();
        names.sort();
        names
    }

    fn split(data: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        let mut emit = |l: &[u8]| lines.push(l.to_vec());
        for chunk in data {
            splitter.push(chunk, &mut emit);
        }
        splitter.finish(&mut emit);
        lines
    }

    #[test]
    fn the_hub_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<LogHub>();
    }

    #[test]
    fn lines_are_prefixed_on_stdout_and_appended_to_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node-1");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(CURRENT), "previous boot\n").unwrap();
        let sink = TestSink::new(true);
        let hub = hub(tmp.path(), policy(1 << 20, 10), &sink);
        let mut w = attach(&hub, "node-1");
        w.write_all(b"hello\nworld\n").unwrap();
        drop(w);
        hub.flush(WAIT);
        assert_eq!(sink.text(), "[node-1] hello\n[node-1] world\n");
        assert_eq!(read(dir.join(CURRENT)), b"previous boot\nhello\nworld\n");
        assert_eq!(hub.dropped_lines(), 0);
    }

    #[test]
    fn the_service_directory_is_created_with_mode_0755() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("var/log");
        let sink = TestSink::new(true);
        let hub = hub(&root, policy(1 << 20, 10), &sink);
        let mut w = attach(&hub, "postgres");
        w.write_all(b"ready\n").unwrap();
        drop(w);
        hub.flush(WAIT);
        let mode = fs::metadata(root.join("postgres"))
            .unwrap()
            .permissions()
            .mode();
        // The umask may only take bits away.
        assert_eq!(mode & 0o7777 & !0o755, 0);
        assert_eq!(read(root.join("postgres/current")), b"ready\n");
    }

    #[test]
    fn a_final_partial_line_is_emitted_at_eof() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = TestSink::new(true);
        let hub = hub(tmp.path(), policy(1 << 20, 10), &sink);
        let mut w = attach(&hub, "svc");
        w.write_all(b"one\ntwo without newline").unwrap();
        drop(w);
        hub.flush(WAIT);
        assert_eq!(sink.text(), "[svc] one\n[svc] two without newline\n");
        assert_eq!(
            read(tmp.path().join("svc/current")),
            b"one\ntwo without newline\n"
        );
    }

    #[test]
    fn long_lines_are_emitted_in_16_kib_pieces() {
        let line = vec![b'x'; 2 * MAX_LINE + 10];
        let mut input = line.clone();
        input.push(b'\n');
        let lines = split(&[&input[..1000], &input[1000..]]);
        let lens: Vec<usize> = lines.iter().map(Vec::len).collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 10]);

        let exact = [vec![b'y'; MAX_LINE], b"\nz".to_vec()].concat();
        let lines = split(&[&exact]);
        assert_eq!(lines, [vec![b'y'; MAX_LINE], b"z".to_vec()]);
        assert_eq!(split(&[b"\n\na", b"b\n"]), [&b""[..], b"", b"ab"]);
    }

    #[test]
    fn a_long_line_reaches_stdout_and_the_file_in_pieces() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = TestSink::new(true);
        let hub = hub(tmp.path(), policy(1 << 20, 10), &sink);
        let mut w = attach(&hub, "svc");
        let writer = thread::spawn(move || {
            w.write_all(&vec![b'x'; MAX_LINE + 5]).unwrap();
            w.write_all(b"\n").unwrap();
        });
        writer.join().unwrap();
        hub.flush(WAIT);
        let piece = "x".repeat(MAX_LINE);
        assert_eq!(sink.text(), format!("[svc] {piece}\n[svc] xxxxx\n"));
        assert_eq!(
            read(tmp.path().join("svc/current")),
            format!("{piece}\nxxxxx\n").into_bytes()
        );
    }

    #[test]
    fn invalid_utf8_and_control_characters_are_shown_safely_on_stdout_and_in_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = TestSink::new(true);
        let hub = hub(tmp.path(), policy(1 << 20, 10), &sink);
        let mut w = attach(&hub, "svc");
        w.write_all(b"a\xffb\n").unwrap();
        w.write_all(b"tab\tkept, cr\r and \x1b[2J escaped\n")
            .unwrap();
        drop(w);
        hub.flush(WAIT);
        assert_eq!(
            sink.text(),
            "[svc] a\u{fffd}b\n[svc] tab\tkept, cr\\r and \\u{1b}[2J escaped\n"
        );
        assert_eq!(
            String::from_utf8(read(tmp.path().join("svc/current"))).unwrap(),
            "a\u{fffd}b\ntab\tkept, cr\\r and \\u{1b}[2J escaped\n"
        );
    }

    #[test]
    fn files_rotate_at_the_size_limit_and_keep_the_newest_archives() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = TestSink::new(true);
        let hub = hub(tmp.path(), policy(4096, 2), &sink);
        let mut w = attach(&hub, "svc");
        // 100-byte records: 40 fit in 4096 bytes, so 200 lines make 4 archives and a current.
        let lines: Vec<String> = (0..200).map(|i| format!("{i:0>99}")).collect();
        for line in &lines {
            writeln!(w, "{line}").unwrap();
        }
        drop(w);
        hub.flush(WAIT);
        let dir = tmp.path().join("svc");
        let kept = archives(&dir);
        assert_eq!(kept.len(), 2, "{kept:?}");
        let mut text = Vec::new();
        for name in &kept {
            let archive = read(dir.join(name));
            assert_eq!(archive.len(), 4000);
            text.extend(archive);
        }
        let current = read(dir.join(CURRENT));
        assert_eq!(current.len(), 4000);
        text.extend(current);
        let expected: String = lines[80..].iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(String::from_utf8(text).unwrap(), expected);
    }

    #[test]
    fn zero_archives_keeps_only_current() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = TestSink::new(true);
        let hub = hub(tmp.path(), policy(4096, 0), &sink);
        let mut w = attach(&hub, "svc");
        for i in 0..100 {
            writeln!(w, "{i:0>99}").unwrap();
        }
        drop(w);
        hub.flush(WAIT);
        let dir = tmp.path().join("svc");
        assert_eq!(archives(&dir), Vec::<String>::new());
        assert_eq!(read(dir.join(CURRENT)).len(), 2000);
    }

    #[test]
    fn archive_names_sort_by_age_and_survive_a_wrong_clock() {
        let early = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = early + Duration::from_nanos(1);
        assert_eq!(archive_name(early), "@2023-11-14T22:13:20.000000000Z.s");
        assert!(archive_name(early) < archive_name(later));
        assert_eq!(
            archive_name(UNIX_EPOCH - Duration::from_secs(5)),
            "@1970-01-01T00:00:00.000000000Z.s"
        );
        let far = UNIX_EPOCH + Duration::from_secs(MAX_RFC3339_SECS + 100);
        assert!(archive_name(far).starts_with("@9999-12-31T23:59:59"));
    }

    #[test]
    fn processes_of_one_service_share_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = TestSink::new(true);
        let hub = hub(tmp.path(), policy(1 << 20, 10), &sink);
        let writers: Vec<_> = ["first", "second"]
            .into_iter()
            .map(|name| {
                let mut w = attach(&hub, "node-3");
                thread::spawn(move || {
                    for i in 0..500 {
                        writeln!(w, "{name} {i}").unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        hub.flush(WAIT);
        let file = String::from_utf8(read(tmp.path().join("node-3/current"))).unwrap();
        let stdout = sink.text();
        for name in ["first", "second"] {
            let in_file: Vec<&str> = file.lines().filter(|l| l.starts_with(name)).collect();
            let expected: Vec<String> = (0..500).map(|i| format!("{name} {i}")).collect();
            assert_eq!(in_file, expected);
            let prefix = format!("[node-3] {name} ");
            assert_eq!(
                stdout.lines().filter(|l| l.starts_with(&prefix)).count(),
                500
            );
        }
        assert_eq!(file.lines().count(), 1000);
        assert_eq!(stdout.lines().count(), 1000);
    }

    #[test]
    fn flush_gives_up_on_a_pipe_that_stays_open() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = TestSink::new(true);
        let hub = hub(tmp.path(), policy(1 << 20, 10), &sink);
        let mut w = attach(&hub, "svc");
        w.write_all(b"still running\n").unwrap();
        let started = Instant::now();
        hub.flush(Duration::from_millis(200));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < WAIT, "{waited:?}");
        drop(w);
        hub.flush(WAIT);
        assert_eq!(sink.text(), "[svc] still running\n");
    }

    #[test]
    fn a_flood_drops_stdout_lines_but_not_file_lines_and_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = TestSink::new(false);
        let hub = hub(tmp.path(), policy(1 << 30, 10), &sink);
        let total = STDOUT_QUEUE_LINES + 5000;
        let mut w = attach(&hub, "flood");
        for i in 0..total {
            writeln!(w, "line {i}").unwrap();
        }
        drop(w);
        // stdout is stuck, yet the reader reaches EOF with every line in the file.
        let current = tmp.path().join("flood/current");
        wait_until("the file to get every line", || {
            read(&current).iter().filter(|&&b| b == b'\n').count() == total
        });
        wait_until("the reader to finish", || {
            hub.hub.progress.readers.load(Ordering::Acquire) == 0
        });
        let dropped = hub.dropped_lines();
        // The writer holds one line in its blocked write, the queue holds the rest.
        assert!(
            dropped >= (total - STDOUT_QUEUE_LINES - 1) as u64,
            "{dropped}"
        );
        assert!(dropped < total as u64, "{dropped}");

        sink.open();
        hub.flush(WAIT);
        let text = sink.text();
        let notice =
            format!("[supervisor] {dropped} log lines dropped from stdout (kept in the log files)");
        assert_eq!(text.lines().filter(|l| *l == notice).count(), 1, "{notice}");
        let forwarded = text.lines().filter(|l| l.starts_with("[flood] ")).count();
        assert_eq!(forwarded as u64, total as u64 - dropped);
    }

    #[test]
    fn a_slow_stdout_does_not_hold_up_other_services() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = TestSink::new(false);
        let hub = hub(tmp.path(), policy(1 << 20, 10), &sink);
        let mut quiet = attach(&hub, "quiet");
        let mut loud = attach(&hub, "loud");
        for i in 0..STDOUT_QUEUE_LINES + 100 {
            writeln!(loud, "{i}").unwrap();
        }
        writeln!(quiet, "still heard").unwrap();
        let current = tmp.path().join("quiet/current");
        wait_until("the quiet service's line", || {
            read(&current) == b"still heard\n"
        });
        drop((quiet, loud));
        sink.open();
        hub.flush(WAIT);
    }

    #[test]
    fn a_file_error_does_not_stop_stdout() {
        let tmp = tempfile::tempdir().unwrap();
        let not_a_dir = tmp.path().join("file");
        fs::write(&not_a_dir, "").unwrap();
        let sink = TestSink::new(true);
        let hub = hub(&not_a_dir, policy(1 << 20, 10), &sink);
        let mut w = attach(&hub, "svc");
        w.write_all(b"one\ntwo\n").unwrap();
        drop(w);
        hub.flush(WAIT);
        assert_eq!(sink.text(), "[svc] one\n[svc] two\n");
    }

    #[test]
    fn a_service_name_cannot_escape_the_log_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("log");
        let sink = TestSink::new(true);
        let hub = hub(&root, policy(1 << 20, 10), &sink);
        let mut w = attach(&hub, "..");
        w.write_all(b"x\n").unwrap();
        drop(w);
        hub.flush(WAIT);
        assert_eq!(sink.text(), "[..] x\n");
        assert!(!tmp.path().join(CURRENT).exists());
        assert!(!is_file_name("a/b"));
        assert!(is_file_name("node@1"));
    }
}
