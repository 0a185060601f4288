//! A TDX quote through the kernel's configfs-tsm report interface
//! (Documentation/ABI/testing/configfs-tsm-report, Linux ≥ 6.7):
//!
//! 1. `mkdir <report dir>/<name>`: the kernel creates the entry with its attributes;
//! 2. `provider` must read `tdx_guest` (else this is not a TDX guest, or not configfs-tsm);
//! 3. read `generation`, write the 64 bytes of REPORTDATA to `inblob` (the kernel bumps
//!    `generation`), read the quote from `outblob`;
//! 4. `generation` must now be exactly one more than before: anything else means another
//!    process wrote to the same entry, and the quote may carry its REPORTDATA, not ours;
//! 5. `rmdir` the entry, whatever happened.
//!
//! The filesystem operations go through [`ConfigFs`], so the tests can stand in for the kernel
//! (a directory does not create attribute files by itself when made); the real implementation
//! is plain `std::fs`.

use std::fs::OpenOptions;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::quote::{TdQuote, REPORT_DATA_LEN};

/// Where the kernel offers the report interface.
pub const REPORT_DIR: &str = "/sys/kernel/config/tsm/report";
/// `provider` of an Intel TDX guest.
pub const TDX_PROVIDER: &str = "tdx_guest";
/// A TDX quote is a few KiB (a DICE-based one over 8 KiB); more than this is not a quote.
const MAX_ATTRIBUTE_BYTES: u64 = 1024 * 1024;

/// The four filesystem operations of the flow.
pub trait ConfigFs {
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// One `write(2)` of all of `data` at offset 0 of an existing file (attributes are never
    /// created, and a short write is an error: the kernel takes the value in one piece).
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real kernel interfaces (configfs, sysfs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl ConfigFs for Kernel {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_ATTRIBUTE_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_ATTRIBUTE_BYTES {
            return Err(io::Error::other(format!(
                "larger than {MAX_ATTRIBUTE_BYTES} bytes"
            )));
        }
        Ok(bytes)
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        let written = file.write(data)?;
        if written != data.len() {
            return Err(io::Error::other(format!(
                "short write: {written} of {} bytes",
                data.len()
            )));
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
}

/// Why no quote came out.
#[derive(Debug, thiserror::Error)]
pub enum TsmError {
    #[error("cannot create the report entry {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "{path} does not exist: the entry has no provider attribute, so {dir} is not a \
         configfs-tsm report directory (or no TSM provider is loaded)"
    )]
    NoProvider { path: PathBuf, dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "the report provider is {found:?}, not {TDX_PROVIDER:?}: this is not an Intel TDX guest"
    )]
    WrongProvider { found: String },
    #[error("{path} does not hold a number: {found:?}")]
    BadGeneration { path: PathBuf, found: String },
    #[error(
        "{path} went from {before} to {after} around our one write (expected {}): another \
         process wrote to the report entry, so the quote is discarded",
        before + 1
    )]
    GenerationMismatch {
        path: PathBuf,
        before: u64,
        after: u64,
    },
    #[error("{path} is empty: the provider produced no quote")]
    EmptyQuote { path: PathBuf },
    #[error("{path} is not a TDX quote this enclave can read: {source}")]
    BadQuote {
        path: PathBuf,
        source: super::quote::QuoteError,
    },
    #[error("the quote's REPORTDATA is not what was written to {path}: the quote is discarded")]
    ReportDataMismatch { path: PathBuf },
}

/// A quote whose REPORTDATA is `report_data`, from the configfs-tsm report directory `dir`.
/// The entry is removed afterwards, also when the flow fails.
pub fn request_quote(
    fs: &dyn ConfigFs,
    dir: &Path,
    report_data: &[u8; REPORT_DATA_LEN],
) -> Result<Vec<u8>, TsmError> {
    let entry = dir.join(entry_name());
    fs.create_dir(&entry).map_err(|source| TsmError::Create {
        path: entry.clone(),
        source,
    })?;
    let guard = Entry { fs, path: &entry };
    let result = quote_in(fs, dir, &entry, report_data);
    drop(guard);
    result
}

/// Removes the report entry when dropped, so no path out of the flow (an error, a panic)
/// leaves it behind.
struct Entry<'a> {
    fs: &'a dyn ConfigFs,
    path: &'a Path,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.fs.remove_dir(self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the configfs-tsm report entry");
        }
    }
}

/// A name no other requester uses: our pid and random bytes.
fn entry_name() -> String {
    use k256::elliptic_curve::rand_core::{OsRng, RngCore};
    format!("enclave-{}-{:016x}", std::process::id(), OsRng.next_u64())
}

fn quote_in(
    fs: &dyn ConfigFs,
    dir: &Path,
    entry: &Path,
    report_data: &[u8; REPORT_DATA_LEN],
) -> Result<Vec<u8>, TsmError> {
    let read = |name: &str| {
        let path = entry.join(name);
        fs.read(&path)
            .map_err(|source| TsmError::Read { path, source })
    };
    let provider_path = entry.join("provider");
    let provider = match fs.read(&provider_path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(TsmError::NoProvider {
                path: provider_path,
                dir: dir.to_owned(),
            })
        }
        Err(source) => {
            return Err(TsmError::Read {
                path: provider_path,
                source,
            })
        }
    };
    if provider != TDX_PROVIDER {
        return Err(TsmError::WrongProvider { found: provider });
    }
    let generation_path = entry.join("generation");
    let generation = |bytes: Vec<u8>| {
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        text.parse::<u64>().map_err(|_| TsmError::BadGeneration {
            path: generation_path.clone(),
            found: text,
        })
    };
    let before = generation(read("generation")?)?;
    let inblob = entry.join("inblob");
    fs.write(&inblob, report_data)
        .map_err(|source| TsmError::Write {
            path: inblob.clone(),
            source,
        })?;
    let quote = read("outblob")?;
    let after = generation(read("generation")?)?;
    if after != before + 1 {
        return Err(TsmError::GenerationMismatch {
            path: generation_path,
            before,
            after,
        });
    }
    let outblob = entry.join("outblob");
    if quote.is_empty() {
        return Err(TsmError::EmptyQuote { path: outblob });
    }
    let parsed = TdQuote::parse(&quote).map_err(|source| TsmError::BadQuote {
        path: outblob,
        source,
    })?;
    if parsed.report_data != *report_data {
        return Err(TsmError::ReportDataMismatch { path: inblob });
    }
    Ok(quote)
}

#[cfg(test)]
pub(crate) mod simulated {
    //! A stand-in for the kernel's configfs-tsm and TDX measurement interfaces on a real
    //! directory: `mkdir` of a report entry creates its attributes as the kernel does, a write
    //! to `inblob` bumps `generation` and produces a quote carrying it, `rmdir` removes the
    //! attributes with the entry; a write to an `rtmrN:sha384` file extends it.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use sha2::{Digest as _, Sha384};

    use super::*;
    use crate::attestation::testing::{synthetic_quote, QuoteSpec};

    /// How the simulated kernel misbehaves.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub enum Fault {
        #[default]
        None,
        /// Entries get no `provider` attribute.
        NoProvider,
        /// `provider` says SEV.
        SevProvider,
        /// Another writer writes `inblob` right after ours.
        ConcurrentWriter,
        /// `outblob` is empty.
        EmptyOutblob,
    }

    pub struct SimulatedKernel {
        pub fault: Fault,
        /// Every write: (path, bytes).
        pub writes: Mutex<Vec<(PathBuf, Vec<u8>)>>,
        /// The RTMR3 a quote reports.
        pub rtmr3: Mutex<[u8; 48]>,
        generations: Mutex<HashMap<PathBuf, u64>>,
    }

    impl Default for SimulatedKernel {
        fn default() -> Self {
            Self::with_fault(Fault::None)
        }
    }

    impl SimulatedKernel {
        pub fn with_fault(fault: Fault) -> Self {
            Self {
                fault,
                writes: Mutex::default(),
                rtmr3: Mutex::new([0; 48]),
                generations: Mutex::default(),
            }
        }

        fn write_attr(path: &Path, data: &[u8]) -> io::Result<()> {
            std::fs::write(path, data)
        }
    }

    impl ConfigFs for SimulatedKernel {
        fn create_dir(&self, path: &Path) -> io::Result<()> {
            std::fs::create_dir(path)?;
            match self.fault {
                Fault::NoProvider => {}
                Fault::SevProvider => Self::write_attr(&path.join("provider"), b"sev_guest\n")?,
                _ => Self::write_attr(&path.join("provider"), b"tdx_guest\n")?,
            }
            Self::write_attr(&path.join("generation"), b"0\n")?;
            Self::write_attr(&path.join("inblob"), b"")?;
            Self::write_attr(&path.join("outblob"), b"")?;
            Ok(())
        }

        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            std::fs::read(path)
        }

        fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
            self.writes
                .lock()
                .expect("lock")
                .push((path.to_owned(), data.to_vec()));
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("rtmr") && name.ends_with(":sha384") {
                // The kernel: exactly 48 bytes at offset 0, else EINVAL; then extend.
                if data.len() != 48 {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                }
                let old = std::fs::read(path)?;
                let new = Sha384::new()
                    .chain_update(&old)
                    .chain_update(data)
                    .finalize();
                if name == "rtmr3:sha384" {
                    self.rtmr3.lock().expect("lock").copy_from_slice(&new);
                }
                return std::fs::write(path, new);
            }
            if !path.exists() {
                return Err(io::ErrorKind::NotFound.into());
            }
            if name != "inblob" {
                return Err(io::Error::from_raw_os_error(libc::EACCES));
            }
            let entry = path.parent().expect("entry").to_owned();
            let mut generations = self.generations.lock().expect("lock");
            let generation = generations.entry(entry.clone()).or_insert(0);
            let mut report_data = [0u8; 64];
            report_data[..data.len().min(64)].copy_from_slice(&data[..data.len().min(64)]);
            *generation += 1;
            if self.fault == Fault::ConcurrentWriter {
                report_data = [0xba; 64];
                *generation += 1;
            }
            Self::write_attr(
                &entry.join("generation"),
                format!("{generation}\n").as_bytes(),
            )?;
            Self::write_attr(path, data)?;
            let quote = if self.fault == Fault::EmptyOutblob {
                Vec::new()
            } else {
                synthetic_quote(&QuoteSpec {
                    report_data,
                    rtmr3: *self.rtmr3.lock().expect("lock"),
                    ..QuoteSpec::default()
                })
            };
            Self::write_attr(&entry.join("outblob"), &quote)
        }

        fn remove_dir(&self, path: &Path) -> io::Result<()> {
            // configfs removes an entry's attributes with it.
            for name in ["provider", "generation", "inblob", "outblob"] {
                match std::fs::remove_file(path.join(name)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::remove_dir(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::simulated::{Fault, SimulatedKernel};
    use super::*;

    fn report_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("sys/kernel/config/tsm/report");
        std::fs::create_dir_all(&dir).expect("mkdir");
        (tmp, dir)
    }

    fn entries(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn run(fault: Fault) -> (Result<Vec<u8>, TsmError>, SimulatedKernel, Vec<String>) {
        let (_tmp, dir) = report_dir();
        let kernel = SimulatedKernel::with_fault(fault);
        let result = request_quote(&kernel, &dir, &[0x42; 64]);
        let left = entries(&dir);
        (result, kernel, left)
    }

    #[test]
    fn the_quote_carries_the_report_data_written_to_inblob_and_the_entry_is_removed() {
        let (result, kernel, left) = run(Fault::None);
        let quote = result.expect("a quote");
        assert_eq!(TdQuote::parse(&quote).expect("TDX").report_data, [0x42; 64]);
        let writes = kernel.writes.lock().expect("lock");
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert!(writes[0].0.ends_with("inblob"));
        assert_eq!(writes[0].1, vec![0x42; 64]);
        assert!(
            writes[0]
                .0
                .parent()
                .expect("entry")
                .file_name()
                .expect("name")
                .to_string_lossy()
                .starts_with("enclave-"),
            "{writes:?}"
        );
        assert!(left.is_empty(), "entry left behind: {left:?}");
    }

    #[test]
    fn a_concurrent_writer_is_a_generation_mismatch_and_no_quote() {
        let (result, _, left) = run(Fault::ConcurrentWriter);
        let error = result.expect_err("mismatch");
        assert!(
            matches!(
                error,
                TsmError::GenerationMismatch {
                    before: 0,
                    after: 2,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("another process"), "{error}");
        assert!(left.is_empty(), "entry left behind: {left:?}");
    }

    /// A request refused before it began: nothing was written and no entry is left.
    fn assert_untouched(kernel: &SimulatedKernel, left: &[String]) {
        assert!(
            kernel.writes.lock().expect("lock").is_empty(),
            "nothing written"
        );
        assert!(left.is_empty(), "entry left behind: {left:?}");
    }

    #[test]
    fn a_missing_provider_is_a_clear_error() {
        let (result, kernel, left) = run(Fault::NoProvider);
        let error = result.expect_err("no provider");
        assert!(matches!(error, TsmError::NoProvider { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("not a configfs-tsm report directory"),
            "{error}"
        );
        assert_untouched(&kernel, &left);
    }

    #[test]
    fn a_provider_other_than_tdx_is_refused() {
        let (result, kernel, left) = run(Fault::SevProvider);
        let error = result.expect_err("sev");
        assert!(
            matches!(&error, TsmError::WrongProvider { found } if found == "sev_guest"),
            "{error}"
        );
        assert!(
            error.to_string().contains("not an Intel TDX guest"),
            "{error}"
        );
        assert_untouched(&kernel, &left);
    }

    #[test]
    fn an_empty_outblob_is_an_error() {
        let (result, _, left) = run(Fault::EmptyOutblob);
        assert!(matches!(result, Err(TsmError::EmptyQuote { .. })));
        assert!(left.is_empty(), "entry left behind: {left:?}");
    }

    #[test]
    fn a_plain_directory_is_not_configfs_tsm() {
        // The real implementation on an ordinary directory: mkdir works but no attribute
        // appears, which is exactly what a missing provider looks like.
        let (_tmp, dir) = report_dir();
        let error = request_quote(&Kernel, &dir, &[0; 64]).expect_err("no provider");
        assert!(matches!(error, TsmError::NoProvider { .. }), "{error}");
        assert!(entries(&dir).is_empty());
        // And on a missing one, the entry cannot be made.
        let missing = dir.join("absent");
        let error = request_quote(&Kernel, &missing, &[0; 64]).expect_err("missing");
        assert!(matches!(error, TsmError::Create { .. }), "{error}");
    }
}
