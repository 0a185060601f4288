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
//! problem with its JSON path, as the rest of the configuration does.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::quote::{Measurement, MEASUREMENT_LEN};
use crate::config::json;
use crate::config::reader::{element_path, Fields, Problem, Report};

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

/// The registers of a verified TD quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdRegisters {
    pub mr_td: Measurement,
    pub rtmr: [Measurement; 4],
    pub mr_config_id: Measurement,
    pub mr_owner: Measurement,
    pub mr_owner_config: Measurement,
}

impl TdRegisters {
    pub fn get(&self, register: Register) -> &Measurement {
        match register {
            Register::Mrtd => &self.mr_td,
            Register::Rtmr0 => &self.rtmr[0],
            Register::Rtmr1 => &self.rtmr[1],
            Register::Rtmr2 => &self.rtmr[2],
            Register::Rtmr3 => &self.rtmr[3],
            Register::MrConfigId => &self.mr_config_id,
            Register::MrOwner => &self.mr_owner,
            Register::MrOwnerConfig => &self.mr_owner_config,
        }
    }
}

/// The identity facts of an identity document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFacts {
    pub configuration_digest: String,
    pub binary_sha256: Option<String>,
    pub image_digest: Option<String>,
}

impl IdentityFacts {
    fn get(&self, field: IdentityField) -> Option<&str> {
        match field {
            IdentityField::ConfigurationDigest => Some(&self.configuration_digest),
            IdentityField::BinarySha256 => self.binary_sha256.as_deref(),
            IdentityField::ImageDigest => self.image_digest.as_deref(),
        }
    }
}

/// One way a record does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Register {
        register: Register,
        found: Measurement,
        allowed: usize,
    },
    Identity {
        field: IdentityField,
        found: Option<String>,
        allowed: usize,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Register {
                register,
                found,
                allowed,
            } => write!(
                f,
                "{} is {}, not one of the {allowed} allowed",
                register.name(),
                hex::encode(found)
            ),
            Self::Identity {
                field,
                found: Some(found),
                allowed,
            } => write!(
                f,
                "{} is {found:?}, not one of the {allowed} allowed",
                field.document_path()
            ),
            Self::Identity {
                field,
                found: None,
                allowed,
            } => write!(
                f,
                "{} is not stated (null), one of {allowed} values is required",
                field.document_path()
            ),
        }
    }
}

/// How one record compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    pub id: String,
    pub mismatches: Vec<Mismatch>,
}

/// The comparison of a TD (its registers, its identity, or both) with a list of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementMatch {
    /// The first record that matched everything that was compared.
    pub matched: Option<String>,
    /// Every `dcap-tdx` record, with what did not match.
    pub records: Vec<RecordOutcome>,
    /// Records of other attestation types, not compared.
    pub skipped: Vec<String>,
    /// Whether registers were compared (a quote was given).
    pub registers_compared: bool,
    /// Whether identity facts were compared (a document was given).
    pub identity_compared: bool,
}

impl MeasurementMatch {
    pub fn allowed(&self) -> bool {
        self.matched.is_some()
    }

    /// Every record's mismatches, one line each: why nothing matched.
    pub fn explain(&self) -> String {
        self.records
            .iter()
            .filter(|r| !r.mismatches.is_empty())
            .map(|r| {
                format!(
                    "record {:?}: {}",
                    r.id,
                    r.mismatches
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Compares a TD with the records: OR across records, AND across the fields of one record.
/// What is not given (`registers` without a quote, `identity` without a document) is not
/// compared, and the result says so.
pub fn check(
    records: &[MeasurementRecord],
    registers: Option<&TdRegisters>,
    identity: Option<&IdentityFacts>,
) -> MeasurementMatch {
    let mut outcome = MeasurementMatch {
        matched: None,
        records: Vec::new(),
        skipped: Vec::new(),
        registers_compared: registers.is_some(),
        identity_compared: identity.is_some(),
    };
    for record in records {
        if !record.is_dcap_tdx() {
            outcome.skipped.push(record.id.clone());
            continue;
        }
        let mut mismatches = Vec::new();
        if let Some(registers) = registers {
            for (register, allowed) in &record.registers {
                let found = registers.get(*register);
                if !allowed.contains(found) {
                    mismatches.push(Mismatch::Register {
                        register: *register,
                        found: *found,
                        allowed: allowed.len(),
                    });
                }
            }
        }
        if let Some(identity) = identity {
            for (field, allowed) in &record.identity {
                let found = identity.get(*field);
                let holds = found.is_some_and(|found| match field {
                    IdentityField::ImageDigest => allowed.iter().any(|a| a == found),
                    _ => allowed.iter().any(|a| a.eq_ignore_ascii_case(found)),
                });
                if !holds {
                    mismatches.push(Mismatch::Identity {
                        field: *field,
                        found: found.map(str::to_owned),
                        allowed: allowed.len(),
                    });
                }
            }
        }
        if mismatches.is_empty() && outcome.matched.is_none() {
            outcome.matched = Some(record.id.clone());
        }
        outcome.records.push(RecordOutcome {
            id: record.id.clone(),
            mismatches,
        });
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex48(byte: u8) -> String {
        hex::encode([byte; 48])
    }

    fn record(id: &str, mrtd: &[u8], rtmr2: &[u8]) -> Value {
        json!({
            "measurement_id": id,
            "attestation_type": "dcap-tdx",
            "measurements": {
                "mrtd": {"expected_any": mrtd.iter().map(|b| hex48(*b)).collect::<Vec<_>>()},
                "rtmr0": {"expected_any": [hex48(0x10)]},
                "rtmr1": {"expected_any": [hex48(0x11)]},
                "rtmr2": {"expected_any": rtmr2.iter().map(|b| hex48(*b)).collect::<Vec<_>>()},
            },
            "identity": {
                "configuration_digest": {"expected_any": ["ab".repeat(32)]},
                "binary_sha256": {"expected_any": ["CD".repeat(32)]},
            }
        })
    }

    fn registers(mrtd: u8, rtmr2: u8) -> TdRegisters {
        TdRegisters {
            mr_td: [mrtd; 48],
            rtmr: [[0x10; 48], [0x11; 48], [rtmr2; 48], [0x33; 48]],
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
        }
    }

    fn identity() -> IdentityFacts {
        IdentityFacts {
            configuration_digest: "ab".repeat(32),
            binary_sha256: Some("cd".repeat(32)),
            image_digest: Some("sha256:0123".into()),
        }
    }

    fn read(value: Value) -> (Vec<MeasurementRecord>, Vec<String>) {
        let mut r = Report::default();
        let records = read_records(&mut r, "$", &value);
        (
            records,
            r.problems.iter().map(ToString::to_string).collect(),
        )
    }

    fn records(value: Value) -> Vec<MeasurementRecord> {
        let (records, problems) = read(value);
        assert!(problems.is_empty(), "{problems:?}");
        records
    }

    #[test]
    fn a_td_is_allowed_by_any_record_that_matches_every_field() {
        let list = records(json!([
            record("old", &[1], &[0x21]),
            record("new", &[2, 3], &[0x22])
        ]));
        // (mrtd, rtmr2, expected match)
        let table: &[(u8, u8, Option<&str>)] = &[
            (1, 0x21, Some("old")),
            (2, 0x22, Some("new")),
            (3, 0x22, Some("new")),
            // Each register allowed by some record, but not by the same one.
            (1, 0x22, None),
            (2, 0x21, None),
            (4, 0x21, None),
        ];
        for (mrtd, rtmr2, expected) in table {
            let outcome = check(&list, Some(&registers(*mrtd, *rtmr2)), Some(&identity()));
            assert_eq!(
                outcome.matched.as_deref(),
                *expected,
                "mrtd {mrtd} rtmr2 {rtmr2}: {}",
                outcome.explain()
            );
        }
    }

    #[test]
    fn a_mismatch_in_any_one_register_or_identity_field_is_named() {
        let list = records(json!([record("only", &[1], &[0x21])]));
        let good = registers(1, 0x21);
        assert!(check(&list, Some(&good), Some(&identity())).allowed());
        let mut cases: Vec<(TdRegisters, IdentityFacts, &str)> = Vec::new();
        for (i, name) in ["MRTD", "RTMR0", "RTMR1", "RTMR2"].iter().enumerate() {
            let mut regs = good.clone();
            match i {
                0 => regs.mr_td[0] ^= 1,
                n => regs.rtmr[n - 1][47] ^= 1,
            }
            cases.push((regs, identity(), name));
        }
        for (i, name) in ["MRCONFIGID", "MROWNER", "MROWNERCONFIG"]
            .iter()
            .enumerate()
        {
            let mut regs = good.clone();
            match i {
                0 => regs.mr_config_id[0] = 1,
                1 => regs.mr_owner[5] = 1,
                _ => regs.mr_owner_config[47] = 1,
            }
            cases.push((regs, identity(), name));
        }
        let mut other = identity();
        other.configuration_digest = "ef".repeat(32);
        cases.push((good.clone(), other, "identity.configuration.digest"));
        let mut other = identity();
        other.binary_sha256 = None;
        cases.push((
            good.clone(),
            other,
            "identity.software.binarySha256 is not stated",
        ));
        for (regs, id, name) in cases {
            let outcome = check(&list, Some(&regs), Some(&id));
            assert!(!outcome.allowed(), "{name}");
            assert_eq!(outcome.records[0].mismatches.len(), 1, "{name}");
            assert!(
                outcome.explain().contains(name),
                "{name}: {}",
                outcome.explain()
            );
        }
    }

    #[test]
    fn rtmr3_is_not_compared_unless_a_record_names_it() {
        let list = records(json!([record("r", &[1], &[0x21])]));
        let mut regs = registers(1, 0x21);
        regs.rtmr[3] = [0x99; 48];
        assert!(check(&list, Some(&regs), None).allowed());
        let mut value = record("r", &[1], &[0x21]);
        value["measurements"]["rtmr3"] = json!({"expected_any": [hex48(0x33)]});
        let pinned = records(json!([value]));
        assert!(!check(&pinned, Some(&regs), None).allowed());
        regs.rtmr[3] = [0x33; 48];
        assert!(check(&pinned, Some(&regs), None).allowed());
    }

    #[test]
    fn host_chosen_registers_can_be_pinned_to_other_values() {
        let mut value = record("dstack", &[1], &[0x21]);
        value["measurements"]["mrconfigid"] = json!({"expected_any": [hex48(0x01)]});
        let list = records(json!([value]));
        let mut regs = registers(1, 0x21);
        assert!(!check(&list, Some(&regs), None).allowed());
        regs.mr_config_id = [0x01; 48];
        assert!(check(&list, Some(&regs), None).allowed());
    }

    #[test]
    fn what_is_not_given_is_not_compared_and_said() {
        let list = records(json!([record("r", &[1], &[0x21])]));
        let only_identity = check(&list, None, Some(&identity()));
        assert!(only_identity.allowed());
        assert!(!only_identity.registers_compared);
        let only_registers = check(&list, Some(&registers(1, 0x21)), None);
        assert!(only_registers.allowed());
        assert!(!only_registers.identity_compared);
    }

    #[test]
    fn records_of_other_attestation_types_are_never_matched() {
        let mut azure = record("azure", &[1], &[0x21]);
        azure["attestation_type"] = json!("azure-tdx");
        let mut none = json!({"measurement_id": "none", "attestation_type": "none"});
        none["measurements"] = azure["measurements"].clone();
        let list = records(json!([azure, none, record("dcap", &[2], &[0x22])]));
        let outcome = check(&list, Some(&registers(1, 0x21)), Some(&identity()));
        assert!(!outcome.allowed());
        assert_eq!(outcome.skipped, ["azure", "none"]);
        // A file with only other types could never match anything: refused when read.
        let mut only = record("azure", &[1], &[0x21]);
        only["attestation_type"] = json!("azure-tdx");
        let (_, problems) = read(json!([only]));
        assert_eq!(
            problems,
            ["$: has no dcap-tdx record: no TDX quote could ever match"]
        );
    }

    #[test]
    fn flashbots_single_expected_values_are_read() {
        let mut value = record("r", &[1], &[0x21]);
        value["measurements"]["mrtd"] = json!({"expected": hex48(1).to_uppercase()});
        let list = records(json!([value]));
        assert!(check(&list, Some(&registers(1, 0x21)), None).allowed());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut bad = record("a", &[1], &[0x21]);
        bad["measurements"]
            .as_object_mut()
            .expect("object")
            .remove("rtmr1");
        bad["measurements"]["mrtd"] = json!({"expected_any": ["00ff"]});
        bad["measurements"]["rtmr4"] = json!({"expected_any": [hex48(1)]});
        bad["identity"]["binary_sha256"] = json!({"expected_any": []});
        bad["identity"]["image_digest"] = json!({"expected_any": ["has space"]});
        bad["attestation_type"] = json!("sev-snp");
        let (_, problems) = read(json!([bad, record("a", &[1], &[0x21]), {"measurement_id": ""}]));
        let expected = [
            "$[0].attestation_type: must be dcap-tdx (or one of azure-tdx, gcp-tdx, qemu-tdx, none, which this verifier ignores)",
            "$[0].measurements.mrtd.expected_any[0]: must be 96 hex digits (a 48-byte register)",
            "$[0].measurements.rtmr1: is required: MRTD and RTMR0-2 (the VM image) must be pinned in every record",
            "$[0].measurements.rtmr4: unknown field (did you mean `rtmr0`?)",
            "$[0].identity.binary_sha256.expected_any: must list at least one value (leave the register out to not pin it)",
            "$[0].identity.image_digest.expected_any[0]: must be an image digest such as sha256:<64 hex digits> (1-256 printable characters, no spaces)",
            "$[2].measurement_id: must be 1-128 characters without control characters",
            "$[2].measurements: is required: MRTD and RTMR0-2 (the VM image) must be pinned",
        ];
        for e in expected {
            assert!(
                problems.iter().any(|p| p == e),
                "missing {e:?} in {problems:#?}"
            );
        }
        let (_, problems) = read(json!([
            record("a", &[1], &[0x21]),
            record("a", &[2], &[0x22])
        ]));
        assert_eq!(
            problems,
            ["$[1].measurement_id: repeats \"a\": every record needs its own id"]
        );
        let (_, problems) = read(json!([]));
        assert_eq!(problems.len(), 1);
        let (_, problems) = read(json!({"mrtd": 1}));
        assert_eq!(problems, ["$: must be an array of measurement records"]);
    }

    #[test]
    fn a_file_is_read_strictly() {
        let text = serde_json::to_string(&json!([record("r", &[1], &[0x21])])).expect("json");
        assert_eq!(parse_file(text.as_bytes()).expect("valid").len(), 1);
        let duplicate = text.replacen("{", "{\"measurement_id\": \"x\", ", 1);
        assert!(matches!(
            parse_file(duplicate.as_bytes()),
            Err(MeasurementsError::Json(_))
        ));
        assert!(matches!(
            parse_file(b"[1]"),
            Err(MeasurementsError::Invalid(_))
        ));
        assert!(matches!(
            parse_file(&[0xff, 0xfe]),
            Err(MeasurementsError::NotText)
        ));
    }
}
