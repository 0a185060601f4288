//! Reading the configuration and its verifying key without ever hanging on them.
//!
//! `open()` of a FIFO blocks until someone writes to it, and opening a device can have side
//! effects (a tape rewinds, a watchdog starts): a configuration that is not a regular file would
//! hold `enclave init` before it could do anything at all. So the path is first opened with
//! `O_PATH` (which neither blocks nor touches the object), its type checked on that descriptor,
//! and only a regular file is opened for reading, non-blocking, then checked again by `fstat`
//! to be the very same file (no stat-then-open race can slip a FIFO in).

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A FIFO, socket, device or directory.
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is larger than {0} bytes")]
    TooLarge(u64),
}

/// The whole content of the regular file at `path`, at most `max_bytes`.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let probe = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)?;
    let expected = probe.metadata()?;
    check_regular(&expected)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let opened = file.metadata()?;
    check_regular(&opened)?;
    if (opened.dev(), opened.ino()) != (expected.dev(), expected.ino()) {
        return Err(FileError::Io(io::Error::other(
            "the file was replaced while it was being opened",
        )));
    }
    read_all(file, max_bytes)
}

fn check_regular(metadata: &Metadata) -> Result<(), FileError> {
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO (named pipe)"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_char_device() {
        "character device"
    } else {
        "special file"
    };
    Err(FileError::NotRegular(what))
}

fn read_all(file: File, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(FileError::TooLarge(max_bytes));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_regular_file_is_read_and_a_symlink_to_one_too() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("c.json");
        std::fs::write(&file, "{}").expect("write");
        assert_eq!(read_bounded(&file, 10).expect("read"), b"{}");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert_eq!(read_bounded(&link, 10).expect("read"), b"{}");
        assert!(matches!(
            read_bounded(&file, 1),
            Err(FileError::TooLarge(1))
        ));
    }

    #[test]
    fn special_files_are_refused_at_once_without_blocking() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("socket");
        let cases: [(&Path, &str); 4] = [
            (&fifo, "FIFO"),
            (&socket, "socket"),
            (Path::new("/dev/null"), "character device"),
            (dir.path(), "directory"),
        ];
        for (path, kind) in cases {
            let started = Instant::now();
            let error = read_bounded(path, 100).expect_err("refused");
            assert!(started.elapsed() < Duration::from_secs(1));
            assert!(error.to_string().contains(kind), "{path:?}: {error}");
        }
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let error = read_bounded(Path::new("/nonexistent/c.json"), 10).expect_err("missing");
        assert!(matches!(error, FileError::Io(ref e) if e.kind() == io::ErrorKind::NotFound));
    }
}
