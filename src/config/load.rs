//! From a file on disk to a verified, validated [`Config`].

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use super::json::{self, JsonError, Layout};
use super::reader::{Report, MAX_PATH_CHARS};
use super::regular_file::{self, FileError};
use super::schema::{read_solution, Config};
use super::signature::{self, keys::KeyError, PublicKey, SignatureError, Verified};
use super::validate;
use crate::exit;
use crate::logging::Untrusted;

/// A configuration larger than this is refused before parsing (the real one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// A verifying key file is one line of base64, or a PEM block.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    // Paths come from the command line or the environment, JSON errors quote member names:
    // none of it is shown raw.
    #[error("cannot read configuration {}: {source}", Untrusted::path(path))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "configuration {} is a {kind}, not a regular file: refused",
        Untrusted::path(path)
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "configuration {} is larger than {MAX_CONFIG_BYTES} bytes",
        Untrusted::path(path)
    )]
    TooLarge { path: PathBuf },
    #[error("configuration {}: {source}", Untrusted::path(path))]
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
            Self::Read { .. }
            | Self::NotRegular { .. }
            | Self::TooLarge { .. }
            | Self::Json { .. }
            | Self::Invalid(_) => exit::CONFIG_INVALID,
            Self::SignatureMissing
            | Self::SignatureNotAString
            | Self::Signature(_)
            | Self::Key(_)
            | Self::NoKey(_) => exit::SIGNATURE_INVALID,
        }
    }
}

/// Reads and strictly parses a configuration file. Anything but a regular file (a FIFO, a
/// device, a socket, a directory) is refused at once, never waited on.
pub fn read_document(path: &Path) -> Result<Value, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let bytes = regular_file::read_bounded(path, MAX_CONFIG_BYTES).map_err(|e| match e {
        FileError::Io(source) => read_err(source),
        FileError::NotRegular(kind) => ConfigError::NotRegular {
            path: path.to_owned(),
            kind,
        },
        FileError::TooLarge(_) => ConfigError::TooLarge {
            path: path.to_owned(),
        },
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {}", e.utf8_error()),
        ))
    })?;
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
    report.unsigned = json::envelope_extras(document);
    match config {
        Some(config) if report.is_ok() => Ok(Validated { config, report }),
        _ => Err(ConfigError::Invalid(report)),
    }
}

/// A configuration whose signature was verified and whose content is valid.
pub struct VerifiedConfig {
    pub config: Config,
    /// The document as read and verified: what is judged against it later (the members of a
    /// DON across enclaves) must see these very bytes, not the file read again.
    pub document: Value,
    pub verified: Verified,
    pub report: Report,
}

/// Without `document`: it holds the configuration's secrets in clear (`config` redacts them).
impl std::fmt::Debug for VerifiedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedConfig")
            .field("config", &self.config)
            .field("verified", &self.verified)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// The one way services obtain their configuration: read, verify the signature first (nothing
/// unverified is interpreted), then validate. Ignored fields and warnings are logged once here.
pub fn load_verified(path: &Path, key: &PublicKey) -> Result<VerifiedConfig, ConfigError> {
    let document = read_document(path)?;
    let verified = verify_document(&document, key)?;
    let Validated { config, report } = validate_document(&document)?;
    for ignored in &report.ignored {
        tracing::warn!(field = %Untrusted::bounded(ignored, MAX_PATH_CHARS), "configuration field is not used by this project; ignored");
    }
    for member in &report.unsigned {
        tracing::warn!(member = %Untrusted::bounded(member, MAX_PATH_CHARS), "configuration member beside `solution` is not covered by the signature; not used");
    }
    for warning in &report.warnings {
        tracing::warn!("configuration: {warning}");
    }
    Ok(VerifiedConfig {
        config,
        document,
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

/// The verifying key in `key_file` (base64 SPKI, or PEM); like the configuration, only a
/// regular file is read.
pub fn read_key_file(key_file: &Path) -> Result<PublicKey, ConfigError> {
    let cannot = |e: &dyn std::fmt::Display| {
        ConfigError::NoKey(format!("cannot read {}: {e}", Untrusted::path(key_file)))
    };
    let bytes = regular_file::read_bounded(key_file, MAX_KEY_FILE_BYTES).map_err(|e| cannot(&e))?;
    let text = String::from_utf8(bytes).map_err(|e| cannot(&e))?;
    Ok(PublicKey::from_base64_spki(&text)?)
}
