//! The supervisor's side of the state files: every change is written at once; a write that
//! fails (a full disk) leaves the truth in memory, is retried on every sweep of the event loop,
//! and is announced — a log line when the files start and stop lagging, a metric meanwhile, and
//! the state page that `enclave status` and the process-metrics exporter read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::metrics::SupervisorMetrics;
use crate::service::state::{PageService, ServiceState, StateDir, StatePage};

pub struct StateFiles {
    dir: StateDir,
    /// Made at boot at its full size, then only overwritten in place.
    page: Option<File>,
    /// The true state of each service whose files lag behind.
    stale: BTreeMap<String, ServiceState>,
    since: Option<SystemTime>,
    error: Option<String>,
    /// The page could not be written either (reported once).
    page_failing: bool,
    metrics: SupervisorMetrics,
}

impl StateFiles {
    /// Makes the state page in `dir` (already reset for this boot). Without a page the
    /// supervisor still runs; readers then cannot tell lagging files.
    pub fn new(dir: StateDir, metrics: SupervisorMetrics) -> Self {
        let mut files = Self {
            dir,
            page: None,
            stale: BTreeMap::new(),
            since: None,
            error: None,
            page_failing: false,
            metrics,
        };
        match files.make_page() {
            Ok(page) => files.page = Some(page),
            Err(e) => tracing::warn!(
                path = %files.dir.page_path().display(),
                error = %e,
                "cannot make the state page; should the state files fall behind, `enclave status` cannot tell"
            ),
        }
        files.metrics.state_files_stale(0);
        files
    }

    fn make_page(&self) -> io::Result<File> {
        let page = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.page_path())?;
        page.write_all_at(&self.page().to_bytes(), 0)?;
        page.sync_all()?;
        Ok(page)
    }

    /// Records `state`: in its files if they can be written, else in memory and the page.
    pub fn write(&mut self, state: &ServiceState) {
        match self.dir.write(state) {
            Ok(()) => {
                if self.stale.remove(&state.name).is_some() {
                    self.changed();
                }
            }
            Err(e) => {
                self.failed(&e);
                self.stale.insert(state.name.clone(), state.clone());
                self.changed();
            }
        }
    }

    /// Tries again to write the files that lag behind.
    pub fn retry(&mut self) {
        if self.stale.is_empty() {
            return;
        }
        let before = self.stale.len();
        let mut last_error = None;
        self.stale.retain(|_, state| match self.dir.write(state) {
            Ok(()) => false,
            Err(e) => {
                last_error = Some(e);
                true
            }
        });
        if let Some(e) = last_error {
            self.failed(&e);
        }
        if self.stale.len() != before {
            self.changed();
        }
    }

    /// Services whose files lag behind.
    #[cfg(test)]
    pub fn stale(&self) -> usize {
        self.stale.len()
    }

    fn failed(&mut self, error: &io::Error) {
        self.metrics.state_file_write_failed();
        self.error = Some(error.to_string());
        if self.since.is_none() {
            self.since = Some(SystemTime::now());
            tracing::warn!(
                path = %self.dir.path().display(),
                error = %error,
                "cannot write the state files; the supervisor keeps the true state, retries, and `enclave status` shows it"
            );
        }
    }

    fn changed(&mut self) {
        self.metrics.state_files_stale(self.stale.len());
        if self.stale.is_empty() && self.since.is_some() {
            let lagged = self
                .since
                .and_then(|since| since.elapsed().ok())
                .unwrap_or_default();
            tracing::info!(?lagged, "the state files are written again and current");
            self.since = None;
            self.error = None;
        }
        self.publish_page();
    }

    fn page(&self) -> StatePage {
        StatePage {
            supervisor_pid: std::process::id(),
            stale: !self.stale.is_empty(),
            stale_since: self
                .since
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            error: self.error.clone(),
            services: self.stale.values().map(PageService::from).collect(),
            truncated: false,
        }
    }

    fn publish_page(&mut self) {
        let Some(file) = &self.page else { return };
        // In place over blocks allocated at boot: no new space needed.
        match file.write_all_at(&self.page().to_bytes(), 0) {
            Ok(()) => self.page_failing = false,
            Err(e) => {
                if !self.page_failing {
                    tracing::warn!(error = %e, "cannot update the state page");
                }
                self.page_failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Root;
    use crate::service::state::{Kind, Status};

    fn setup() -> (
        tempfile::TempDir,
        StateDir,
        StateFiles,
        prometheus::Registry,
    ) {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StateDir::new(&Root::new(tmp.path()));
        dir.reset().expect("reset");
        let registry = prometheus::Registry::new();
        let metrics = SupervisorMetrics::register(&registry).expect("metrics");
        let files = StateFiles::new(dir.clone(), metrics);
        (tmp, dir, files, registry)
    }

    fn gauge(registry: &prometheus::Registry, name: &str) -> f64 {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == name)
            .and_then(|f| f.get_metric().first().map(|m| m.get_gauge().get_value()))
            .unwrap_or(f64::NAN)
    }

    /// A file where the service's directory belongs: its writes fail, for root too. (The real
    /// full disk is in tests/supervisor/full_disk.rs.)
    fn break_dir(dir: &StateDir, name: &str) {
        let path = dir.path().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::write(&path, "not a directory").expect("blocker");
    }

    fn mend_dir(dir: &StateDir, name: &str) {
        std::fs::remove_file(dir.path().join(name)).expect("remove blocker");
    }

    #[test]
    fn failed_writes_keep_the_truth_in_the_page_and_catch_up_on_retry() {
        let (_tmp, dir, mut files, registry) = setup();
        let mut state = ServiceState::new("node-2", Kind::Longrun);
        files.write(&state);
        assert!(!dir.read_page().expect("page").expect("made").stale);

        break_dir(&dir, "node-2");
        state.status = Status::Up;
        state.pid = Some(77);
        state.restart_count = 1;
        files.write(&state);
        assert_eq!(files.stale(), 1);
        assert_eq!(
            gauge(&registry, "enclave_supervisor_state_files_stale"),
            1.0
        );
        let (states, page) = dir.read_all_with_page().expect("read");
        let page = page.expect("page");
        assert!(page.stale && page.stale_since.is_some(), "{page:?}");
        assert!(page.error.is_some());
        assert_eq!(states, vec![state.clone()]);

        files.retry();
        assert_eq!(files.stale(), 1, "still failing");
        mend_dir(&dir, "node-2");
        files.retry();
        assert_eq!(files.stale(), 0);
        assert_eq!(
            gauge(&registry, "enclave_supervisor_state_files_stale"),
            0.0
        );
        assert_eq!(dir.read("node-2").expect("files"), state);
        let page = dir.read_page().expect("page").expect("made");
        assert!(!page.stale && page.services.is_empty() && page.error.is_none());
    }
}
