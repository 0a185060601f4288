//! Which TDs a verifier accepts: records of expected measurement registers and identity facts,
//! in a format close to Flashbots' measurements JSON (`flashbots/attested-tls`
//! `crates/attestation/README.md`, compatible with cvm-reverse-proxy's `measurements.json`),
//! extended with the enclave's identity.
//!
//! ```json
//! [
//!   {
//!     "measurement_id": "enclave 0.2.0 on sp-vm build-152",
//!     "attestation_type": "dcap-tdx",
//!     "measurements": {
//!       "mrtd":  { "expected_any": ["<96 hex digits>"] },
//!       "rtmr0": { "expected_any": ["…"] },
//!       "rtmr1": { "expected_any": ["…"] },
//!       "rtmr2": { "expected_any": ["…", "…"] }
//!     },
//!     "identity": {
//!       "configuration_digest": { "expected_any": ["<64 hex digits>"] },
//!       "binary_sha256": { "expected_any": ["<64 hex digits>"] },
//!       "image_digest": { "expected_any": ["sha256:…"] }
//!     }
//!   }
//! ]
//! ```
//!
//! A TD is allowed when at least one record matches (OR across records); a record matches when
//! every register and identity field it names holds one of its `expected_any` values (AND across
//! fields, OR within `expected_any`). Unlike Flashbots' format, MRTD and RTMR0–2 are required in
//! every record (a record that leaves the VM image open would accept any image, and with it any
//! claim the image makes), and MRCONFIGID, MROWNER and MROWNERCONFIG, which the host chooses at
//! launch, are pinned to zero unless the record names other values. RTMR3 is normally left out:
//! the enclave extends it at every boot and the verifier replays it from the event log.
//!
//! Records come from a file (`--measurements FILE`) or the configuration
//! (`attestation.allowedMeasurements`); both are read by [`read_records`], which reports every
//! problem with its JSON path, as the rest of the configuration does. They live in `config`
//! because the configuration holds them; comparing a TD with them is `attestation::measurements`'s.

use std::collections::BTreeSet;

use serde_json::Value;

use super::json;
use super::reader::{element_path, Fields, Problem, Report};

/// Bytes of one TD measurement register (MRTD, RTMRn, MRCONFIGID, …) in a TDX quote.
pub const MEASUREMENT_LEN: usize = 48;
/// One measurement register's value.
pub type Measurement = [u8; MEASUREMENT_LEN];

/// Flashbots' attestation type of a DCAP TDX quote; records of other types are never matched here.
pub const DCAP_TDX: &str = "dcap-tdx";
/// The attestation types of Flashbots' format: records of these types are accepted in a file
/// and ignored, so that one file can serve several verifiers.
pub const OTHER_ATTESTATION_TYPES: &[&str] = &["azure-tdx", "gcp-tdx", "qemu-tdx", "none"];
const MAX_ID_CHARS: usize = 128;
const MAX_RECORDS: usize = 256;
const MAX_VALUES: usize = 256;
const MAX_IMAGE_DIGEST_CHARS: usize = 256;
/// A measurements file is a few KiB; this bounds what a verifier reads.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// The registers a record can pin, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Register {
    Mrtd,
    Rtmr0,
    Rtmr1,
    Rtmr2,
    Rtmr3,
    MrConfigId,
    MrOwner,
    MrOwnerConfig,
}

impl Register {
    pub const ALL: [Register; 8] = [
        Register::Mrtd,
        Register::Rtmr0,
        Register::Rtmr1,
        Register::Rtmr2,
        Register::Rtmr3,
        Register::MrConfigId,
        Register::MrOwner,
        Register::MrOwnerConfig,
    ];
    /// Every record must name these: they are the VM image (firmware, kernel, command line,
    /// initrd).
    pub const REQUIRED: [Register; 4] = [
        Register::Mrtd,
        Register::Rtmr0,
        Register::Rtmr1,
        Register::Rtmr2,
    ];
    /// Chosen by the host at launch: zero unless a record names other values.
    pub const ZERO_BY_DEFAULT: [Register; 3] = [
        Register::MrConfigId,
        Register::MrOwner,
        Register::MrOwnerConfig,
    ];

    /// The key in a record's `measurements` object.
    pub fn key(self) -> &'static str {
        match self {
            Self::Mrtd => "mrtd",
            Self::Rtmr0 => "rtmr0",
            Self::Rtmr1 => "rtmr1",
            Self::Rtmr2 => "rtmr2",
            Self::Rtmr3 => "rtmr3",
            Self::MrConfigId => "mrconfigid",
            Self::MrOwner => "mrowner",
            Self::MrOwnerConfig => "mrownerconfig",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Mrtd => "MRTD",
            Self::Rtmr0 => "RTMR0",
            Self::Rtmr1 => "RTMR1",
            Self::Rtmr2 => "RTMR2",
            Self::Rtmr3 => "RTMR3",
            Self::MrConfigId => "MRCONFIGID",
            Self::MrOwner => "MROWNER",
            Self::MrOwnerConfig => "MROWNERCONFIG",
        }
    }
}

/// The identity facts a record can pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityField {
    ConfigurationDigest,
    BinarySha256,
    ImageDigest,
}

impl IdentityField {
    pub const ALL: [IdentityField; 3] = [
        IdentityField::ConfigurationDigest,
        IdentityField::BinarySha256,
        IdentityField::ImageDigest,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Self::ConfigurationDigest => "configuration_digest",
            Self::BinarySha256 => "binary_sha256",
            Self::ImageDigest => "image_digest",
        }
    }

    /// Where the fact is in the identity document.
    pub fn document_path(self) -> &'static str {
        match self {
            Self::ConfigurationDigest => "identity.configuration.digest",
            Self::BinarySha256 => "identity.software.binarySha256",
            Self::ImageDigest => "identity.software.imageDigest",
        }
    }
}

/// One record: what one allowed TD looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementRecord {
    pub id: String,
    /// `dcap-tdx`, or another Flashbots type (never matched here).
    pub attestation_type: String,
    /// The allowed values of each pinned register, in [`Register::ALL`] order. Only RTMR3 can
    /// be missing: the required registers are checked when read, and the host-chosen ones
    /// default to zero.
    pub registers: Vec<(Register, Vec<Measurement>)>,
    /// The allowed values per identity fact (lowercase hex for the digests, exact text for the
    /// image digest).
    pub identity: Vec<(IdentityField, Vec<String>)>,
}

impl MeasurementRecord {
    pub fn is_dcap_tdx(&self) -> bool {
        self.attestation_type == DCAP_TDX
    }
}

/// Reads an array of records at `path` (`solution.attestation.allowedMeasurements`, or `$` for
/// a file), recording every problem in `r`.
pub fn read_records(r: &mut Report, path: &str, value: &Value) -> Vec<MeasurementRecord> {
    let Value::Array(items) = value else {
        r.error(path, "must be an array of measurement records");
        return Vec::new();
    };
    if items.is_empty() {
        r.error(
            path,
            "must list at least one measurement record (with none, nothing could be accepted)",
        );
        return Vec::new();
    }
    if items.len() > MAX_RECORDS {
        r.error(path, format!("must list at most {MAX_RECORDS} records"));
        return Vec::new();
    }
    let mut records = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = element_path(path, i);
        if let Some(record) = read_record(r, &item_path, item) {
            if !ids.insert(record.id.clone()) {
                r.error(
                    format!("{item_path}.measurement_id"),
                    format!("repeats {:?}: every record needs its own id", record.id),
                );
            }
            records.push(record);
        }
    }
    if !records.is_empty() && !records.iter().any(MeasurementRecord::is_dcap_tdx) {
        r.error(
            path,
            format!("has no {DCAP_TDX} record: no TDX quote could ever match"),
        );
    }
    records
}

fn read_record(r: &mut Report, path: &str, value: &Value) -> Option<MeasurementRecord> {
    let mut f = Fields::of(r, path, value)?;
    let id = f.required_string(r, "measurement_id").and_then(|id| {
        let ok = !id.trim().is_empty()
            && id.chars().count() <= MAX_ID_CHARS
            && !id.chars().any(char::is_control);
        if !ok {
            r.error(
                f.path_of("measurement_id"),
                format!("must be 1-{MAX_ID_CHARS} characters without control characters"),
            );
        }
        ok.then(|| id.to_owned())
    });
    let attestation_type = match f.string(r, "attestation_type") {
        None => Some(DCAP_TDX.to_owned()),
        Some(t) if t == DCAP_TDX || OTHER_ATTESTATION_TYPES.contains(&t) => Some(t.to_owned()),
        Some(_) => {
            r.error(
                f.path_of("attestation_type"),
                format!(
                    "must be {DCAP_TDX} (or one of {}, which this verifier ignores)",
                    OTHER_ATTESTATION_TYPES.join(", ")
                ),
            );
            None
        }
    };
    let registers = match f.object(r, "measurements") {
        Some(m) => read_registers(r, m),
        None => {
            r.error(
                f.path_of("measurements"),
                "is required: MRTD and RTMR0-2 (the VM image) must be pinned",
            );
            None
        }
    };
    let identity = f
        .object(r, "identity")
        .map(|i| read_identity(r, i))
        .unwrap_or(Some(Vec::new()));
    f.finish(r, &[]);
    Some(MeasurementRecord {
        id: id?,
        attestation_type: attestation_type?,
        registers: registers?,
        identity: identity?,
    })
}

fn read_registers(r: &mut Report, mut f: Fields<'_>) -> Option<Vec<(Register, Vec<Measurement>)>> {
    let mut out = Vec::new();
    let mut ok = true;
    for register in Register::ALL {
        let values = read_expected(r, &mut f, register.key(), |r, path, text| {
            measurement_hex(text).map_err(|m| r.error(path, m)).ok()
        });
        match values {
            Expected::Values(values) => out.push((register, values)),
            Expected::Invalid => ok = false,
            Expected::Absent if Register::REQUIRED.contains(&register) => {
                r.error(
                    f.path_of(register.key()),
                    "is required: MRTD and RTMR0-2 (the VM image) must be pinned in every record",
                );
                ok = false;
            }
            Expected::Absent if Register::ZERO_BY_DEFAULT.contains(&register) => {
                out.push((register, vec![[0; MEASUREMENT_LEN]]));
            }
            Expected::Absent => {}
        }
    }
    f.finish(r, &[]);
    ok.then_some(out)
}

fn read_identity(r: &mut Report, mut f: Fields<'_>) -> Option<Vec<(IdentityField, Vec<String>)>> {
    let mut out = Vec::new();
    let mut ok = true;
    for field in IdentityField::ALL {
        let values = read_expected(r, &mut f, field.key(), |r, path, text| {
            let checked = match field {
                IdentityField::ConfigurationDigest | IdentityField::BinarySha256 => {
                    sha256_hex(text)
                }
                IdentityField::ImageDigest => image_digest(text),
            };
            checked.map_err(|m| r.error(path, m)).ok()
        });
        match values {
            Expected::Values(values) => out.push((field, values)),
            Expected::Invalid => ok = false,
            Expected::Absent => {}
        }
    }
    f.finish(r, &[]);
    ok.then_some(out)
}

enum Expected<T> {
    Absent,
    Invalid,
    Values(Vec<T>),
}

/// `{"expected_any": [v, …]}`, or Flashbots' deprecated `{"expected": v}`.
fn read_expected<T>(
    r: &mut Report,
    parent: &mut Fields<'_>,
    key: &str,
    mut parse: impl FnMut(&mut Report, &str, &str) -> Option<T>,
) -> Expected<T> {
    let Some(mut f) = parent.object(r, key) else {
        return if parent.has(key) {
            Expected::Invalid
        } else {
            Expected::Absent
        };
    };
    let mut texts: Vec<(String, &Value)> = Vec::new();
    let any = f.array(r, "expected_any");
    let single = f.get("expected");
    let mut ok = true;
    match (any, single) {
        (Some(_), Some(_)) => {
            r.error(
                f.path(),
                "must have either expected_any or expected, not both",
            );
            ok = false;
        }
        (Some(items), None) => {
            if items.is_empty() {
                r.error(
                    f.path_of("expected_any"),
                    "must list at least one value (leave the register out to not pin it)",
                );
                ok = false;
            } else if items.len() > MAX_VALUES {
                r.error(
                    f.path_of("expected_any"),
                    format!("must list at most {MAX_VALUES} values"),
                );
                ok = false;
            }
            texts = items;
        }
        (None, Some(v)) => texts.push((f.path_of("expected"), v)),
        (None, None) => {
            if !f.has("expected_any") {
                r.error(f.path(), "must have expected_any: [values]");
            }
            ok = false;
        }
    }
    f.finish(r, &[]);
    let mut values = Vec::new();
    for (path, value) in texts {
        match value {
            Value::String(text) => match parse(r, &path, text) {
                Some(v) => values.push(v),
                None => ok = false,
            },
            _ => {
                r.error(path, "must be a string");
                ok = false;
            }
        }
    }
    if ok {
        Expected::Values(values)
    } else {
        Expected::Invalid
    }
}

fn measurement_hex(text: &str) -> Result<Measurement, String> {
    let mut out = [0u8; MEASUREMENT_LEN];
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != 2 * MEASUREMENT_LEN || hex::decode_to_slice(digits, &mut out).is_err() {
        return Err(format!(
            "must be {} hex digits (a 48-byte register)",
            2 * MEASUREMENT_LEN
        ));
    }
    Ok(out)
}

fn sha256_hex(text: &str) -> Result<String, String> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("must be 64 hex digits (a SHA-256 digest)".to_owned())
    }
}

fn image_digest(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= MAX_IMAGE_DIGEST_CHARS
        && text.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "must be an image digest such as sha256:<64 hex digits> (1-{MAX_IMAGE_DIGEST_CHARS} printable characters, no spaces)"
        ))
    }
}

/// Why a measurements file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MeasurementsError {
    #[error("the measurements file is {0} bytes, more than {MAX_FILE_BYTES}")]
    TooLarge(usize),
    #[error("the measurements file is not UTF-8 text")]
    NotText,
    #[error("the measurements file is not valid JSON: {0}")]
    Json(String),
    #[error("the measurements file is invalid: {}", join(.0))]
    Invalid(Vec<Problem>),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads a measurements file's bytes: a JSON array of records, paths in errors starting at `$`.
pub fn parse_file(bytes: &[u8]) -> Result<Vec<MeasurementRecord>, MeasurementsError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(MeasurementsError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| MeasurementsError::NotText)?;
    // Strict: with duplicate keys, two verifiers could read two different policies.
    let value = json::parse_strict(text).map_err(|e| MeasurementsError::Json(e.to_string()))?;
    let mut report = Report::default();
    let records = read_records(&mut report, "$", &value);
    if report.is_ok() {
        Ok(records)
    } else {
        Err(MeasurementsError::Invalid(report.problems))
    }
}
