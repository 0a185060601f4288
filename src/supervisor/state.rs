//! Per-service state files under `<root>/run/service/<name>/`, one value per file, each written
//! atomically (write beside, then rename) so a reader never sees half a value. The
//! process-metrics exporter, `enclave status` and the tests read them.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::paths::Root;

pub const SERVICE_STATE_DIR: &str = "/run/service";

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The first two arguments s6 gives `finish`: the exit code or 256, and the signal or 0.
    pub fn finish_args(self) -> (i32, i32) {
        match self {
            Exit::Code(c) => (c, 0),
            Exit::Signal(s) => (256, s),
        }
    }

    /// The container's exit code when this exit brings the tree down: 128+signal, else the
    /// code, and never 0 (a failure must not look like a clean stop).
    pub fn failure_code(self) -> u8 {
        match self {
            Exit::Signal(s) => (128 + s).clamp(1, 255) as u8,
            Exit::Code(c) => match u8::try_from(c) {
                Ok(0) | Err(_) => 1,
                Ok(c) => c,
            },
        }
    }

    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "code {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

impl FromStr for Exit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not an exit: {s:?}");
        let (kind, n) = s.trim().split_once(' ').ok_or_else(bad)?;
        let n: i32 = n.parse().map_err(|_| bad())?;
        match kind {
            "code" => Ok(Exit::Code(n)),
            "signal" => Ok(Exit::Signal(n)),
            _ => Err(bad()),
        }
    }
}

/// One word in the `status` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Starting,
    Up,
    Stopping,
    Down,
    /// A oneshot whose `up` succeeded.
    Finished,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Up => "up",
            Status::Stopping => "stopping",
            Status::Down => "down",
            Status::Finished => "finished",
            Status::Failed => "failed",
        }
    }

    pub const ALL: [Status; 6] = [
        Status::Starting,
        Status::Up,
        Status::Stopping,
        Status::Down,
        Status::Finished,
        Status::Failed,
    ];
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s.trim())
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

/// `longrun` or `oneshot`, in the `type` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Longrun,
    Oneshot,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Longrun => "longrun",
            Kind::Oneshot => "oneshot",
        }
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "longrun" => Ok(Kind::Longrun),
            "oneshot" => Ok(Kind::Oneshot),
            other => Err(format!("unknown type {other:?}")),
        }
    }
}

/// Everything known about one service, as stored in its state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub name: String,
    pub kind: Kind,
    pub status: Status,
    pub pid: Option<u32>,
    /// Restarts since boot.
    pub restart_count: u64,
    /// Unix seconds of the last restart.
    pub last_restart: Option<u64>,
    pub last_exit: Option<Exit>,
}

impl ServiceState {
    pub fn new(name: &str, kind: Kind) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            status: Status::Down,
            pid: None,
            restart_count: 0,
            last_restart: None,
            last_exit: None,
        }
    }

    /// Whether the service is where a healthy boot leaves it.
    pub fn is_healthy(&self) -> bool {
        match self.kind {
            Kind::Longrun => self.status == Status::Up,
            Kind::Oneshot => self.status == Status::Finished,
        }
    }
}

/// `<root>/run/service`.
#[derive(Debug, Clone)]
pub struct StateDir(PathBuf);

impl StateDir {
    pub fn new(root: &Root) -> Self {
        Self(root.map(SERVICE_STATE_DIR))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Removes what a previous boot left, so stale states are never read as current.
    pub fn reset(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::create_dir_all(&self.0)
    }

    pub fn write(&self, s: &ServiceState) -> io::Result<()> {
        let dir = self.0.join(&s.name);
        fs::create_dir_all(&dir)?;
        let opt = |v: Option<String>| v.unwrap_or_default();
        write_atomic(&dir, "type", s.kind.as_str())?;
        write_atomic(&dir, "pid", &opt(s.pid.map(|p| p.to_string())))?;
        write_atomic(&dir, "restart-count", &s.restart_count.to_string())?;
        write_atomic(
            &dir,
            "last-restart",
            &opt(s.last_restart.map(|t| t.to_string())),
        )?;
        write_atomic(&dir, "last-exit", &opt(s.last_exit.map(|e| e.to_string())))?;
        // Last, so a reader that sees the new status also sees the values that go with it.
        write_atomic(&dir, "status", s.status.as_str())
    }

    pub fn read(&self, name: &str) -> io::Result<ServiceState> {
        let dir = self.0.join(name);
        let read = |file: &str| -> io::Result<String> {
            match fs::read_to_string(dir.join(file)) {
                Ok(s) => Ok(s.trim().to_owned()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err(e),
            }
        };
        let invalid =
            |e: String| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}"));
        let parse_opt = |s: String| -> Option<String> { (!s.is_empty()).then_some(s) };
        Ok(ServiceState {
            name: name.to_owned(),
            kind: read("type")?.parse().map_err(invalid)?,
            status: read("status")?.parse().map_err(invalid)?,
            pid: parse_opt(read("pid")?).and_then(|s| s.parse().ok()),
            restart_count: read("restart-count")?.parse().unwrap_or(0),
            last_restart: parse_opt(read("last-restart")?).and_then(|s| s.parse().ok()),
            last_exit: parse_opt(read("last-exit")?).and_then(|s| s.parse().ok()),
        })
    }

    /// Every service with a state directory, sorted by name.
    pub fn read_all(&self) -> io::Result<Vec<ServiceState>> {
        let mut names: Vec<String> = fs::read_dir(&self.0)?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names.iter().map(|n| self.read(n)).collect()
    }
}

fn write_atomic(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let tmp = dir.join(format!(".{file}.tmp"));
    fs::write(&tmp, format!("{value}\n"))?;
    fs::rename(&tmp, dir.join(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StateDir::new(&Root::new(tmp.path()));
        dir.reset().expect("reset");
        let mut s = ServiceState::new("node-2", Kind::Longrun);
        s.status = Status::Up;
        s.pid = Some(42);
        s.restart_count = 3;
        s.last_restart = Some(1_700_000_000);
        s.last_exit = Some(Exit::Signal(9));
        dir.write(&s).expect("write");
        assert_eq!(dir.read("node-2").expect("read"), s);
        assert_eq!(
            fs::read_to_string(tmp.path().join("run/service/node-2/last-exit")).expect("file"),
            "signal 9\n"
        );
        assert_eq!(dir.read_all().expect("all"), vec![s]);
    }

    #[test]
    fn failure_codes_follow_the_shell_convention_and_are_never_zero() {
        assert_eq!(Exit::Signal(9).failure_code(), 137);
        assert_eq!(Exit::Code(3).failure_code(), 3);
        assert_eq!(Exit::Code(0).failure_code(), 1);
        assert_eq!(Exit::Signal(15).finish_args(), (256, 15));
        assert_eq!(Exit::Code(2).finish_args(), (2, 0));
    }
}
