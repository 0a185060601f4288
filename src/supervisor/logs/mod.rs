//! Service log capture. Every supervised process writes its stdout and stderr to one pipe; each
//! line read from it goes to the container's stdout prefixed `[<service>] ` and to size-rotated
//! files `<log_root>/<service>/current` + `@<timestamp>.s` archives, like s6-log `n10 s10485760`.
//!
//! The files get every line: a flooding service is slowed by the disk, through its own pipe only.
//! The container's stdout is best effort: one writer thread behind a bounded queue, so a slow
//! stdout or a flood costs stdout lines (counted and announced), never a blocked reader or
//! supervisor.
//!
//! Jobs: `lines` cuts output into safe lines, `files` keeps them in rotating files,
//! `stdout` forwards them to the container's stdout; this module wires a reader thread per
//! service to the three.

mod files;
mod lines;
mod stdout;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::config::schema::LogPolicy;
use files::{RotatingFile, ServiceLog};
use lines::{shown, LineSplitter};
use stdout::{start_writer, ActiveReader, Progress, STDOUT_QUEUE_LINES};

const READ_CHUNK: usize = 64 * 1024;

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
