//! The `attestation` section: what a verifier of this enclave (or, later, of its peers) accepts.

use crate::config::measurements::{read_records, MeasurementRecord};
use crate::config::reader::{Fields, Report};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttestationConfig {
    /// The TDs `enclave verify-identity --config` accepts when no `--measurements` file is
    /// given: a list, so that an upgrade can allow the old and the new image at once. Empty when
    /// the section does not name any.
    pub allowed_measurements: Vec<MeasurementRecord>,
}

pub fn read_attestation(r: &mut Report, section: Option<Fields<'_>>) -> AttestationConfig {
    let Some(mut f) = section else {
        return AttestationConfig::default();
    };
    let path = f.path_of("allowedMeasurements");
    let allowed_measurements = f
        .get("allowedMeasurements")
        .map(|value| read_records(r, &path, value))
        .unwrap_or_default();
    f.finish(r, &[]);
    AttestationConfig {
        allowed_measurements,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: serde_json::Value) -> (AttestationConfig, Vec<String>) {
        let mut r = Report::default();
        let f = Fields::of(&mut r, "solution.attestation", &value);
        let config = read_attestation(&mut r, f);
        (config, r.problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn allowed_measurements_are_read_and_their_problems_named_at_their_paths() {
        let record = |id: &str| {
            json!({
                "measurement_id": id,
                "measurements": {
                    "mrtd": {"expected_any": ["11".repeat(48)]},
                    "rtmr0": {"expected_any": ["22".repeat(48)]},
                    "rtmr1": {"expected_any": ["33".repeat(48)]},
                    "rtmr2": {"expected_any": ["44".repeat(48)]}
                }
            })
        };
        let (config, problems) =
            read(json!({"allowedMeasurements": [record("old"), record("new")]}));
        assert!(problems.is_empty(), "{problems:?}");
        let ids: Vec<_> = config
            .allowed_measurements
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(ids, ["old", "new"]);

        let mut bad = record("bad");
        bad["measurements"]["rtmr2"] = json!({"expected_any": ["zz"]});
        let (_, problems) = read(json!({"allowedMeasurements": [bad], "allowed": 1}));
        assert_eq!(
            problems,
            [
                "solution.attestation.allowedMeasurements[0].measurements.rtmr2.expected_any[0]: must be 96 hex digits (a 48-byte register)",
                "solution.attestation.allowed: unknown field",
            ]
        );
        let (_, problems) = read(json!({"allowedMeasurements": []}));
        assert_eq!(
            problems,
            ["solution.attestation.allowedMeasurements: must list at least one measurement record (with none, nothing could be accepted)"]
        );
        assert_eq!(read(json!({})).0, AttestationConfig::default());
    }
}
