//! `enclave --root ROOT status --watch` into a pipe, as a script or an operator's `| less` reads
//! it: plain frames, each starting with "enclave at ".

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub struct LiveView {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

/// Reads `source` into a shared buffer until it ends (EOF, or EIO once a pty's other side
/// closes).
pub fn collect(mut source: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
    let sink = buffer.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = source.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").extend_from_slice(&chunk[..n]);
        }
    });
    buffer
}

/// What [`collect`] has read so far, as text.
pub fn text(buffer: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buffer.lock().expect("lock")).into_owned()
}

impl LiveView {
    /// Starts the view of the enclave at `root`, refreshed every 500 ms.
    pub fn start(root: impl AsRef<OsStr>) -> Self {
        let mut child = super::enclave_at(root)
            .args(["status", "--watch", "--interval-ms", "500"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("enclave status --watch starts");
        let out = collect(child.stdout.take().expect("stdout"));
        Self { child, out }
    }

    /// Everything the view has printed so far.
    pub fn text(&self) -> String {
        text(&self.out)
    }

    /// How many frames have begun.
    pub fn frames(&self) -> usize {
        self.text().matches("enclave at ").count()
    }

    /// The newest complete frame: one that the next frame's first line follows.
    pub fn last_frame(&self) -> Option<String> {
        let text = self.text();
        let starts: Vec<usize> = text.match_indices("enclave at ").map(|(i, _)| i).collect();
        let (&last, rest) = starts.split_last()?;
        let &before = rest.last()?;
        Some(text[before..last].to_owned())
    }

    /// SIGTERM, as Ctrl-C would; the view's exit code (`None`: it had to be killed).
    pub fn stop(mut self) -> Option<i32> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
