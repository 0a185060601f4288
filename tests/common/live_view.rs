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
    out: Arc<Mutex<String>>,
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
        let mut stdout = child.stdout.take().expect("stdout");
        let out: Arc<Mutex<String>> = Arc::default();
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Self { child, out }
    }

    /// Everything the view has printed so far.
    pub fn text(&self) -> String {
        self.out.lock().expect("lock").clone()
    }

    /// How many frames have begun.
    pub fn frames(&self) -> usize {
        self.out
            .lock()
            .expect("lock")
            .matches("enclave at ")
            .count()
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
