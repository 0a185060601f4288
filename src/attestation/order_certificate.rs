//! The Super Protocol order certificate (`/sp/certs/order_cert.crt`): on Super Protocol the
//! workload itself may have no access to the TDX quote interface; the platform's Trusted Loader
//! attests the TEE, verifies the workload and places this certificate, which carries the hash of
//! the workload's information, in the order's environment. Its fingerprint and subject go into
//! the identity document, so that the identity names the order it runs under.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Where Super Protocol puts the order certificate.
pub const ORDER_CERTIFICATE_PATH: &str = "/sp/certs/order_cert.crt";
/// Where its private key is taken to be. Super Protocol's documentation says `/sp/certs` holds
/// "the order certificate, private key, and workloadInfo" without naming the files; this name
/// follows the certificate's, and `ENCLAVE_ORDER_KEY` overrides it.
pub const ORDER_KEY_PATH: &str = "/sp/certs/order_cert.key";
/// A certificate is a few KiB; anything much larger is not one.
const MAX_CERTIFICATE_BYTES: u64 = 1024 * 1024;

/// What the identity says about the order certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderCertificate {
    /// Lowercase hex SHA-256 of the certificate's DER.
    pub sha256_fingerprint: String,
    /// The subject distinguished name (RFC 4514 style, as x509-parser prints it).
    pub subject: String,
    pub issuer: String,
    /// RFC 3339, UTC.
    pub not_after: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OrderCertificateError {
    #[error("cannot read the order certificate {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the order certificate {path} is larger than {MAX_CERTIFICATE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("the order certificate {path} is not a PEM or DER X.509 certificate: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

/// Reads the certificate at `path` if it exists: `Ok(None)` when there is no such file. Only a
/// regular file is read: a FIFO or a device there must not hold the boot.
pub fn read(path: &Path) -> Result<Option<OrderCertificate>, OrderCertificateError> {
    use crate::config::regular_file::{read_bounded, FileError};
    let read_err = |source| OrderCertificateError::Read {
        path: path.to_owned(),
        source,
    };
    let bytes = match read_bounded(path, MAX_CERTIFICATE_BYTES) {
        Ok(bytes) => bytes,
        Err(FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(FileError::Io(e)) => return Err(read_err(e)),
        Err(FileError::TooLarge(_)) => {
            return Err(OrderCertificateError::TooLarge {
                path: path.to_owned(),
            })
        }
        Err(e @ FileError::NotRegular(_)) => return Err(read_err(std::io::Error::other(e))),
    };
    parse(&bytes)
        .map(Some)
        .map_err(|reason| OrderCertificateError::Malformed {
            path: path.to_owned(),
            reason,
        })
}

/// Parses the first certificate of a PEM file, or a DER certificate.
pub fn parse(bytes: &[u8]) -> Result<OrderCertificate, String> {
    let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(bytes).map_err(|e| e.to_string())?;
        if pem.label != "CERTIFICATE" {
            return Err(format!(
                "the PEM block is labelled {:?}, expected \"CERTIFICATE\"",
                pem.label
            ));
        }
        pem.contents
    } else {
        bytes.to_vec()
    };
    let (rest, certificate) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
    let used = &der[..der.len() - rest.len()];
    let not_after = certificate.validity().not_after.timestamp();
    Ok(OrderCertificate {
        sha256_fingerprint: hex::encode(Sha256::digest(used)),
        subject: certificate.subject().to_string(),
        issuer: certificate.issuer().to_string(),
        not_after: rfc3339(not_after),
    })
}

/// humantime cannot format instants past 9999-12-31T23:59:59Z.
pub(crate) const MAX_RFC3339_SECS: u64 = 253_402_300_799;

fn rfc3339(unix_secs: i64) -> String {
    match u64::try_from(unix_secs) {
        Ok(secs) if secs <= MAX_RFC3339_SECS => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string(),
        _ => unix_secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        let mut params =
            rcgen::CertificateParams::new(vec!["order.example".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "order 12345");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        rcgen::CertifiedKey {
            cert,
            signing_key: key,
        }
    }

    #[test]
    fn pem_and_der_give_the_same_fingerprint_of_the_der() {
        let certified = certificate();
        let der = certified.cert.der().to_vec();
        let pem = certified.cert.pem();
        let from_der = parse(&der).expect("der");
        let from_pem = parse(pem.as_bytes()).expect("pem");
        assert_eq!(from_der, from_pem);
        assert_eq!(
            from_der.sha256_fingerprint,
            hex::encode(Sha256::digest(&der))
        );
        assert!(
            from_der.subject.contains("CN=order 12345"),
            "{}",
            from_der.subject
        );
        assert!(from_der.not_after.ends_with('Z'), "{}", from_der.not_after);
    }

    #[test]
    fn a_missing_file_is_none_and_garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("order_cert.crt");
        assert!(read(&path).expect("absent").is_none());
        std::fs::write(&path, b"not a certificate").expect("write");
        let error = read(&path).expect_err("garbage");
        assert!(error.to_string().contains("order_cert.crt"), "{error}");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        let error = read(&path).expect_err("a key");
        assert!(error.to_string().contains("order_cert.crt"), "{error}");
        std::fs::write(&path, certificate().cert.pem()).expect("write");
        assert!(read(&path).expect("pem").is_some());
    }
}
