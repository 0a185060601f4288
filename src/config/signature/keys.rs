//! Key material for the two configuration signature schemes. The scheme is never a separate
//! setting: it follows from the key's algorithm, so a public key decides how a configuration is
//! verified.
//!
//! Text formats are the ones the reference tooling uses: public keys as base64 of the DER
//! `SubjectPublicKeyInfo`, private keys as base64 of the DER PKCS#8 `PrivateKeyInfo` (PEM is
//! accepted as well).

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use k256::ecdsa::{SigningKey, VerifyingKey};
use k256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use pkcs8::der::pem;
use pkcs8::PrivateKeyInfo;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use crate::config::secret::{Secret, REDACTED};

/// id-ecPublicKey (RFC 5480): the algorithm of every EC key; the curve is its parameter.
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// The secp256k1 named curve (SEC 2).
const SECP256K1_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
/// id-Ed25519 (RFC 8410).
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// SPKI DER up to the key bytes, for a secp256k1 key with an uncompressed (65-byte) point: the
/// form Node and OpenSSL export and the reference public key uses.
const SECP256K1_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x56, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x0a, 0x03, 0x42, 0x00,
];
/// SPKI DER up to the 32 key bytes, for an Ed25519 key (RFC 8410 §4).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// PKCS#8 v1 DER up to the 32-byte seed, for an Ed25519 key (RFC 8410 §7). v1 is what OpenSSL
/// and Node write, so an exported key imports everywhere.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Why key material was rejected. Messages describe the problem, never the key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown signature scheme {0:?}: expected \"ed25519\" or \"secp256k1\"")]
    UnknownScheme(String),
    #[error("the {what} is empty")]
    Empty { what: &'static str },
    #[error("the {what} is not valid base64")]
    NotBase64 { what: &'static str },
    #[error("the {what} is not a valid PEM block: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("the {what} is a PEM block labelled {label:?}, expected {expected}")]
    PemLabel {
        what: &'static str,
        label: String,
        expected: &'static str,
    },
    #[error("the {what} is malformed: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error(
        "unsupported key algorithm {oid}: expected Ed25519 ({ID_ED25519}) or an EC key \
         ({ID_EC_PUBLIC_KEY}) on curve secp256k1 ({SECP256K1_CURVE})"
    )]
    UnsupportedAlgorithm { oid: String },
    #[error("could not generate a key: the system random number generator failed")]
    Generation,
}

/// A configuration signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// The reference solution's scheme: ECDSA on secp256k1 with SHA-256 over the lowercase hex
    /// npm `object-hash` of the payload; DER signature.
    Reference,
    /// Ed25519 over the RFC 8785 canonical JSON of the payload; raw 64-byte signature.
    Native,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reference => "reference-secp256k1",
            Self::Native => "native-ed25519",
        })
    }
}

impl FromStr for Scheme {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "secp256k1" | "reference" | "reference-secp256k1" => Ok(Self::Reference),
            "ed25519" | "native" | "native-ed25519" => Ok(Self::Native),
            _ => Err(KeyError::UnknownScheme(text.to_owned())),
        }
    }
}

/// What the signing code needs from a public key.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum PublicMaterial {
    Secp256k1(VerifyingKey),
    Ed25519([u8; 32]),
}

/// A configuration verification key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    material: PublicMaterial,
}

impl PublicKey {
    /// Parses base64 of a DER `SubjectPublicKeyInfo` (surrounding and embedded whitespace is
    /// ignored, so wrapped text works). A PEM `PUBLIC KEY` block is accepted too.
    pub fn from_base64_spki(text: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "public key";
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty { what: WHAT });
        }
        let der = if text.starts_with("-----BEGIN") {
            decode_pem(text, WHAT, "PUBLIC KEY")?
        } else {
            decode_base64(text, WHAT)?
        };
        Self::from_spki_der(&der)
    }

    /// Parses a DER `SubjectPublicKeyInfo`.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        const WHAT: &str = "public key";
        let info = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| malformed(WHAT, e))?;
        let algorithm = &info.algorithm;
        if algorithm.oid == ID_ED25519 {
            // RFC 8410: the parameters must be absent.
            if algorithm.parameters.is_some() {
                return Err(malformed(
                    WHAT,
                    "Ed25519 algorithm parameters must be absent",
                ));
            }
            let bytes: [u8; 32] = info
                .subject_public_key
                .as_bytes()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| malformed(WHAT, "an Ed25519 public key is 32 bytes"))?;
            Ok(Self {
                material: PublicMaterial::Ed25519(bytes),
            })
        } else if algorithm.oid == ID_EC_PUBLIC_KEY {
            ec_curve(algorithm.parameters_oid(), WHAT)?;
            let key = VerifyingKey::from_public_key_der(der)
                .map_err(|_| malformed(WHAT, "not a valid secp256k1 point"))?;
            Ok(Self {
                material: PublicMaterial::Secp256k1(key),
            })
        } else {
            Err(KeyError::UnsupportedAlgorithm {
                oid: algorithm.oid.to_string(),
            })
        }
    }

    /// Base64 of the DER `SubjectPublicKeyInfo`. secp256k1 points are always written
    /// uncompressed, whatever form they were read in.
    pub fn to_base64_spki(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_spki_der())
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub fn to_spki_der(&self) -> Vec<u8> {
        match &self.material {
            PublicMaterial::Secp256k1(key) => {
                let point = key.to_encoded_point(false);
                [SECP256K1_SPKI_PREFIX.as_slice(), point.as_bytes()].concat()
            }
            PublicMaterial::Ed25519(bytes) => {
                [ED25519_SPKI_PREFIX.as_slice(), bytes.as_slice()].concat()
            }
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self.material {
            PublicMaterial::Secp256k1(_) => Scheme::Reference,
            PublicMaterial::Ed25519(_) => Scheme::Native,
        }
    }

    pub(super) fn material(&self) -> &PublicMaterial {
        &self.material
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("scheme", &format_args!("{}", self.scheme()))
            .field("spki", &format_args!("{}", self.to_base64_spki()))
            .finish()
    }
}

/// What the signing code needs from a private key.
pub(super) enum PrivateMaterial {
    Secp256k1(SigningKey),
    Ed25519 {
        pair: Ed25519KeyPair,
        /// ring cannot export a key pair, so the PKCS#8 (v1) document is kept for export.
        pkcs8: Zeroizing<Vec<u8>>,
    },
}

/// A configuration signing key. It never prints its material.
pub struct PrivateKey {
    material: PrivateMaterial,
}

impl PrivateKey {
    /// A fresh random key for `scheme`, from the operating system's random number generator.
    pub fn generate(scheme: Scheme) -> Result<Self, KeyError> {
        match scheme {
            Scheme::Reference => {
                let key = SigningKey::random(&mut k256::elliptic_curve::rand_core::OsRng);
                Ok(Self {
                    material: PrivateMaterial::Secp256k1(key),
                })
            }
            Scheme::Native => {
                let rng = ring::rand::SystemRandom::new();
                let document =
                    Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generation)?;
                Self::from_pkcs8_der(document.as_ref())
            }
        }
    }

    /// Parses base64 of a DER PKCS#8 `PrivateKeyInfo` (what the reference Node signer takes),
    /// a PEM `PRIVATE KEY` block, or a PEM `EC PRIVATE KEY` (SEC 1) block holding a secp256k1
    /// key. Whitespace around and inside the base64 is ignored.
    pub fn from_pkcs8_text(text: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "private key";
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty { what: WHAT });
        }
        if !text.starts_with("-----BEGIN") {
            let der = Zeroizing::new(decode_base64(text, WHAT)?);
            return Self::from_pkcs8_der(&der);
        }
        let (label, der) = pem::decode_vec(text.as_bytes()).map_err(|e| KeyError::Pem {
            what: WHAT,
            reason: e.to_string(),
        })?;
        let der = Zeroizing::new(der);
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "EC PRIVATE KEY" => {
                let secret = k256::SecretKey::from_sec1_der(&der)
                    .map_err(|_| malformed(WHAT, "not a valid SEC 1 secp256k1 private key"))?;
                Ok(Self {
                    material: PrivateMaterial::Secp256k1(SigningKey::from(secret)),
                })
            }
            other => Err(KeyError::PemLabel {
                what: WHAT,
                label: other.to_owned(),
                expected: "PRIVATE KEY or EC PRIVATE KEY",
            }),
        }
    }

    /// Parses a DER PKCS#8 `PrivateKeyInfo` (v1 or v2).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        const WHAT: &str = "private key";
        let info = PrivateKeyInfo::try_from(der).map_err(|e| malformed(WHAT, e))?;
        let algorithm = &info.algorithm;
        if algorithm.oid == ID_ED25519 {
            // RFC 8410: the private key field wraps the 32-byte seed in an OCTET STRING.
            let seed = match info.private_key {
                [0x04, 0x20, seed @ ..] if seed.len() == 32 => seed,
                _ => return Err(malformed(WHAT, "an Ed25519 private key is a 32-byte seed")),
            };
            // Parse the document as given, so ring checks a v2 public key against the seed.
            let pair =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| malformed(WHAT, e))?;
            let mut pkcs8 = Zeroizing::new(Vec::with_capacity(ED25519_PKCS8_V1_PREFIX.len() + 32));
            pkcs8.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
            pkcs8.extend_from_slice(seed);
            Ok(Self {
                material: PrivateMaterial::Ed25519 { pair, pkcs8 },
            })
        } else if algorithm.oid == ID_EC_PUBLIC_KEY {
            ec_curve(algorithm.parameters_oid(), WHAT)?;
            let key = SigningKey::from_pkcs8_der(der)
                .map_err(|_| malformed(WHAT, "not a valid secp256k1 private key"))?;
            Ok(Self {
                material: PrivateMaterial::Secp256k1(key),
            })
        } else {
            Err(KeyError::UnsupportedAlgorithm {
                oid: algorithm.oid.to_string(),
            })
        }
    }

    /// Base64 of the DER PKCS#8 `PrivateKeyInfo`, the form [`PrivateKey::from_pkcs8_text`] and
    /// the reference signer read.
    pub fn to_pkcs8_base64(&self) -> Secret<String> {
        let der: Zeroizing<Vec<u8>> = match &self.material {
            PrivateMaterial::Secp256k1(key) => secp256k1_pkcs8(key),
            PrivateMaterial::Ed25519 { pkcs8, .. } => pkcs8.clone(),
        };
        Secret::new(base64::engine::general_purpose::STANDARD.encode(der.as_slice()))
    }

    pub fn public_key(&self) -> PublicKey {
        let material = match &self.material {
            PrivateMaterial::Secp256k1(key) => PublicMaterial::Secp256k1(*key.verifying_key()),
            PrivateMaterial::Ed25519 { pair, .. } => {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(pair.public_key().as_ref());
                PublicMaterial::Ed25519(bytes)
            }
        };
        PublicKey { material }
    }

    pub fn scheme(&self) -> Scheme {
        match self.material {
            PrivateMaterial::Secp256k1(_) => Scheme::Reference,
            PrivateMaterial::Ed25519 { .. } => Scheme::Native,
        }
    }

    pub(super) fn material(&self) -> &PrivateMaterial {
        &self.material
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("scheme", &format_args!("{}", self.scheme()))
            .field("material", &format_args!("{REDACTED}"))
            .finish()
    }
}

/// PKCS#8 v1 for secp256k1, with a SEC 1 `ECPrivateKey` holding just the scalar (RFC 5915
/// makes the embedded public key optional; OpenSSL and Node recompute it). Writing the fixed
/// layout by hand keeps export infallible instead of unwrapping an encoder result.
fn secp256k1_pkcs8(key: &SigningKey) -> Zeroizing<Vec<u8>> {
    const PREFIX: [u8; 32] = [
        0x30, 0x3e, // PrivateKeyInfo, 62 bytes
        0x02, 0x01, 0x00, // version 0 (v1)
        0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
        0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a, // secp256k1
        0x04, 0x27, // privateKey OCTET STRING, 39 bytes
        0x30, 0x25, // ECPrivateKey, 37 bytes
        0x02, 0x01, 0x01, // version 1
        0x04, 0x20, // the 32-byte scalar follows
    ];
    let scalar = Zeroizing::new(key.to_bytes());
    let mut der = Zeroizing::new(Vec::with_capacity(PREFIX.len() + scalar.len()));
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(&scalar);
    der
}

/// Checks that an EC key's curve parameter is secp256k1.
fn ec_curve(curve: spki::Result<ObjectIdentifier>, what: &'static str) -> Result<(), KeyError> {
    match curve {
        Ok(curve) if curve == SECP256K1_CURVE => Ok(()),
        Ok(curve) => Err(KeyError::UnsupportedAlgorithm {
            oid: format!("{ID_EC_PUBLIC_KEY} (curve {curve})"),
        }),
        Err(_) => Err(malformed(what, "the EC key does not name its curve")),
    }
}

fn malformed(what: &'static str, reason: impl fmt::Display) -> KeyError {
    KeyError::Malformed {
        what,
        reason: reason.to_string(),
    }
}

/// Standard-alphabet base64, ignoring whitespace (keys are often wrapped) and not insisting on
/// padding, which is as lenient as Node's `Buffer.from(text, 'base64')` needs us to be for
/// well-formed input.
pub(super) fn decode_base64(text: &str, what: &'static str) -> Result<Vec<u8>, KeyError> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    ENGINE
        .decode(compact.as_bytes())
        .map_err(|_| KeyError::NotBase64 { what })
}

fn decode_pem(text: &str, what: &'static str, expected: &'static str) -> Result<Vec<u8>, KeyError> {
    let (label, der) = pem::decode_vec(text.as_bytes()).map_err(|e| KeyError::Pem {
        what,
        reason: e.to_string(),
    })?;
    if label != expected {
        return Err(KeyError::PemLabel {
            what,
            label: label.to_owned(),
            expected,
        });
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_SECP256K1_PKCS8: &str = "MIGEAgEAMBAGByqGSM49AgEGBSuBBAAKBG0wawIBAQQge1nhWA1RYSUjfD8H6ubOu37EOVOeeJ/jf1zBRC1C4G6hRANCAATfVHdao534f6DgVC0PxF0YmXZqNjXYg45lP61BO7Qa6oEGgTaocz+ny4LdHMhqt1TXfF1sNAr53s1WC9ER9QWd";
    const NODE_SECP256K1_SPKI: &str = "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAE31R3WqOd+H+g4FQtD8RdGJl2ajY12IOOZT+tQTu0GuqBBoE2qHM/p8uC3RzIardU13xdbDQK+d7NVgvREfUFnQ==";
    const REFERENCE_PUBLIC_KEY: &str = "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEhNTUK8ZTmsxq0Hjh/ePIot1AE8kM1BKkJPXMnVv81SkrXumiW6vG75arqQTld4bvnwcf6+ytvVZUEdHCbl1A6g==";

    #[test]
    fn scheme_display_and_parse() {
        assert_eq!(Scheme::Reference.to_string(), "reference-secp256k1");
        assert_eq!(Scheme::Native.to_string(), "native-ed25519");
        for (text, scheme) in [
            ("secp256k1", Scheme::Reference),
            ("reference", Scheme::Reference),
            ("reference-secp256k1", Scheme::Reference),
            ("ed25519", Scheme::Native),
            ("Ed25519", Scheme::Native),
            ("native", Scheme::Native),
            ("native-ed25519", Scheme::Native),
        ] {
            assert_eq!(text.parse::<Scheme>().expect(text), scheme);
        }
        let error = "rsa".parse::<Scheme>().expect_err("unknown");
        assert!(error.to_string().contains("\"rsa\""));
    }

    #[test]
    fn reference_public_key_round_trips() {
        let key = PublicKey::from_base64_spki(&format!("  {REFERENCE_PUBLIC_KEY}\n"))
            .expect("reference key parses");
        assert_eq!(key.scheme(), Scheme::Reference);
        assert_eq!(key.to_base64_spki(), REFERENCE_PUBLIC_KEY);
    }

    #[test]
    fn compressed_secp256k1_point_is_accepted_and_exported_uncompressed() {
        let key = PrivateKey::generate(Scheme::Reference).expect("generate");
        let PublicMaterial::Secp256k1(verifying) = key.public_key().material().clone() else {
            panic!("secp256k1 key expected");
        };
        let compressed = verifying.to_encoded_point(true);
        // SPKI with a 33-byte point: same algorithm identifier, shorter BIT STRING.
        let mut der = vec![0x30, 0x36];
        der.extend_from_slice(&SECP256K1_SPKI_PREFIX[2..20]);
        der.extend_from_slice(&[0x03, 0x22, 0x00]);
        der.extend_from_slice(compressed.as_bytes());
        let parsed = PublicKey::from_spki_der(&der).expect("compressed key parses");
        assert_eq!(parsed, key.public_key());
        assert_eq!(parsed.to_base64_spki(), key.public_key().to_base64_spki());
    }

    #[test]
    fn secp256k1_spki_matches_the_generic_encoder() {
        use k256::pkcs8::EncodePublicKey as _;
        let key = PrivateKey::generate(Scheme::Reference).expect("generate");
        let PublicMaterial::Secp256k1(verifying) = key.public_key().material().clone() else {
            panic!("secp256k1 key expected");
        };
        let generic = k256::PublicKey::from(&verifying)
            .to_public_key_der()
            .expect("encodes");
        assert_eq!(key.public_key().to_spki_der(), generic.as_bytes());
    }

    #[test]
    fn ed25519_public_key_round_trips() {
        let key = PrivateKey::generate(Scheme::Native).expect("generate");
        let public = key.public_key();
        assert_eq!(public.scheme(), Scheme::Native);
        let text = public.to_base64_spki();
        assert!(text.starts_with("MCowBQYDK2VwAyEA"), "{text}");
        assert_eq!(PublicKey::from_base64_spki(&text).expect("parses"), public);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{text}\n-----END PUBLIC KEY-----\n");
        assert_eq!(
            PublicKey::from_base64_spki(&pem).expect("PEM parses"),
            public
        );
    }

    #[test]
    fn unsupported_public_key_algorithms_are_named() {
        // A P-256 key: id-ecPublicKey with curve prime256v1.
        let p256 = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEpMAgnj5Ppw22UwN+mtXdYjDK7foTfqOsVH2cpf2h+aKrqgUHvNdNy0oLAuN01NODgsJfUJmpXD0/k09a5vPTNA==";
        let error = PublicKey::from_base64_spki(p256).expect_err("P-256 rejected");
        assert!(matches!(error, KeyError::UnsupportedAlgorithm { .. }));
        assert!(error.to_string().contains("1.2.840.10045.3.1.7"), "{error}");

        // An X25519 key (1.3.101.110).
        let x25519 = "MCowBQYDK2VuAyEAv5aaeYhkkZrX22A0vMIb+oS9oZydIl5aboRolq6sM0Y=";
        let error = PublicKey::from_base64_spki(x25519).expect_err("X25519 rejected");
        assert!(error.to_string().contains("1.3.101.110"), "{error}");

        let rsa = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDTtFN86+qSsnrNczRpYax5SCsoSz70YajadwqKySfy2W+DbkO8h2oY8/lXbRvBDQwYs8oKvDBwPF8XUnGvM0eyMh5M31WrqGDHKc8xjuZdUtIyeGYO+OI7DyKoRctpUNWuwrt7UqEykLuPG+HZeVUOs91kPdJRuXz1GN8Dc6r40QIDAQAB";
        let error = PublicKey::from_base64_spki(rsa).expect_err("RSA rejected");
        assert!(
            error.to_string().contains("1.2.840.113549.1.1.1"),
            "{error}"
        );

        // The same rule for private keys: a P-256 PKCS#8 key.
        let p256_private = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgt0j81KH74uww+MH45insH8afAbbkCz2hqldS9d5jNlShRANCAASxAEivXgX85ZTvGCmv0quZJrFs7rvFe+pttg+RplgLPESrr/whJcTQDOZF4ONkumDjvFS3xKJgp8orwluHWQJH";
        let error = PrivateKey::from_pkcs8_text(p256_private).expect_err("P-256 rejected");
        assert!(matches!(error, KeyError::UnsupportedAlgorithm { .. }));
        assert!(error.to_string().contains("1.2.840.10045.3.1.7"), "{error}");
    }

    #[test]
    fn bad_public_key_text_is_rejected() {
        assert!(matches!(
            PublicKey::from_base64_spki("  "),
            Err(KeyError::Empty { .. })
        ));
        assert!(matches!(
            PublicKey::from_base64_spki("not base64!"),
            Err(KeyError::NotBase64 { .. })
        ));
        assert!(matches!(
            PublicKey::from_base64_spki(&REFERENCE_PUBLIC_KEY[..40]),
            Err(KeyError::Malformed { .. } | KeyError::NotBase64 { .. })
        ));
        // A valid SPKI shell around a point that is not on the curve.
        let mut der = base64::engine::general_purpose::STANDARD
            .decode(REFERENCE_PUBLIC_KEY)
            .expect("base64");
        let last = der.len() - 1;
        der[last] ^= 1;
        assert!(matches!(
            PublicKey::from_spki_der(&der),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn private_keys_round_trip_through_pkcs8() {
        for scheme in [Scheme::Reference, Scheme::Native] {
            let key = PrivateKey::generate(scheme).expect("generate");
            assert_eq!(key.scheme(), scheme);
            assert_eq!(key.public_key().scheme(), scheme);
            let exported = key.to_pkcs8_base64();
            let again = PrivateKey::from_pkcs8_text(exported.expose()).expect("reimport");
            assert_eq!(again.public_key(), key.public_key());
            assert_eq!(again.to_pkcs8_base64().expose(), exported.expose());

            let der = base64::engine::general_purpose::STANDARD
                .decode(exported.expose())
                .expect("base64");
            let wrapped: String = exported
                .expose()
                .as_bytes()
                .chunks(64)
                .map(|line| String::from_utf8_lossy(line).into_owned() + "\n")
                .collect();
            let pem = format!("-----BEGIN PRIVATE KEY-----\n{wrapped}-----END PRIVATE KEY-----\n");
            let from_pem = PrivateKey::from_pkcs8_text(&pem).expect("PEM");
            assert_eq!(from_pem.public_key(), key.public_key());
            assert_eq!(
                PrivateKey::from_pkcs8_der(&der).expect("DER").public_key(),
                key.public_key()
            );
            // Wrapped base64 without PEM armour is fine too.
            assert_eq!(
                PrivateKey::from_pkcs8_text(&wrapped)
                    .expect("wrapped")
                    .public_key(),
                key.public_key()
            );
        }
    }

    #[test]
    fn ed25519_export_is_pkcs8_v1() {
        let key = PrivateKey::generate(Scheme::Native).expect("generate");
        let der = base64::engine::general_purpose::STANDARD
            .decode(key.to_pkcs8_base64().expose())
            .expect("base64");
        assert_eq!(der.len(), 48);
        assert_eq!(der[..16], ED25519_PKCS8_V1_PREFIX);
    }

    #[test]
    fn ed25519_rfc8410_example_key() {
        // RFC 8410 §10.3 private key; its public key is the §10.1 example.
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let key = PrivateKey::from_pkcs8_text(pem).expect("RFC 8410 key");
        assert_eq!(key.scheme(), Scheme::Native);
        assert_eq!(
            key.public_key().to_base64_spki(),
            "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
        );
    }

    #[test]
    fn sec1_pem_is_accepted_for_secp256k1() {
        let key = PrivateKey::generate(Scheme::Reference).expect("generate");
        let PrivateMaterial::Secp256k1(signing) = key.material() else {
            panic!("secp256k1 key expected");
        };
        let sec1 = k256::SecretKey::from(signing)
            .to_sec1_der()
            .expect("SEC 1 DER");
        let pem = pem::encode_string("EC PRIVATE KEY", pem::LineEnding::LF, &sec1).expect("PEM");
        let again = PrivateKey::from_pkcs8_text(&pem).expect("SEC 1 parses");
        assert_eq!(again.public_key(), key.public_key());
    }

    #[test]
    fn secp256k1_export_matches_the_generic_decoder() {
        let key = PrivateKey::generate(Scheme::Reference).expect("generate");
        let PrivateMaterial::Secp256k1(signing) = key.material() else {
            panic!("secp256k1 key expected");
        };
        let der = secp256k1_pkcs8(signing);
        let decoded = SigningKey::from_pkcs8_der(&der).expect("k256 reads the export");
        assert_eq!(decoded.verifying_key(), signing.verifying_key());
    }

    #[test]
    fn node_exported_secp256k1_key_imports() {
        // `generateKeyPairSync('ec', {namedCurve: 'secp256k1'})`, PKCS#8 DER as base64 (a throwaway
        // test key); Node embeds the public key in the SEC 1 structure.
        let key = PrivateKey::from_pkcs8_text(NODE_SECP256K1_PKCS8).expect("Node key parses");
        assert_eq!(key.scheme(), Scheme::Reference);
        assert_eq!(key.public_key().to_base64_spki(), NODE_SECP256K1_SPKI);
    }

    #[test]
    fn bad_private_key_text_is_rejected() {
        assert!(matches!(
            PrivateKey::from_pkcs8_text(""),
            Err(KeyError::Empty { .. })
        ));
        assert!(matches!(
            PrivateKey::from_pkcs8_text("%%%"),
            Err(KeyError::NotBase64 { .. })
        ));
        assert!(matches!(
            PrivateKey::from_pkcs8_text("AAAA"),
            Err(KeyError::Malformed { .. })
        ));
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            PrivateKey::from_pkcs8_text(pem),
            Err(KeyError::PemLabel { .. })
        ));
        // A public key where a private key belongs.
        assert!(matches!(
            PrivateKey::from_pkcs8_text(REFERENCE_PUBLIC_KEY),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn debug_and_errors_never_show_private_material() {
        for scheme in [Scheme::Reference, Scheme::Native] {
            let key = PrivateKey::generate(scheme).expect("generate");
            let exported = key.to_pkcs8_base64();
            let debug = format!("{key:?}");
            assert!(!debug.contains(exported.expose().as_str()), "{debug}");
            assert!(debug.contains("***"), "{debug}");
            assert!(debug.contains(&scheme.to_string()), "{debug}");
            assert_eq!(format!("{exported:?}"), "***");

            // A corrupted key's error message does not echo any of it.
            let mut der = base64::engine::general_purpose::STANDARD
                .decode(exported.expose())
                .expect("base64");
            der.truncate(der.len() - 3);
            let broken = base64::engine::general_purpose::STANDARD.encode(&der);
            let error = PrivateKey::from_pkcs8_text(&broken).expect_err("truncated");
            let message = error.to_string();
            assert!(!message.contains(&broken[10..30]), "{message}");
        }
    }
}
