//! Compares a TD (the registers of its verified quote, the facts of its identity document, or
//! both) with the allowed measurement records of [`crate::config::measurements`], which defines
//! the records, their format and how they are read (re-exported here).

use std::fmt;

pub use crate::config::measurements::*;

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
    use crate::config::reader::Report;
    use serde_json::{json, Value};

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
