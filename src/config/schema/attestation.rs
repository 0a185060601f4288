//! The `attestation` section: which evidence provider this enclave uses (`provider`, and the
//! simulated provider's development CA), and what a verifier of this enclave (or, later, of its
//! peers) accepts (`allowedMeasurements`).

use std::path::PathBuf;

use crate::config::measurements::{read_records, MeasurementRecord};
use crate::config::reader::{Fields, Report};

/// The chain ids of development chains: the only ones the `simulated` provider may run with.
/// 1337 is the tests' dev chain (`scripts/devchain/devchain.py`, eth-tester, Ganache); 31337
/// is Hardhat's and Anvil's.
pub const DEV_CHAIN_IDS: [u64; 2] = [1337, 31337];

/// `attestation.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderChoice {
    /// Whatever the platform offers: configfs-tsm (`tdx`), else an order certificate with its
    /// key (`superprotocol`), else none. Never `simulated`.
    #[default]
    Auto,
    Tdx,
    SuperProtocol,
    /// A development CA signs quote-shaped evidence: no TEE. Dev chains only.
    Simulated,
    /// No evidence is taken, whatever the platform offers.
    None,
}

impl ProviderChoice {
    pub const NAMES: [&'static str; 5] = ["auto", "tdx", "superprotocol", "simulated", "none"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "auto" => Self::Auto,
            "tdx" => Self::Tdx,
            "superprotocol" => Self::SuperProtocol,
            "simulated" => Self::Simulated,
            "none" => Self::None,
            _ => return None,
        })
    }
}

/// The simulated provider's development CA: its private key (PKCS#8 PEM) and certificate,
/// read from files at boot, never built in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedCa {
    pub key_file: PathBuf,
    pub certificate_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttestationConfig {
    pub provider: ProviderChoice,
    /// Set exactly when `provider` is `simulated`.
    pub simulated: Option<SimulatedCa>,
    /// Intel's collateral (dcap-qvl's QuoteCollateralV3 JSON): when set, the enclave verifies
    /// its own TDX quotes with it right after making them.
    pub collateral_file: Option<PathBuf>,
    /// The TDs `enclave verify-identity --config` accepts when no `--measurements` file is
    /// given: a list, so that an upgrade can allow the old and the new image at once. Empty when
    /// the section does not name any.
    pub allowed_measurements: Vec<MeasurementRecord>,
}

/// Reads the section; `chain_id` (when the chain section was readable) decides whether the
/// simulated provider is allowed.
pub fn read_attestation(
    r: &mut Report,
    section: Option<Fields<'_>>,
    chain_id: Option<u64>,
) -> AttestationConfig {
    let Some(mut f) = section else {
        return AttestationConfig::default();
    };
    let provider = match f.string(r, "provider") {
        None => ProviderChoice::Auto,
        Some(name) => ProviderChoice::parse(name).unwrap_or_else(|| {
            r.error(
                f.path_of("provider"),
                format!("must be one of {}", ProviderChoice::NAMES.join(", ")),
            );
            ProviderChoice::Auto
        }),
    };
    let simulated = read_simulated(r, &mut f, provider, chain_id);
    let collateral_file = absolute_path(r, &mut f, "collateralFile");
    let path = f.path_of("allowedMeasurements");
    let allowed_measurements = f
        .get("allowedMeasurements")
        .map(|value| read_records(r, &path, value))
        .unwrap_or_default();
    f.finish(r, &[]);
    AttestationConfig {
        provider,
        simulated,
        collateral_file,
        allowed_measurements,
    }
}

fn read_simulated(
    r: &mut Report,
    f: &mut Fields<'_>,
    provider: ProviderChoice,
    chain_id: Option<u64>,
) -> Option<SimulatedCa> {
    let section = f.object(r, "simulated");
    if provider != ProviderChoice::Simulated {
        if section.is_some() {
            r.error(
                f.path_of("simulated"),
                "is only read with \"provider\": \"simulated\"",
            );
        }
        return None;
    }
    if let Some(id) = chain_id.filter(|id| !DEV_CHAIN_IDS.contains(id)) {
        r.error(
            f.path_of("provider"),
            format!(
                "\"simulated\" proves nothing (no TEE) and is refused on chain {id}: only on a \
                 development chain ({})",
                DEV_CHAIN_IDS.map(|id| id.to_string()).join(", ")
            ),
        );
    }
    let Some(mut s) = section else {
        r.error(
            f.path_of("simulated"),
            "is required with \"provider\": \"simulated\" (caKeyFile, caCertificateFile)",
        );
        return None;
    };
    let key_file = absolute_path(r, &mut s, "caKeyFile");
    let certificate_file = absolute_path(r, &mut s, "caCertificateFile");
    for (value, key) in [
        (&key_file, "caKeyFile"),
        (&certificate_file, "caCertificateFile"),
    ] {
        if value.is_none() && !s.has(key) {
            r.error(s.path_of(key), "is required");
        }
    }
    s.finish(r, &[]);
    Some(SimulatedCa {
        key_file: key_file?,
        certificate_file: certificate_file?,
    })
}

fn absolute_path(r: &mut Report, f: &mut Fields<'_>, key: &str) -> Option<PathBuf> {
    let path = f.non_empty_string(r, key)?;
    if !path.starts_with('/') {
        r.error(f.path_of(key), "must be an absolute path");
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: serde_json::Value) -> (AttestationConfig, Vec<String>) {
        let mut r = Report::default();
        let f = Fields::of(&mut r, "solution.attestation", &value);
        let config = read_attestation(&mut r, f, Some(1337));
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

    fn read_on(chain_id: u64, value: serde_json::Value) -> (AttestationConfig, Vec<String>) {
        let mut r = Report::default();
        let f = Fields::of(&mut r, "solution.attestation", &value);
        let config = read_attestation(&mut r, f, Some(chain_id));
        (config, r.problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_simulated_provider_is_read_on_a_dev_chain_and_refused_on_any_other() {
        let section = json!({
            "provider": "simulated",
            "simulated": {"caKeyFile": "/dev-ca/key.pem", "caCertificateFile": "/dev-ca/cert.pem"}
        });
        for chain in DEV_CHAIN_IDS {
            let (config, problems) = read_on(chain, section.clone());
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(config.provider, ProviderChoice::Simulated);
            assert_eq!(
                config.simulated,
                Some(SimulatedCa {
                    key_file: "/dev-ca/key.pem".into(),
                    certificate_file: "/dev-ca/cert.pem".into(),
                })
            );
        }
        let (_, problems) = read_on(56, section);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("solution.attestation.provider: \"simulated\" proves nothing (no TEE) and is refused on chain 56"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_provider_is_named_from_the_list_and_simulated_needs_its_ca_files() {
        for name in ["auto", "tdx", "superprotocol", "none"] {
            let (config, problems) = read_on(56, json!({"provider": name}));
            assert!(problems.is_empty(), "{name}: {problems:?}");
            assert_eq!(Some(config.provider), ProviderChoice::parse(name));
        }
        let (_, problems) = read_on(56, json!({"provider": "sgx"}));
        assert_eq!(
            problems,
            ["solution.attestation.provider: must be one of auto, tdx, superprotocol, simulated, none"]
        );
        let (_, problems) = read_on(1337, json!({"provider": "simulated"}));
        assert_eq!(
            problems,
            ["solution.attestation.simulated: is required with \"provider\": \"simulated\" (caKeyFile, caCertificateFile)"]
        );
        let (_, problems) = read_on(
            1337,
            json!({"provider": "simulated", "simulated": {"caKeyFile": "key.pem"}}),
        );
        assert_eq!(
            problems,
            [
                "solution.attestation.simulated.caKeyFile: must be an absolute path",
                "solution.attestation.simulated.caCertificateFile: is required",
            ]
        );
        let (_, problems) = read_on(
            1337,
            json!({"simulated": {"caKeyFile": "/k", "caCertificateFile": "/c"}}),
        );
        assert_eq!(
            problems,
            ["solution.attestation.simulated: is only read with \"provider\": \"simulated\""]
        );
        let (config, problems) = read_on(56, json!({"collateralFile": "/sp/collateral.json"}));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.collateral_file, Some("/sp/collateral.json".into()));
    }
}
