//! Extending RTMR3 with the identity, and the event log that lets a verifier replay it.
//!
//! The kernel (≥ 6.16, Documentation/ABI/testing/sysfs-devices-virtual-misc-tdx_guest) exposes
//! each runtime measurement register as `measurements/rtmrN:sha384`: reading gives its 48
//! bytes, writing 48 bytes at offset 0 extends it: `RTMR = SHA-384(RTMR || digest)`. RTMR3 is
//! the one left to the workload. A register value alone says nothing, so every extension is
//! also appended to an event log (JSON lines, 0600): a verifier replays the log from the first
//! event's `rtmrBefore` and must arrive at the RTMR3 the quote reports.

use std::io::{self, BufRead as _, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha384};

use super::quote::{Measurement, MEASUREMENT_LEN};
use super::tsm::ConfigFs;

/// Where the kernel exposes RTMR3.
pub const RTMR3_PATH: &str = "/sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384";
/// Mode of the event log.
pub const EVENT_LOG_MODE: u32 = 0o600;

/// One extension, one line of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtmrEvent {
    /// RFC 3339 seconds, UTC.
    pub time: String,
    /// The register: 3.
    pub rtmr: u8,
    /// What was measured: `enclave-identity`.
    pub event: String,
    /// The boot whose identity this is.
    pub boot_id: String,
    /// The 48 bytes written (hex): SHA-384 of the identity's canonical form.
    pub digest: String,
    /// The register before and after (hex), as read; null when it could not be read.
    pub rtmr_before: Option<String>,
    pub rtmr_after: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RtmrError {
    #[error("cannot extend {path}: {source}")]
    Extend { path: PathBuf, source: io::Error },
    #[error(
        "{path} reads {found} after the extension, expected SHA-384(before || digest) = \
         {expected}: something else extended it at the same time"
    )]
    Unexpected {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("cannot append to the event log {path}: {source}")]
    Log { path: PathBuf, source: io::Error },
}

/// Why a log does not replay.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("event log line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("event log line {line}: {field} is not 48 bytes of hex")]
    BadHex { line: usize, field: &'static str },
    #[error(
        "event log line {line}: the register was {found} before this event, but replaying the \
         events before it gives {expected}: an extension is missing from the log"
    )]
    Gap {
        line: usize,
        found: String,
        expected: String,
    },
    #[error(
        "event log line {line}: the register was {found} after this event, but replaying gives \
         {expected}"
    )]
    Diverged {
        line: usize,
        found: String,
        expected: String,
    },
}

/// `SHA-384(register || digest)`: what the TDX module does on an extension.
pub fn extended(register: &Measurement, digest: &Measurement) -> Measurement {
    Sha384::new()
        .chain_update(register)
        .chain_update(digest)
        .finalize()
        .into()
}

/// The register before and after one extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension {
    pub before: Option<Measurement>,
    pub after: Option<Measurement>,
}

fn read_register(fs: &dyn ConfigFs, path: &Path) -> Option<Measurement> {
    let bytes = fs.read(path).ok()?;
    bytes.get(..MEASUREMENT_LEN)?.try_into().ok()
}

/// Extends the register at `path` with `digest` (one 48-byte write at offset 0), reading it
/// before and after. An after-value other than SHA-384(before || digest) is reported as
/// [`RtmrError::Unexpected`] by [`check`], not here: the extension did happen either way and
/// must be logged.
pub fn extend(
    fs: &dyn ConfigFs,
    path: &Path,
    digest: &Measurement,
) -> Result<Extension, RtmrError> {
    let before = read_register(fs, path);
    fs.write(path, digest).map_err(|source| RtmrError::Extend {
        path: path.to_owned(),
        source,
    })?;
    let after = read_register(fs, path);
    Ok(Extension { before, after })
}

/// Whether the register moved exactly by our extension.
pub fn check(path: &Path, extension: &Extension, digest: &Measurement) -> Result<(), RtmrError> {
    if let (Some(before), Some(after)) = (extension.before, extension.after) {
        let expected = extended(&before, digest);
        if after != expected {
            return Err(RtmrError::Unexpected {
                path: path.to_owned(),
                found: hex::encode(after),
                expected: hex::encode(expected),
            });
        }
    }
    Ok(())
}

/// Appends `event` as one JSON line to the log at `path` (created 0600; never truncated) and
/// syncs it.
pub fn append_event(path: &Path, event: &RtmrEvent) -> Result<(), RtmrError> {
    let log_err = |source| RtmrError::Log {
        path: path.to_owned(),
        source,
    };
    let mut line = serde_json::to_string(event).map_err(|e| log_err(io::Error::other(e)))?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(EVENT_LOG_MODE)
        .open(path)
        .map_err(log_err)?;
    file.write_all(line.as_bytes()).map_err(log_err)?;
    file.sync_all().map_err(log_err)
}

/// The events of a log.
pub fn read_events(text: &str) -> Result<Vec<RtmrEvent>, ReplayError> {
    let mut events = Vec::new();
    for (i, line) in io::Cursor::new(text).lines().enumerate() {
        let line = line.map_err(|e| ReplayError::Malformed {
            line: i + 1,
            reason: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(
            serde_json::from_str(&line).map_err(|e| ReplayError::Malformed {
                line: i + 1,
                reason: e.to_string(),
            })?,
        );
    }
    Ok(events)
}

fn measurement(text: &str, line: usize, field: &'static str) -> Result<Measurement, ReplayError> {
    let mut out = [0u8; MEASUREMENT_LEN];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| ReplayError::BadHex { line, field })?;
    Ok(out)
}

/// Replays `events` (for one register, in log order) and returns the register value they lead
/// to. The start is the first event's `rtmrBefore` (the value the register had when this log
/// began; all zeros at a TD's start), or zeros when it was not recorded. Every recorded
/// before/after value must agree with the replay.
pub fn replay(events: &[RtmrEvent]) -> Result<Measurement, ReplayError> {
    let mut register = [0u8; MEASUREMENT_LEN];
    for (i, event) in events.iter().enumerate() {
        let line = i + 1;
        let digest = measurement(&event.digest, line, "digest")?;
        if let Some(before) = &event.rtmr_before {
            let before = measurement(before, line, "rtmrBefore")?;
            if i == 0 {
                register = before;
            } else if before != register {
                return Err(ReplayError::Gap {
                    line,
                    found: hex::encode(before),
                    expected: hex::encode(register),
                });
            }
        }
        register = extended(&register, &digest);
        if let Some(after) = &event.rtmr_after {
            let after = measurement(after, line, "rtmrAfter")?;
            if after != register {
                return Err(ReplayError::Diverged {
                    line,
                    found: hex::encode(after),
                    expected: hex::encode(register),
                });
            }
        }
    }
    Ok(register)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::attestation::tsm::simulated::SimulatedKernel;

    fn event(digest: &Measurement, extension: &Extension) -> RtmrEvent {
        RtmrEvent {
            time: "2024-01-01T00:00:00Z".into(),
            rtmr: 3,
            event: "enclave-identity".into(),
            boot_id: "00".repeat(16),
            digest: hex::encode(digest),
            rtmr_before: extension.before.map(hex::encode),
            rtmr_after: extension.after.map(hex::encode),
        }
    }

    #[test]
    fn extension_writes_48_bytes_and_the_replayed_log_gives_the_register() {
        let dir = tempfile::tempdir().expect("tmp");
        let register = dir.path().join("rtmr3:sha384");
        // A TD starts with RTMR3 all zeros; something may have extended it before us.
        std::fs::write(&register, [0u8; 48]).expect("register");
        let kernel = SimulatedKernel::default();
        kernel
            .write(&register, &[0x11; 48])
            .expect("an earlier extension");
        let log = dir.path().join("identity-events.jsonl");
        let digests = [[0xa1u8; 48], [0xb2u8; 48]];
        for digest in &digests {
            let extension = extend(&kernel, &register, digest).expect("extend");
            check(&register, &extension, digest).expect("moved by our extension only");
            append_event(&log, &event(digest, &extension)).expect("log");
        }
        // Exactly 48 bytes per write.
        let writes = kernel.writes.lock().expect("lock");
        assert_eq!(writes.len(), 3);
        assert!(writes.iter().all(|(_, bytes)| bytes.len() == 48));
        assert_eq!(writes[1].1, vec![0xa1; 48]);
        // The log: two lines, 0600, appended.
        let text = std::fs::read_to_string(&log).expect("log");
        assert_eq!(text.lines().count(), 2);
        let mode = std::fs::metadata(&log).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Replaying from the first event's before-value reproduces the register.
        let events = read_events(&text).expect("events");
        let register_now: Measurement = std::fs::read(&register)
            .expect("read")
            .try_into()
            .expect("48 bytes");
        assert_eq!(replay(&events).expect("replays"), register_now);
        // And by hand: SHA-384 chaining from the earlier value.
        let earlier = extended(&[0u8; 48], &[0x11; 48]);
        let expected = extended(&extended(&earlier, &digests[0]), &digests[1]);
        assert_eq!(register_now, expected);
    }

    #[test]
    fn a_log_with_a_missing_or_altered_event_does_not_replay() {
        let a = [1u8; 48];
        let b = [2u8; 48];
        let zero = [0u8; 48];
        let after_a = extended(&zero, &a);
        let after_b = extended(&after_a, &b);
        let ev = |digest: &Measurement, before: Measurement, after: Measurement| {
            event(
                digest,
                &Extension {
                    before: Some(before),
                    after: Some(after),
                },
            )
        };
        let good = vec![ev(&a, zero, after_a), ev(&b, after_a, after_b)];
        assert_eq!(replay(&good), Ok(after_b));
        // A log starts at its first event's before-value; an event missing after that is a gap.
        let c = [3u8; 48];
        let after_c = extended(&after_b, &c);
        let gap = vec![ev(&a, zero, after_a), ev(&c, after_b, after_c)];
        assert!(matches!(
            replay(&gap),
            Err(ReplayError::Gap { line: 2, .. })
        ));
        let mut altered = good.clone();
        altered[1].digest = hex::encode(c);
        assert!(matches!(
            replay(&altered),
            Err(ReplayError::Diverged { line: 2, .. })
        ));
        let mut bad = good;
        bad[0].digest = "zz".into();
        assert!(matches!(
            replay(&bad),
            Err(ReplayError::BadHex { line: 1, .. })
        ));
        assert!(matches!(
            read_events("{not json}\n"),
            Err(ReplayError::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn an_extension_by_someone_else_at_the_same_time_is_detected() {
        let digest = [5u8; 48];
        let extension = Extension {
            before: Some([0u8; 48]),
            after: Some([9u8; 48]),
        };
        let error = check(Path::new("rtmr3:sha384"), &extension, &digest).expect_err("moved");
        assert!(
            error.to_string().contains("something else extended it"),
            "{error}"
        );
    }
}
