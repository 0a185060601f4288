//! Per-service state files under `<root>/run/service/<name>/`, one value per file, each written
//! atomically (write beside, then rename) so a reader never sees half a value. The
//! process-metrics exporter, `enclave status` and the tests read them.
//!
//! Writing a new file needs free space; when there is none (a full disk) the files of a service
//! lag behind the supervisor. The supervisor then keeps the truth in memory, retries, and puts
//! the true state of every lagging service in the state page `.supervisor.json`: a file of fixed
//! size made at boot and overwritten in place, which needs no new space. [`StateDir::read_all`]
//! reads the page too, so every reader sees the supervisor's view, not the stale files.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::paths::Root;

pub const SERVICE_STATE_DIR: &str = "/run/service";
/// The state page, in the state directory (a leading dot: not a service).
pub const PAGE_FILE: &str = ".supervisor.json";
/// The page's fixed size: its JSON padded with spaces. Room for about 400 lagging services.
pub const PAGE_BYTES: usize = 64 * 1024;
/// A reader may catch the page while it is being overwritten: it reads again.
const PAGE_READ_ATTEMPTS: u32 = 5;
const PAGE_READ_RETRY: Duration = Duration::from_millis(10);
/// The supervisor may be creating a service's directory while it is read: its `status` file is
/// written last, so a read can briefly see a service without one.
const LOAD_ATTEMPTS: u32 = 3;
const LOAD_RETRY: Duration = Duration::from_millis(50);

/// Why the state directory cannot be read, in words for an operator.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "no service state at {}: the supervisor is probably not running, or --root is wrong",
        .0.display()
    )]
    Missing(PathBuf),
    #[error(
        "cannot read the service state at {}: {source} (is the supervisor running, and is --root right?)",
        .path.display()
    )]
    Unreadable { path: PathBuf, source: io::Error },
}

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

/// The state page: whether the state files are current, and the true state of each service
/// whose files lag behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatePage {
    pub supervisor_pid: u32,
    /// Some service's files could not be written: they are older than `services` says.
    pub stale: bool,
    /// Unix seconds of the first failed write since the files were last current.
    pub stale_since: Option<u64>,
    /// The last write error.
    pub error: Option<String>,
    /// The true state of each service whose files lag behind.
    pub services: Vec<PageService>,
    /// More services lagged than the page holds.
    #[serde(default)]
    pub truncated: bool,
}

/// One service in the page, as the files would say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageService {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub pid: Option<u32>,
    pub restart_count: u64,
    pub last_restart: Option<u64>,
    pub last_exit: Option<String>,
}

impl From<&ServiceState> for PageService {
    fn from(s: &ServiceState) -> Self {
        Self {
            name: s.name.clone(),
            kind: s.kind.as_str().to_owned(),
            status: s.status.as_str().to_owned(),
            pid: s.pid,
            restart_count: s.restart_count,
            last_restart: s.last_restart,
            last_exit: s.last_exit.map(|e| e.to_string()),
        }
    }
}

impl TryFrom<&PageService> for ServiceState {
    type Error = String;

    fn try_from(p: &PageService) -> Result<Self, String> {
        Ok(Self {
            name: p.name.clone(),
            kind: p.kind.parse()?,
            status: p.status.parse()?,
            pid: p.pid,
            restart_count: p.restart_count,
            last_restart: p.last_restart,
            last_exit: p.last_exit.as_deref().map(str::parse).transpose()?,
        })
    }
}

impl StatePage {
    /// The page as written: compact JSON padded with spaces to exactly [`PAGE_BYTES`]; services
    /// that do not fit are left out and `truncated` set.
    pub fn to_bytes(&self) -> Vec<u8> {
        fn json<T: Serialize>(value: &T) -> Vec<u8> {
            serde_json::to_vec(value).unwrap_or_default()
        }
        let mut bytes = json(self);
        if bytes.len() >= PAGE_BYTES {
            let mut page = Self {
                services: Vec::new(),
                truncated: true,
                ..self.clone()
            };
            // Each kept service costs its JSON and a comma.
            let mut room = PAGE_BYTES.saturating_sub(json(&page).len() + 1);
            for service in &self.services {
                let cost = json(service).len() + 1;
                if cost > room {
                    break;
                }
                room -= cost;
                page.services.push(service.clone());
            }
            bytes = json(&page);
        }
        bytes.resize(PAGE_BYTES, b' ');
        bytes
    }

    fn parse(bytes: &[u8]) -> io::Result<Self> {
        serde_json::from_slice(bytes.trim_ascii_end())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{PAGE_FILE}: {e}")))
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

    /// Every service with a state directory, sorted by name, as the supervisor sees it: the
    /// state page's entry where a service's files lag behind.
    pub fn read_all(&self) -> io::Result<Vec<ServiceState>> {
        Ok(self.read_all_with_page()?.0)
    }

    /// [`read_all`](Self::read_all) and the state page it used (`None` when there is none).
    pub fn read_all_with_page(&self) -> io::Result<(Vec<ServiceState>, Option<StatePage>)> {
        let mut names: Vec<String> = fs::read_dir(&self.0)?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        let page = self.read_page()?;
        let truth: Vec<ServiceState> = match &page {
            Some(page) if page.stale => page
                .services
                .iter()
                .map(|p| {
                    ServiceState::try_from(p).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("{PAGE_FILE}: {e}"))
                    })
                })
                .collect::<io::Result<_>>()?,
            _ => Vec::new(),
        };
        // A service whose very first files could not be written exists only in the page.
        for state in &truth {
            if !names.contains(&state.name) {
                names.push(state.name.clone());
            }
        }
        names.sort();
        let states = names
            .iter()
            .map(|n| match truth.iter().find(|t| &t.name == n) {
                Some(state) => Ok(state.clone()),
                None => self.read(n),
            })
            .collect::<io::Result<_>>()?;
        Ok((states, page))
    }

    /// [`read_all_with_page`](Self::read_all_with_page) for readers outside the supervisor
    /// (`enclave status`, the live view): a service caught half-written is read again, and
    /// errors say what the operator should check.
    pub fn load(&self) -> Result<(Vec<ServiceState>, Option<StatePage>), LoadError> {
        let mut attempt = 1;
        loop {
            match self.read_all_with_page() {
                Ok(loaded) => return Ok(loaded),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(LoadError::Missing(self.0.clone()))
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData && attempt < LOAD_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(LOAD_RETRY);
                }
                Err(source) => {
                    return Err(LoadError::Unreadable {
                        path: self.0.clone(),
                        source,
                    })
                }
            }
        }
    }

    pub fn page_path(&self) -> PathBuf {
        self.0.join(PAGE_FILE)
    }

    /// The state page, `None` when there is none (a supervisor that could not make it, or an
    /// older one).
    pub fn read_page(&self) -> io::Result<Option<StatePage>> {
        let mut attempt = 1;
        loop {
            let bytes = match fs::read(self.page_path()) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            match StatePage::parse(&bytes) {
                Ok(page) => return Ok(Some(page)),
                Err(_) if attempt < PAGE_READ_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(PAGE_READ_RETRY);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn write_atomic(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let tmp = dir.join(format!(".{file}.tmp"));
    if let Err(e) = fs::write(&tmp, format!("{value}\n")) {
        // On a full disk the file is created but not written: leave nothing behind.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
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
    fn the_page_has_a_fixed_size_and_its_lagging_services_override_their_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StateDir::new(&Root::new(tmp.path()));
        dir.reset().expect("reset");
        let mut old = ServiceState::new("node-2", Kind::Longrun);
        old.status = Status::Up;
        old.pid = Some(10);
        dir.write(&old).expect("write");
        dir.write(&ServiceState::new("postgres", Kind::Longrun))
            .expect("write");
        let mut truth = old.clone();
        truth.pid = Some(11);
        truth.restart_count = 1;
        truth.last_exit = Some(Exit::Signal(9));
        let fresh = ServiceState::new("only-in-page", Kind::Oneshot);
        let page = StatePage {
            supervisor_pid: 1,
            stale: true,
            stale_since: Some(1_700_000_000),
            error: Some("No space left on device (os error 28)".into()),
            services: vec![PageService::from(&truth), PageService::from(&fresh)],
            truncated: false,
        };
        let bytes = page.to_bytes();
        assert_eq!(bytes.len(), PAGE_BYTES);
        fs::write(dir.page_path(), &bytes).expect("page");
        let (states, read) = dir.read_all_with_page().expect("read");
        assert_eq!(read, Some(page.clone()));
        let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["node-2", "only-in-page", "postgres"]);
        assert_eq!(states[0], truth);
        assert_eq!(states[1], fresh);
        assert_eq!(states[2].status, Status::Down);
        // A current page changes nothing.
        let current = StatePage {
            stale: false,
            ..page
        };
        fs::write(dir.page_path(), current.to_bytes()).expect("page");
        assert_eq!(dir.read_all().expect("read")[0], old);
    }

    #[test]
    fn a_page_with_too_many_services_is_cut_and_says_so() {
        let many: Vec<PageService> = (0..2000)
            .map(|i| PageService::from(&ServiceState::new(&format!("service-{i}"), Kind::Longrun)))
            .collect();
        let page = StatePage {
            stale: true,
            services: many,
            ..StatePage::default()
        };
        let bytes = page.to_bytes();
        assert_eq!(bytes.len(), PAGE_BYTES);
        let read = StatePage::parse(&bytes).expect("parse");
        assert!(read.truncated);
        assert!(!read.services.is_empty() && read.services.len() < 2000);
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
