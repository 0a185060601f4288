//! A service's log files: `<dir>/current`, appended to as s6-log does, renamed to
//! `@<timestamp>.s` when full, keeping the newest `archives` of them.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::schema::LogPolicy;

pub(super) const CURRENT: &str = "current";
/// humantime cannot format instants past 9999-12-31T23:59:59Z.
const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// A service's log file, with the error reporting of its writes.
pub(super) struct ServiceLog {
    service: String,
    /// `None` when the service name cannot be a directory name.
    file: Option<RotatingFile>,
    failing: bool,
    record: Vec<u8>,
}

impl ServiceLog {
    pub(super) fn new(service: &str, file: Option<RotatingFile>) -> Self {
        Self {
            service: service.to_owned(),
            file,
            failing: false,
            record: Vec::new(),
        }
    }

    /// Every line ends with `\n` in the file, pieces of long lines and final partial lines too,
    /// so the next process's first line starts on a line of its own.
    pub(super) fn append(&mut self, line: &[u8]) {
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
pub(super) struct RotatingFile {
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
    pub(super) fn new(dir: PathBuf, policy: LogPolicy) -> Self {
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

pub(super) fn is_archive(name: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
