//! Evidence providers: what proves, to a third party, that 64 bytes of report data (the
//! identity's SHA-512, or a key birth's digest) were stated by this enclave inside a TEE.
//!
//! | provider | evidence | what it proves |
//! |---|---|---|
//! | `tdx` | a TDX quote from configfs-tsm whose REPORTDATA is the report data | a TD with the quote's measurements stated it (with Intel's collateral: on genuine, up-to-date hardware) |
//! | `superprotocol` | a signature by the order certificate's private key, and the certificate chain | a holder of the order's key stated it; Super Protocol's Trusted Loader gives that key only to the order's verified workload |
//! | `simulated` | a quote-shaped blob signed by a development CA | nothing: for tests without TDX, dev chains only, `insecure` |
//!
//! [`Provider::choose`] picks one from `attestation.provider` and what the platform offers;
//! [`Provider::take`] makes evidence; [`check`] verifies it (for `verify-identity`).

pub mod check;
pub mod signing;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::quote::REPORT_DATA_LEN;
use super::tsm::{self, ConfigFs};
use super::AttestationPaths;
use crate::config::schema::attestation::{AttestationConfig, ProviderChoice, SimulatedCa};
use signing::{SigningError, SigningKey};

pub type ReportData = [u8; REPORT_DATA_LEN];

pub const TDX: &str = "tdx";
pub const SUPERPROTOCOL: &str = "superprotocol";
pub const SIMULATED: &str = "simulated";
pub const NONE: &str = "none";

/// Evidence as published (in the identity document and in `birth.json`); binary fields are
/// base64, certificates PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider")]
pub enum Evidence {
    /// A TDX quote whose REPORTDATA is the report data.
    #[serde(rename = "tdx")]
    Tdx { quote: String },
    /// The order certificate's key's signature over [`signing::DOMAIN`] ‖ report data, and
    /// the order's certificate chain (leaf first, as the order certificate file has it).
    #[serde(rename = "superprotocol", rename_all = "camelCase")]
    SuperProtocol {
        algorithm: String,
        signature: String,
        certificate_chain: Vec<String>,
    },
    /// A synthetic TDX quote whose REPORTDATA is the report data, signed (over
    /// [`signing::DOMAIN`] ‖ SHA-512 of the quote) by the development CA whose certificate
    /// is given. Proves nothing.
    #[serde(rename = "simulated", rename_all = "camelCase")]
    Simulated {
        quote: String,
        algorithm: String,
        signature: String,
        certificate: String,
    },
}

impl Evidence {
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Tdx { .. } => TDX,
            Self::SuperProtocol { .. } => SUPERPROTOCOL,
            Self::Simulated { .. } => SIMULATED,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Tsm(#[from] tsm::TsmError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error("no evidence provider: {0}")]
    Unavailable(String),
}

/// The provider this boot uses, with what it needs loaded.
#[derive(Debug)]
pub enum Provider {
    Tdx {
        report_dir: PathBuf,
    },
    SuperProtocol {
        /// DER, leaf first.
        chain: Vec<Vec<u8>>,
        key: SigningKey,
    },
    Simulated {
        certificate: Vec<u8>,
        key: SigningKey,
    },
    /// No evidence can be taken; why.
    None {
        reason: String,
    },
}

impl Provider {
    /// The provider `config` asks for, or (`auto`) the first the platform offers: configfs-tsm,
    /// then an order certificate with its key. A provider that was asked for by name but
    /// cannot be loaded is `None` with the reason (the enclave runs on; the metric says so).
    pub fn choose(config: &AttestationConfig, paths: &AttestationPaths) -> Self {
        match config.provider {
            ProviderChoice::None => Self::None {
                reason: "attestation.provider is \"none\"".to_owned(),
            },
            ProviderChoice::Tdx => Self::tdx(paths),
            ProviderChoice::SuperProtocol => Self::superprotocol(paths),
            ProviderChoice::Simulated => match &config.simulated {
                Some(ca) => Self::simulated(ca),
                None => Self::None {
                    reason: "the simulated provider has no CA configured".to_owned(),
                },
            },
            ProviderChoice::Auto => {
                if paths.tsm_report_dir.is_dir() {
                    return Self::tdx(paths);
                }
                if paths.order_certificate.is_file() && paths.order_key.is_file() {
                    return Self::superprotocol(paths);
                }
                Self::None {
                    reason: format!(
                        "no configfs-tsm report interface at {} (not an Intel TDX guest, \
                         configfs not mounted, or not visible in this container) and no order \
                         certificate with its key at {} and {}",
                        paths.tsm_report_dir.display(),
                        paths.order_certificate.display(),
                        paths.order_key.display()
                    ),
                }
            }
        }
    }

    fn tdx(paths: &AttestationPaths) -> Self {
        if paths.tsm_report_dir.is_dir() {
            Self::Tdx {
                report_dir: paths.tsm_report_dir.clone(),
            }
        } else {
            Self::None {
                reason: format!(
                    "attestation.provider is \"tdx\" but there is no configfs-tsm report \
                     interface at {}",
                    paths.tsm_report_dir.display()
                ),
            }
        }
    }

    fn superprotocol(paths: &AttestationPaths) -> Self {
        match certificates_with_key(&paths.order_certificate, &paths.order_key) {
            Ok((chain, key)) => Self::SuperProtocol { chain, key },
            Err(e) => Self::None {
                reason: format!("the Super Protocol order certificate cannot be used: {e}"),
            },
        }
    }

    fn simulated(ca: &SimulatedCa) -> Self {
        match certificates_with_key(&ca.certificate_file, &ca.key_file) {
            Ok((certs, key)) => Self::Simulated {
                // The first is there: the key matched it.
                certificate: certs.into_iter().next().unwrap_or_default(),
                key,
            },
            Err(e) => Self::None {
                reason: format!("the simulated provider's development CA cannot be used: {e}"),
            },
        }
    }

    /// The name published in the identity (`evidence.provider`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tdx { .. } => TDX,
            Self::SuperProtocol { .. } => SUPERPROTOCOL,
            Self::Simulated { .. } => SIMULATED,
            Self::None { .. } => NONE,
        }
    }

    /// True for evidence that proves nothing: the simulated provider.
    pub fn insecure(&self) -> bool {
        matches!(self, Self::Simulated { .. })
    }

    /// Evidence over `report_data`. For `tdx`, the quote has been checked by
    /// [`tsm::request_quote`] (structure, TDX, REPORTDATA) before it is returned.
    pub fn take(
        &self,
        fs: &dyn ConfigFs,
        report_data: &ReportData,
    ) -> Result<Evidence, EvidenceError> {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        match self {
            Self::Tdx { report_dir } => {
                let quote = tsm::request_quote(fs, report_dir, report_data)?;
                Ok(Evidence::Tdx { quote: b64(&quote) })
            }
            Self::SuperProtocol { chain, key } => Ok(Evidence::SuperProtocol {
                algorithm: key.algorithm().to_owned(),
                signature: b64(&key.sign(report_data)?),
                certificate_chain: chain
                    .iter()
                    .map(|der| signing::to_pem("CERTIFICATE", der))
                    .collect(),
            }),
            Self::Simulated { certificate, key } => {
                let quote =
                    super::quote_builder::synthetic_quote(&super::quote_builder::QuoteSpec {
                        report_data: *report_data,
                        ..Default::default()
                    });
                Ok(Evidence::Simulated {
                    quote: b64(&quote),
                    algorithm: key.algorithm().to_owned(),
                    signature: b64(&key.sign(&simulated_digest(&quote))?),
                    certificate: signing::to_pem("CERTIFICATE", certificate),
                })
            }
            Self::None { reason } => Err(EvidenceError::Unavailable(reason.clone())),
        }
    }
}

/// The certificates of `certificate_file` and the key of `key_file`, which must be the first
/// certificate's key.
fn certificates_with_key(
    certificate_file: &Path,
    key_file: &Path,
) -> Result<(Vec<Vec<u8>>, SigningKey), SigningError> {
    let chain = signing::read_certificates(certificate_file)?;
    let key = SigningKey::read(key_file)?;
    if !chain.first().is_some_and(|leaf| key.matches(leaf)) {
        return Err(SigningError::Mismatch {
            key: key_file.display().to_string(),
            certificate: certificate_file.display().to_string(),
        });
    }
    Ok((chain, key))
}

/// What the development CA signs of a simulated quote: its SHA-512.
pub fn simulated_digest(quote: &[u8]) -> ReportData {
    use sha2::{Digest as _, Sha512};
    Sha512::digest(quote).into()
}

/// Base64 as the evidence has it.
pub fn decode(field: &str, text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("the evidence's {field} is not base64: {e}"))
}
