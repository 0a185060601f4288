//! The hub end to end: pipes in, the container's stdout (a test sink) and the files out.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::files::{is_archive, CURRENT};
use super::lines::MAX_LINE;
use super::stdout::STDOUT_QUEUE_LINES;
use super::{is_file_name, LogHub};
use crate::config::schema::LogPolicy;

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

/// A hub over a temporary log root and a test sink.
struct Fixture {
    tmp: tempfile::TempDir,
    root: PathBuf,
    sink: TestSink,
    hub: LogHub,
}

impl Fixture {
    /// Rotation at `max_file_bytes`, keeping `archives`; stdout open or blocked.
    fn new(max_file_bytes: u64, archives: u32, stdout_open: bool) -> Self {
        Self::at(None, max_file_bytes, archives, stdout_open)
    }

    /// An ordinary hub: 1 MiB files, 10 archives, stdout open.
    fn plain() -> Self {
        Self::new(1 << 20, 10, true)
    }

    /// With the log root at `sub` inside the temporary directory.
    fn at(sub: Option<&str>, max_file_bytes: u64, archives: u32, stdout_open: bool) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = match sub {
            Some(sub) => tmp.path().join(sub),
            None => tmp.path().to_owned(),
        };
        let sink = TestSink::new(stdout_open);
        let policy = LogPolicy {
            max_file_bytes,
            archives,
        };
        let hub = LogHub::with_sink(root.clone(), policy, Box::new(sink.clone()));
        Self {
            tmp,
            root,
            sink,
            hub,
        }
    }

    /// Attaches a fresh pipe and returns its write end, as the child would hold it.
    fn attach(&self, service: &str) -> fs::File {
        let (read, write) = nix::unistd::pipe().unwrap();
        self.hub.attach(service, read);
        fs::File::from(write)
    }

    /// A process of `service` that writes `output` and exits; then everything is flushed.
    fn run(&self, service: &str, output: &[u8]) {
        let mut w = self.attach(service);
        w.write_all(output).unwrap();
        drop(w);
        self.flush();
    }

    fn flush(&self) {
        self.hub.flush(WAIT);
    }

    fn current(&self, service: &str) -> Vec<u8> {
        read(self.root.join(service).join(CURRENT))
    }
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

#[test]
fn the_hub_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<LogHub>();
}

#[test]
fn lines_are_prefixed_on_stdout_and_appended_to_the_file() {
    let f = Fixture::plain();
    let dir = f.root.join("node-1");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(CURRENT), "previous boot\n").unwrap();
    f.run("node-1", b"hello\nworld\n");
    assert_eq!(f.sink.text(), "[node-1] hello\n[node-1] world\n");
    assert_eq!(f.current("node-1"), b"previous boot\nhello\nworld\n");
    assert_eq!(f.hub.dropped_lines(), 0);
}

#[test]
fn the_service_directory_is_created_with_mode_0755() {
    let f = Fixture::at(Some("var/log"), 1 << 20, 10, true);
    f.run("postgres", b"ready\n");
    let mode = fs::metadata(f.root.join("postgres"))
        .unwrap()
        .permissions()
        .mode();
    // The umask may only take bits away.
    assert_eq!(mode & 0o7777 & !0o755, 0);
    assert_eq!(f.current("postgres"), b"ready\n");
}

#[test]
fn a_final_partial_line_is_emitted_at_eof() {
    let f = Fixture::plain();
    f.run("svc", b"one\ntwo without newline");
    assert_eq!(f.sink.text(), "[svc] one\n[svc] two without newline\n");
    assert_eq!(f.current("svc"), b"one\ntwo without newline\n");
}

#[test]
fn a_long_line_reaches_stdout_and_the_file_in_pieces() {
    let f = Fixture::plain();
    let mut w = f.attach("svc");
    let writer = thread::spawn(move || {
        w.write_all(&vec![b'x'; MAX_LINE + 5]).unwrap();
        w.write_all(b"\n").unwrap();
    });
    writer.join().unwrap();
    f.flush();
    let piece = "x".repeat(MAX_LINE);
    assert_eq!(f.sink.text(), format!("[svc] {piece}\n[svc] xxxxx\n"));
    assert_eq!(f.current("svc"), format!("{piece}\nxxxxx\n").into_bytes());
}

#[test]
fn invalid_utf8_and_control_characters_are_shown_safely_on_stdout_and_in_the_file() {
    let f = Fixture::plain();
    f.run("svc", b"a\xffb\ntab\tkept, cr\r and \x1b[2J escaped\n");
    assert_eq!(
        f.sink.text(),
        "[svc] a\u{fffd}b\n[svc] tab\tkept, cr\\r and \\u{1b}[2J escaped\n"
    );
    assert_eq!(
        String::from_utf8(f.current("svc")).unwrap(),
        "a\u{fffd}b\ntab\tkept, cr\\r and \\u{1b}[2J escaped\n"
    );
}

#[test]
fn files_rotate_at_the_size_limit_and_keep_the_newest_archives() {
    let f = Fixture::new(4096, 2, true);
    // 100-byte records: 40 fit in 4096 bytes, so 200 lines make 4 archives and a current.
    let lines: Vec<String> = (0..200).map(|i| format!("{i:0>99}")).collect();
    let output: String = lines.iter().map(|l| format!("{l}\n")).collect();
    f.run("svc", output.as_bytes());
    let dir = f.root.join("svc");
    let kept = archives(&dir);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let mut text = Vec::new();
    for name in &kept {
        let archive = read(dir.join(name));
        assert_eq!(archive.len(), 4000);
        text.extend(archive);
    }
    let current = f.current("svc");
    assert_eq!(current.len(), 4000);
    text.extend(current);
    let expected: String = lines[80..].iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(String::from_utf8(text).unwrap(), expected);
}

#[test]
fn zero_archives_keeps_only_current() {
    let f = Fixture::new(4096, 0, true);
    let output: String = (0..100).map(|i| format!("{i:0>99}\n")).collect();
    f.run("svc", output.as_bytes());
    assert_eq!(archives(&f.root.join("svc")), Vec::<String>::new());
    assert_eq!(f.current("svc").len(), 2000);
}

#[test]
fn processes_of_one_service_share_its_file() {
    let f = Fixture::plain();
    let writers: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|name| {
            let mut w = f.attach("node-3");
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
    f.flush();
    let file = String::from_utf8(f.current("node-3")).unwrap();
    let stdout = f.sink.text();
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
    let f = Fixture::plain();
    let mut w = f.attach("svc");
    w.write_all(b"still running\n").unwrap();
    let started = Instant::now();
    f.hub.flush(Duration::from_millis(200));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < WAIT, "{waited:?}");
    drop(w);
    f.flush();
    assert_eq!(f.sink.text(), "[svc] still running\n");
}

#[test]
fn a_flood_drops_stdout_lines_but_not_file_lines_and_says_so() {
    let f = Fixture::new(1 << 30, 10, false);
    let total = STDOUT_QUEUE_LINES + 5000;
    let mut w = f.attach("flood");
    for i in 0..total {
        writeln!(w, "line {i}").unwrap();
    }
    drop(w);
    // stdout is stuck, yet the reader reaches EOF with every line in the file.
    wait_until("the file to get every line", || {
        f.current("flood").iter().filter(|&&b| b == b'\n').count() == total
    });
    wait_until("the reader to finish", || {
        f.hub.hub.progress.readers.load(Ordering::Acquire) == 0
    });
    let dropped = f.hub.dropped_lines();
    // The writer holds one line in its blocked write, the queue holds the rest.
    assert!(
        dropped >= (total - STDOUT_QUEUE_LINES - 1) as u64,
        "{dropped}"
    );
    assert!(dropped < total as u64, "{dropped}");

    f.sink.open();
    f.flush();
    let text = f.sink.text();
    let notice =
        format!("[supervisor] {dropped} log lines dropped from stdout (kept in the log files)");
    assert_eq!(text.lines().filter(|l| *l == notice).count(), 1, "{notice}");
    let forwarded = text.lines().filter(|l| l.starts_with("[flood] ")).count();
    assert_eq!(forwarded as u64, total as u64 - dropped);
}

#[test]
fn a_slow_stdout_does_not_hold_up_other_services() {
    let f = Fixture::new(1 << 20, 10, false);
    let mut quiet = f.attach("quiet");
    let mut loud = f.attach("loud");
    for i in 0..STDOUT_QUEUE_LINES + 100 {
        writeln!(loud, "{i}").unwrap();
    }
    writeln!(quiet, "still heard").unwrap();
    wait_until("the quiet service's line", || {
        f.current("quiet") == b"still heard\n"
    });
    drop((quiet, loud));
    f.sink.open();
    f.flush();
}

#[test]
fn a_file_error_does_not_stop_stdout() {
    let f = Fixture::at(Some("file"), 1 << 20, 10, true);
    fs::write(&f.root, "").unwrap();
    f.run("svc", b"one\ntwo\n");
    assert_eq!(f.sink.text(), "[svc] one\n[svc] two\n");
}

#[test]
fn a_service_name_cannot_escape_the_log_root() {
    let f = Fixture::at(Some("log"), 1 << 20, 10, true);
    f.run("..", b"x\n");
    assert_eq!(f.sink.text(), "[..] x\n");
    assert!(!f.tmp.path().join(CURRENT).exists());
    assert!(!is_file_name("a/b"));
    assert!(is_file_name("node@1"));
}
