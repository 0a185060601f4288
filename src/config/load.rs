//! From a file on disk to a verified, validated [`Config`].

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use super::json::{self, JsonError, Layout};
use super::reader::Report;
use super::schema::{read_solution, Config};
use super::signature::{self, keys::KeyError, PublicKey, SignatureError, Verified};
use super::validate;
use crate::exit;

/// A configuration larger than this is refused before parsing (the real one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("configuration {path}: {source}")]
    Json { path: PathBuf, source: JsonError },
    #[error("configuration is not signed: solution.signature is missing")]
    SignatureMissing,
    #[error("configuration signature is invalid: solution.signature must be a non-empty string")]
    SignatureNotAString,
    #[error("configuration signature is invalid: {0}")]
    Signature(#[from] SignatureError),
    #[error("configuration verifying key is unusable: {0}")]
    Key(#[from] KeyError),
    #[error("no configuration verifying key: {0}")]
    NoKey(String),
    #[error("configuration is invalid: {}", describe_problems(.0))]
    Invalid(Report),
}

/// "N problem(s): path: message; …": a rejected configuration in a TEE is only seen through its
/// log, so every problem is named there (messages never repeat string values: no secret leaks).
fn describe_problems(report: &Report) -> String {
    let list: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    format!("{} problem(s): {}", list.len(), list.join("; "))
}

impl ConfigError {
    /// 78 (EX_CONFIG) for an unreadable or invalid configuration, 77 (EX_NOPERM) when its
    /// signature cannot be trusted.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Read { .. } | Self::TooLarge { .. } | Self::Json { .. } | Self::Invalid(_) => {
                exit::CONFIG_INVALID
            }
            Self::SignatureMissing
            | Self::SignatureNotAString
            | Self::Signature(_)
            | Self::Key(_)
            | Self::NoKey(_) => exit::SIGNATURE_INVALID,
        }
    }
}

/// Reads and strictly parses a configuration file.
pub fn read_document(path: &Path) -> Result<Value, ConfigError> {
    use std::io::Read;
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
        });
    }
    json::parse_strict(&text).map_err(|source| ConfigError::Json {
        path: path.to_owned(),
        source,
    })
}

/// The signed payload: the solution object without its `signature`, and the signature text.
pub fn payload_of(document: &Value) -> Result<(Layout, Value, Option<&Value>), JsonError> {
    let (layout, solution) = json::solution_of(document)?;
    let mut payload = solution.clone();
    payload.shift_remove("signature");
    Ok((layout, Value::Object(payload), solution.get("signature")))
}

/// Checks the document's signature with `key`.
pub fn verify_document(document: &Value, key: &PublicKey) -> Result<Verified, ConfigError> {
    let (_, payload, signature) = payload_of(document).map_err(|source| ConfigError::Json {
        path: PathBuf::from("<document>"),
        source,
    })?;
    let signature = match signature {
        None | Some(Value::Null) => return Err(ConfigError::SignatureMissing),
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(_) => return Err(ConfigError::SignatureNotAString),
    };
    Ok(signature::verify(&payload, signature, key)?)
}

/// A configuration that passed validation, with what the validation noticed on the way.
#[derive(Debug)]
pub struct Validated {
    pub config: Config,
    pub report: Report,
}

/// Reads every field and checks every rule; all problems are returned together.
pub fn validate_document(document: &Value) -> Result<Validated, ConfigError> {
    let mut report = Report::default();
    let (_, solution) = json::solution_of(document).map_err(|source| ConfigError::Json {
        path: PathBuf::from("<document>"),
        source,
    })?;
    let solution = Value::Object(solution.clone());
    let config = read_solution(&mut report, &solution);
    if let Some(config) = &config {
        validate::check(&mut report, config);
    }
    for extra in json::envelope_extras(document) {
        report.ignored.push(extra);
    }
    match config {
        Some(config) if report.is_ok() => Ok(Validated { config, report }),
        _ => Err(ConfigError::Invalid(report)),
    }
}

/// A configuration whose signature was verified and whose content is valid.
#[derive(Debug)]
pub struct VerifiedConfig {
    pub config: Config,
    pub verified: Verified,
    pub report: Report,
}

/// The one way services obtain their configuration: read, verify the signature first (nothing
/// unverified is interpreted), then validate. Ignored fields and warnings are logged once here.
pub fn load_verified(path: &Path, key: &PublicKey) -> Result<VerifiedConfig, ConfigError> {
    let document = read_document(path)?;
    let verified = verify_document(&document, key)?;
    let Validated { config, report } = validate_document(&document)?;
    for ignored in &report.ignored {
        tracing::warn!(field = %ignored, "configuration field is not used by this project; ignored");
    }
    for warning in &report.warnings {
        tracing::warn!(field = %warning.path, "{}", warning.message);
    }
    Ok(VerifiedConfig {
        config,
        verified,
        report,
    })
}

/// [`load_verified`] with the verifying key read from a file (the image's key).
pub fn load_verified_with_key_file(
    path: &Path,
    key_file: &Path,
) -> Result<VerifiedConfig, ConfigError> {
    load_verified(path, &read_key_file(key_file)?)
}

/// The verifying key in `key_file` (base64 SPKI, or PEM).
pub fn read_key_file(key_file: &Path) -> Result<PublicKey, ConfigError> {
    let text = std::fs::read_to_string(key_file)
        .map_err(|e| ConfigError::NoKey(format!("cannot read {}: {e}", key_file.display())))?;
    Ok(PublicKey::from_base64_spki(&text)?)
}
