//! Signatures for the `superprotocol` and `simulated` providers: a private key read from a
//! PKCS#8 PEM file signs, an X.509 certificate's public key verifies, and a certificate chain is
//! checked link by link up to a certificate the verifier trusts. ring does the cryptography
//! (ECDSA P-256/P-384, Ed25519, RSA PKCS#1 v1.5 with SHA-256); x509-parser reads certificates.

use std::fmt;
use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};

/// Every signature this module makes is over this prefix and then the 64 bytes of report data,
/// so that a signature made here cannot be taken for one the same key makes for something else
/// (Super Protocol's order key also signs TLS fingerprints).
pub const DOMAIN: &[u8] = b"enclave-evidence/1\0";

/// A key file is a few hundred bytes; more is not one.
const MAX_KEY_BYTES: u64 = 64 * 1024;
/// A certificate chain is a few KiB.
pub const MAX_CHAIN_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no PKCS#8 private key (a PEM block \"PRIVATE KEY\" of ECDSA P-256, P-384, Ed25519 or RSA): {reason}")]
    Key { path: String, reason: String },
    #[error("{path} holds no X.509 certificate: {reason}")]
    Certificates { path: String, reason: String },
    #[error("the private key in {key} does not belong to the certificate in {certificate}")]
    Mismatch { key: String, certificate: String },
    #[error("signing failed")]
    Sign,
}

/// A private key that signs evidence. Its `Debug` shows the algorithm only.
pub enum SigningKey {
    EcdsaP256(EcdsaKeyPair),
    EcdsaP384(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.algorithm())
    }
}

impl SigningKey {
    /// The key in the PKCS#8 PEM file at `path`.
    pub fn read(path: &Path) -> Result<Self, SigningError> {
        let shown = path.display().to_string();
        let bytes = read_file(path, MAX_KEY_BYTES)?;
        let key_error = |reason: String| SigningError::Key {
            path: shown.clone(),
            reason,
        };
        let der = pem_blocks(&bytes)
            .map_err(key_error)?
            .into_iter()
            .find(|(label, _)| label == "PRIVATE KEY")
            .map(|(_, der)| zeroize::Zeroizing::new(der))
            .ok_or_else(|| key_error("no \"PRIVATE KEY\" block".to_owned()))?;
        Self::from_pkcs8(&der).map_err(|_| key_error("not a key of a supported kind".to_owned()))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, ring::error::KeyRejected> {
        let rng = SystemRandom::new();
        if let Ok(key) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
        {
            return Ok(Self::EcdsaP256(key));
        }
        if let Ok(key) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der, &rng)
        {
            return Ok(Self::EcdsaP384(key));
        }
        if let Ok(key) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(Self::Ed25519(key));
        }
        RsaKeyPair::from_pkcs8(der).map(Self::Rsa)
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::EcdsaP256(_) => "ecdsa-p256-sha256",
            Self::EcdsaP384(_) => "ecdsa-p384-sha384",
            Self::Ed25519(_) => "ed25519",
            Self::Rsa(_) => "rsa-pkcs1-sha256",
        }
    }

    /// The raw public key, as a certificate's SubjectPublicKeyInfo holds it.
    fn public_key(&self) -> &[u8] {
        match self {
            Self::EcdsaP256(k) | Self::EcdsaP384(k) => k.public_key().as_ref(),
            Self::Ed25519(k) => k.public_key().as_ref(),
            Self::Rsa(k) => k.public().as_ref(),
        }
    }

    /// Whether this key is the one `certificate` (DER) certifies.
    pub fn matches(&self, certificate: &[u8]) -> bool {
        x509_parser::parse_x509_certificate(certificate).is_ok_and(|(_, cert)| {
            cert.public_key().subject_public_key.data.as_ref() == self.public_key()
        })
    }

    /// The signature over [`DOMAIN`] ‖ `report_data`.
    pub fn sign(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, SigningError> {
        let message = [DOMAIN, report_data.as_slice()].concat();
        let rng = SystemRandom::new();
        match self {
            Self::EcdsaP256(k) | Self::EcdsaP384(k) => k
                .sign(&rng, &message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SigningError::Sign),
            Self::Ed25519(k) => Ok(k.sign(&message).as_ref().to_vec()),
            Self::Rsa(k) => {
                let mut signature = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, &message, &mut signature)
                    .map_err(|_| SigningError::Sign)?;
                Ok(signature)
            }
        }
    }
}

/// The certificates (DER, in file order) of the PEM file at `path`.
pub fn read_certificates(path: &Path) -> Result<Vec<Vec<u8>>, SigningError> {
    let shown = path.display().to_string();
    let bytes = read_file(path, MAX_CHAIN_BYTES)?;
    certificates(&bytes).map_err(|reason| SigningError::Certificates {
        path: shown,
        reason,
    })
}

/// The certificates of PEM text, each parsed once to be sure it is one.
pub fn certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let ders: Vec<Vec<u8>> = pem_blocks(pem)?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der)
        .collect();
    if ders.is_empty() {
        return Err("no \"CERTIFICATE\" block".to_owned());
    }
    for (i, der) in ders.iter().enumerate() {
        x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("certificate {} does not parse: {e}", i + 1))?;
    }
    Ok(ders)
}

/// DER as PEM text.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

fn pem_blocks(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut blocks = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("not PEM: {e}"))?;
        blocks.push((pem.label, pem.contents));
    }
    if blocks.is_empty() {
        return Err("not PEM: no block".to_owned());
    }
    Ok(blocks)
}

fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, SigningError> {
    crate::config::regular_file::read_bounded(path, limit).map_err(|e| SigningError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Checks `signature` over [`DOMAIN`] ‖ `report_data` with the public key of `certificate`.
pub fn verify_signature(
    certificate: &[u8],
    report_data: &[u8; 64],
    signature: &[u8],
) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let spki = cert.public_key();
    let algorithm: &dyn signature::VerificationAlgorithm = {
        let oid = &spki.algorithm.algorithm;
        if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == OID_EC_P256 => &signature::ECDSA_P256_SHA256_ASN1,
                Some(c) if c == OID_NIST_EC_P384 => &signature::ECDSA_P384_SHA384_ASN1,
                _ => return Err("the certificate's EC curve is neither P-256 nor P-384".into()),
            }
        } else if *oid == OID_SIG_ED25519 {
            &signature::ED25519
        } else if *oid == OID_PKCS1_RSAENCRYPTION {
            &signature::RSA_PKCS1_2048_8192_SHA256
        } else {
            return Err(format!("the certificate's key type {oid} is not supported"));
        }
    };
    let message = [DOMAIN, report_data.as_slice()].concat();
    signature::UnparsedPublicKey::new(algorithm, spki.subject_public_key.data.as_ref())
        .verify(&message, signature)
        .map_err(|_| "the signature does not verify with the certificate's key".to_owned())
}

/// Checks that `chain` (DER, leaf first) is a chain of certificates valid at `at` (Unix
/// seconds), each signed by the next, every issuer a CA, ending at or signed by one of
/// `trusted` (DER). Returns the subject of the trusted certificate it ends at.
pub fn verify_chain(chain: &[Vec<u8>], trusted: &[Vec<u8>], at: i64) -> Result<String, String> {
    let parsed = parse_all(chain, "chain certificate")?;
    let anchors = parse_all(trusted, "trusted certificate")?;
    let Some(last) = parsed.last() else {
        return Err("the certificate chain is empty".to_owned());
    };
    for (i, cert) in parsed.iter().enumerate() {
        let validity = cert.validity();
        if at < validity.not_before.timestamp() || at > validity.not_after.timestamp() {
            return Err(format!(
                "certificate {} ({}) is not valid at the verification time (valid {} to {})",
                i + 1,
                cert.subject(),
                validity.not_before,
                validity.not_after
            ));
        }
        if let Some(issuer) = parsed.get(i + 1) {
            signed_by(cert, issuer).map_err(|e| format!("certificate {}: {e}", i + 1))?;
        }
    }
    if let Some(position) = trusted.iter().position(|t| Some(t) == chain.last()) {
        return Ok(anchors[position].subject().to_string());
    }
    for anchor in &anchors {
        if anchor.subject() == last.issuer() && signed_by(last, anchor).is_ok() {
            let validity = anchor.validity();
            if at < validity.not_before.timestamp() || at > validity.not_after.timestamp() {
                return Err(format!(
                    "the trusted certificate {} is not valid at the verification time",
                    anchor.subject()
                ));
            }
            return Ok(anchor.subject().to_string());
        }
    }
    Err(format!(
        "the chain ends at {} (issued by {}), which is neither a trusted certificate nor signed by one",
        last.subject(),
        last.issuer()
    ))
}

fn parse_all<'a>(ders: &'a [Vec<u8>], what: &str) -> Result<Vec<X509Certificate<'a>>, String> {
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            x509_parser::parse_x509_certificate(der)
                .map(|(_, c)| c)
                .map_err(|e| format!("{what} {} does not parse: {e}", i + 1))
        })
        .collect()
}

fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Result<(), String> {
    let is_ca = issuer
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(format!("its issuer {} is not a CA", issuer.subject()));
    }
    if cert.issuer() != issuer.subject() {
        return Err(format!(
            "it names {} as issuer, the next certificate is {}",
            cert.issuer(),
            issuer.subject()
        ));
    }
    cert.verify_signature(Some(issuer.public_key()))
        .map_err(|_| {
            format!(
                "its signature does not verify with {}'s key",
                issuer.subject()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    struct Made {
        der: Vec<u8>,
        params: CertificateParams,
        key: KeyPair,
    }

    fn make(name: &str, ca: bool, issuer: Option<&Made>) -> Made {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let key = KeyPair::generate().expect("key");
        let cert = match issuer {
            Some(i) => params
                .clone()
                .signed_by(&key, &Issuer::from_params(&i.params, &i.key)),
            None => params.clone().self_signed(&key),
        }
        .expect("certificate");
        Made {
            der: cert.der().to_vec(),
            params,
            key,
        }
    }

    #[test]
    fn a_signature_verifies_with_its_certificate_and_over_nothing_else() {
        let leaf = make("order", false, None);
        let key = SigningKey::from_pkcs8(&leaf.key.serialize_der()).expect("key");
        assert!(key.matches(&leaf.der));
        let signature = key.sign(&[7; 64]).expect("sign");
        assert!(verify_signature(&leaf.der, &[7; 64], &signature).is_ok());
        assert!(verify_signature(&leaf.der, &[8; 64], &signature).is_err());
        let other = make("other", false, None);
        assert!(!key.matches(&other.der));
        assert!(verify_signature(&other.der, &[7; 64], &signature).is_err());
        assert_eq!(format!("{key:?}"), "SigningKey(ecdsa-p256-sha256)");
    }

    #[test]
    fn a_chain_verifies_only_up_to_a_trusted_ca_through_cas_at_a_time_inside_it() {
        let root = make("root", true, None);
        let sub = make("sub", true, Some(&root));
        let leaf = make("leaf", false, Some(&sub));
        let now = 1_800_000_000;
        let chain = vec![leaf.der.clone(), sub.der.clone()];
        let trusted = std::slice::from_ref(&root.der);
        assert!(verify_chain(&chain, trusted, now).is_ok());
        // Ending at the trusted certificate itself is the same.
        let full = vec![leaf.der.clone(), sub.der.clone(), root.der.clone()];
        assert!(verify_chain(&full, trusted, now).is_ok());
        let stranger = make("root", true, None);
        assert!(verify_chain(&chain, &[stranger.der], now).is_err());
        assert!(verify_chain(&chain, &[], now).is_err());
        // A leaf cannot issue: a certificate "signed" by one is refused.
        let forged = make("forged", false, Some(&leaf));
        let error = verify_chain(
            &[forged.der, leaf.der.clone(), sub.der.clone()],
            trusted,
            now,
        )
        .expect_err("a leaf as issuer");
        assert!(error.contains("is not a CA"), "{error}");
        // rcgen's certificates are valid from 1975 to 4096.
        let error = verify_chain(&chain, trusted, 0).expect_err("before");
        assert!(
            error.contains("not valid at the verification time"),
            "{error}"
        );
    }
}
