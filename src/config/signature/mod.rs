//! Signing and verifying the solution configuration.
//!
//! Two schemes exist, and the key decides which one applies:
//!
//! * [`Scheme::Reference`] is bit-compatible with the reference solution, so configurations
//!   signed by its Node tooling verify here and the other way round: the payload is hashed with
//!   npm `object-hash` ([`object_hash`]), and the 64 lowercase hex characters of that hash are
//!   signed with ECDSA on secp256k1 and SHA-256; the signature is base64 of DER.
//! * [`Scheme::Native`] signs the RFC 8785 canonical JSON of the payload ([`canonical`]) with
//!   Ed25519; the signature is base64 of the raw 64 bytes.
//!
//! In both, the payload is the `solution` object with its `signature` member removed; removing
//! it is the caller's job.

pub mod canonical;
pub mod keys;
pub mod object_hash;

use base64::Engine as _;
use k256::ecdsa::signature::{Signer as _, Verifier as _};
use ring::signature::{UnparsedPublicKey, ED25519};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub use keys::{KeyError, PrivateKey, PublicKey, Scheme};

use canonical::{canonical_json, CanonicalError};
use keys::{PrivateMaterial, PublicMaterial};

/// Why a configuration signature was not accepted (or could not be made). No message contains
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The configuration has no `signature` member.
    #[error("the configuration has no signature")]
    Missing,
    /// The `signature` member is present but empty.
    #[error("the configuration signature is empty")]
    Empty,
    #[error("the configuration signature is not valid base64")]
    NotBase64,
    #[error("the configuration signature is malformed: {0}")]
    Malformed(&'static str),
    #[error("signature does not match the configuration and key")]
    Mismatch,
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    #[error("signing failed")]
    Signing,
}

/// A signature over a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub scheme: Scheme,
    /// Lowercase hex of the digest the scheme works on: the object hash for
    /// [`Scheme::Reference`], SHA-256 of the canonical JSON for [`Scheme::Native`].
    pub digest_hex: String,
    /// What goes in the configuration's `signature` member.
    pub signature_b64: String,
}

/// A signature that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub scheme: Scheme,
    /// As in [`Signed::digest_hex`]; useful for logging which configuration was accepted.
    pub digest_hex: String,
}

/// The lowercase hex digest `scheme` derives from `payload` (the solution object without its
/// `signature` member).
pub fn digest_hex(payload: &Value, scheme: Scheme) -> Result<String, SignatureError> {
    match scheme {
        Scheme::Reference => Ok(object_hash::digest_hex(payload)),
        Scheme::Native => Ok(hex::encode(Sha256::digest(canonical_json(payload)?))),
    }
}

/// Signs `payload` (the solution object without its `signature` member) with `key`, in the
/// key's scheme.
pub fn sign(payload: &Value, key: &PrivateKey) -> Result<Signed, SignatureError> {
    let scheme = key.scheme();
    match key.material() {
        PrivateMaterial::Secp256k1(signing) => {
            let digest_hex = object_hash::digest_hex(payload);
            // RFC 6979 deterministic nonce; k256 emits low-S, which every verifier accepts.
            let signature: k256::ecdsa::Signature = signing
                .try_sign(digest_hex.as_bytes())
                .map_err(|_| SignatureError::Signing)?;
            Ok(Signed {
                scheme,
                digest_hex,
                signature_b64: encode_base64(signature.to_der().as_bytes()),
            })
        }
        PrivateMaterial::Ed25519 { pair, .. } => {
            let message = canonical_json(payload)?;
            let signature = pair.sign(&message);
            Ok(Signed {
                scheme,
                digest_hex: hex::encode(Sha256::digest(&message)),
                signature_b64: encode_base64(signature.as_ref()),
            })
        }
    }
}

/// Checks `signature_b64` over `payload` (the solution object without its `signature` member)
/// against `key`, in the key's scheme. Whitespace around and inside the base64 is ignored.
pub fn verify(
    payload: &Value,
    signature_b64: &str,
    key: &PublicKey,
) -> Result<Verified, SignatureError> {
    if signature_b64.trim().is_empty() {
        return Err(SignatureError::Empty);
    }
    let signature =
        keys::decode_base64(signature_b64, "signature").map_err(|_| SignatureError::NotBase64)?;
    let scheme = key.scheme();
    match key.material() {
        PublicMaterial::Secp256k1(verifying) => {
            let parsed = k256::ecdsa::Signature::from_der(&signature)
                .map_err(|_| SignatureError::Malformed("not a DER-encoded ECDSA signature"))?;
            // OpenSSL (and so the reference Node signer) does not normalise s, while k256
            // rejects high-S signatures; the two are equally valid ECDSA signatures.
            let parsed = parsed.normalize_s().unwrap_or(parsed);
            let digest_hex = object_hash::digest_hex(payload);
            verifying
                .verify(digest_hex.as_bytes(), &parsed)
                .map_err(|_| SignatureError::Mismatch)?;
            Ok(Verified { scheme, digest_hex })
        }
        PublicMaterial::Ed25519(public) => {
            if signature.len() != 64 {
                return Err(SignatureError::Malformed(
                    "an Ed25519 signature is 64 bytes",
                ));
            }
            let message = canonical_json(payload)?;
            UnparsedPublicKey::new(&ED25519, public)
                .verify(&message, &signature)
                .map_err(|_| SignatureError::Mismatch)?;
            Ok(Verified {
                scheme,
                digest_hex: hex::encode(Sha256::digest(&message)),
            })
        }
    }
}

fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE_PUBLIC_KEY: &str = "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEhNTUK8ZTmsxq0Hjh/ePIot1AE8kM1BKkJPXMnVv81SkrXumiW6vG75arqQTld4bvnwcf6+ytvVZUEdHCbl1A6g==";
    const REFERENCE_PAYLOAD: &str = r#"{"totalNodes":"5","pgPort":5432,"nodesList":"1 2 3 4 5","priceAggregatorConfig":{"port":3000,"logger":{"level":"info"}}}"#;
    const REFERENCE_DIGEST: &str =
        "7cf5d910285f4ae9abf32292cc61d39ce723f6e8ac9572c91715a749df602720";
    const REFERENCE_SIGNATURE: &str = "MEUCICrQIFEPZpvpJKPAkEOerPUH2WJg5SlPRQtyFEhJsgS7AiEAtYAF9aDDFe2g3Ucarcts7a7l0yQs2dG9VDJheyCv6o0=";

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("test JSON parses")
    }

    fn reference_key() -> PublicKey {
        PublicKey::from_base64_spki(REFERENCE_PUBLIC_KEY).expect("reference key")
    }

    fn payload() -> Value {
        parse(
            r#"{"totalNodes":"5","pgPort":5432,"nodesList":"1 2 3 4 5",
                "priceAggregatorConfig":{"port":3000,"logger":{"level":"info"}},
                "sources":[{"name":"a","weight":1.5},{"name":"b","weight":2}]}"#,
        )
    }

    #[test]
    fn reference_vector_verifies() {
        let verified = verify(
            &parse(REFERENCE_PAYLOAD),
            REFERENCE_SIGNATURE,
            &reference_key(),
        )
        .expect("reference signature verifies");
        assert_eq!(
            verified,
            Verified {
                scheme: Scheme::Reference,
                digest_hex: REFERENCE_DIGEST.to_owned(),
            }
        );
        assert_eq!(
            digest_hex(&parse(REFERENCE_PAYLOAD), Scheme::Reference).expect("digest"),
            REFERENCE_DIGEST
        );
    }

    #[test]
    fn reference_vector_signature_is_high_s() {
        let der = keys::decode_base64(REFERENCE_SIGNATURE, "signature").expect("base64");
        let signature = k256::ecdsa::Signature::from_der(&der).expect("DER");
        assert!(
            signature.normalize_s().is_some(),
            "the vector must exercise high-S"
        );
    }

    #[test]
    fn reference_vector_survives_reformatting_but_not_changes() {
        let reformatted = parse(
            "{\n  \"priceAggregatorConfig\": { \"logger\": { \"level\": \"info\" }, \"port\": 3000 },\n  \"nodesList\": \"1 2 3 4 5\",\n  \"pgPort\": 5432.0,\n  \"totalNodes\": \"5\"\n}",
        );
        assert!(verify(&reformatted, REFERENCE_SIGNATURE, &reference_key()).is_ok());
        let wrapped = format!(
            "  {}\n{}\n",
            &REFERENCE_SIGNATURE[..40],
            &REFERENCE_SIGNATURE[40..]
        );
        assert!(verify(&parse(REFERENCE_PAYLOAD), &wrapped, &reference_key()).is_ok());

        let changed = parse(&REFERENCE_PAYLOAD.replace("5432", "5433"));
        assert!(matches!(
            verify(&changed, REFERENCE_SIGNATURE, &reference_key()),
            Err(SignatureError::Mismatch)
        ));
        // The reference scheme keeps JavaScript types apart: "5432" is not 5432.
        let retyped = parse(&REFERENCE_PAYLOAD.replace("5432", "\"5432\""));
        assert!(matches!(
            verify(&retyped, REFERENCE_SIGNATURE, &reference_key()),
            Err(SignatureError::Mismatch)
        ));
    }

    #[test]
    fn low_s_form_of_the_reference_signature_also_verifies() {
        let der = keys::decode_base64(REFERENCE_SIGNATURE, "signature").expect("base64");
        let signature = k256::ecdsa::Signature::from_der(&der).expect("DER");
        let low = signature.normalize_s().expect("high-S");
        let text = encode_base64(low.to_der().as_bytes());
        assert!(verify(&parse(REFERENCE_PAYLOAD), &text, &reference_key()).is_ok());
    }

    #[test]
    fn round_trip_in_both_schemes() {
        for scheme in [Scheme::Reference, Scheme::Native] {
            let key = PrivateKey::generate(scheme).expect("generate");
            let signed = sign(&payload(), &key).expect("sign");
            assert_eq!(signed.scheme, scheme);
            assert_eq!(
                signed.digest_hex,
                digest_hex(&payload(), scheme).expect("digest")
            );
            let verified =
                verify(&payload(), &signed.signature_b64, &key.public_key()).expect("verify");
            assert_eq!(verified.scheme, scheme);
            assert_eq!(verified.digest_hex, signed.digest_hex);

            // The exported and re-imported key signs identically (both schemes are
            // deterministic) and its public key verifies.
            let again =
                PrivateKey::from_pkcs8_text(key.to_pkcs8_base64().expose()).expect("reimport");
            assert_eq!(again.public_key(), key.public_key());
            assert_eq!(sign(&payload(), &again).expect("sign"), signed);
            let public = PublicKey::from_base64_spki(&key.public_key().to_base64_spki())
                .expect("public key round trip");
            assert!(verify(&payload(), &signed.signature_b64, &public).is_ok());
        }
    }

    #[test]
    fn key_order_whitespace_and_array_order_do_not_matter() {
        let first = parse(r#"{"a":1,"b":{"c":[1,2],"d":"x"},"e":[{"f":1},{"g":2}]}"#);
        let second = parse(
            "{ \"e\" : [ { \"f\" : 1 } , { \"g\" : 2 } ],\n \"b\": {\"d\":\"x\", \"c\":[1, 2]},\n\t\"a\": 1.0 }",
        );
        for scheme in [Scheme::Reference, Scheme::Native] {
            let key = PrivateKey::generate(scheme).expect("generate");
            let signed = sign(&first, &key).expect("sign");
            assert!(
                verify(&second, &signed.signature_b64, &key.public_key()).is_ok(),
                "{scheme}"
            );
        }
        // object-hash also ignores array order (unorderedArrays); JCS does not.
        let reordered = parse(r#"{"a":1,"b":{"c":[2,1],"d":"x"},"e":[{"g":2},{"f":1}]}"#);
        let reference = PrivateKey::generate(Scheme::Reference).expect("generate");
        let signed = sign(&first, &reference).expect("sign");
        assert!(verify(&reordered, &signed.signature_b64, &reference.public_key()).is_ok());
        let native = PrivateKey::generate(Scheme::Native).expect("generate");
        let signed = sign(&first, &native).expect("sign");
        assert!(matches!(
            verify(&reordered, &signed.signature_b64, &native.public_key()),
            Err(SignatureError::Mismatch)
        ));
    }

    #[test]
    fn any_value_change_invalidates() {
        let changes = [
            r#"{"totalNodes":"6","pgPort":5432,"nodesList":"1 2 3 4 5","priceAggregatorConfig":{"port":3000,"logger":{"level":"info"}},"sources":[{"name":"a","weight":1.5},{"name":"b","weight":2}]}"#,
            r#"{"totalNodes":"5","pgPort":5432,"nodesList":"1 2 3 4 5","priceAggregatorConfig":{"port":3000,"logger":{"level":"debug"}},"sources":[{"name":"a","weight":1.5},{"name":"b","weight":2}]}"#,
            r#"{"totalNodes":"5","pgPort":5432,"nodesList":"1 2 3 4 5","priceAggregatorConfig":{"port":3000,"logger":{"level":"info"}},"sources":[{"name":"a","weight":1.5},{"name":"b","weight":2.5}]}"#,
            r#"{"totalNodes":"5","pgPort":5432,"nodesList":"1 2 3 4 5","priceAggregatorConfig":{"port":3000,"logger":{"level":"info"}},"sources":[{"name":"a","weight":1.5}]}"#,
            r#"{"totalNodes":"5","pgPort":5432,"nodesList":"1 2 3 4 5","priceAggregatorConfig":{"port":3000,"logger":{"level":"info"}},"sources":[{"name":"a","weight":1.5},{"name":"b","weight":2}],"extra":null}"#,
            r#"{"totalNodes":"5","pgPort":5432,"nodesList":"1 2 3 4 5","priceAggregatorConfig":{"port":3000,"logger":{"level":"info"}}}"#,
        ];
        for scheme in [Scheme::Reference, Scheme::Native] {
            let key = PrivateKey::generate(scheme).expect("generate");
            let signed = sign(&payload(), &key).expect("sign");
            for change in changes {
                assert!(
                    matches!(
                        verify(&parse(change), &signed.signature_b64, &key.public_key()),
                        Err(SignatureError::Mismatch)
                    ),
                    "{scheme}: {change}"
                );
            }
        }
    }

    #[test]
    fn another_keys_signature_is_rejected() {
        for scheme in [Scheme::Reference, Scheme::Native] {
            let signer = PrivateKey::generate(scheme).expect("generate");
            let other = PrivateKey::generate(scheme).expect("generate");
            let signed = sign(&payload(), &signer).expect("sign");
            assert!(matches!(
                verify(&payload(), &signed.signature_b64, &other.public_key()),
                Err(SignatureError::Mismatch)
            ));
        }
    }

    #[test]
    fn signatures_do_not_cross_schemes() {
        let secp = PrivateKey::generate(Scheme::Reference).expect("generate");
        let ed = PrivateKey::generate(Scheme::Native).expect("generate");
        let secp_signature = sign(&payload(), &secp).expect("sign").signature_b64;
        let ed_signature = sign(&payload(), &ed).expect("sign").signature_b64;
        assert!(matches!(
            verify(&payload(), &secp_signature, &ed.public_key()),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(&payload(), &ed_signature, &secp.public_key()),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn bad_signature_text_is_rejected() {
        for scheme in [Scheme::Reference, Scheme::Native] {
            let key = PrivateKey::generate(scheme).expect("generate");
            let public = key.public_key();
            let signature = sign(&payload(), &key).expect("sign").signature_b64;

            assert!(matches!(
                verify(&payload(), "", &public),
                Err(SignatureError::Empty)
            ));
            assert!(matches!(
                verify(&payload(), " \n\t", &public),
                Err(SignatureError::Empty)
            ));
            assert!(matches!(
                verify(&payload(), "not*base64!", &public),
                Err(SignatureError::NotBase64)
            ));
            assert!(matches!(
                verify(&payload(), "AAAA", &public),
                Err(SignatureError::Malformed(_))
            ));
            let truncated =
                encode_base64(&keys::decode_base64(&signature, "signature").expect("base64")[..20]);
            assert!(matches!(
                verify(&payload(), &truncated, &public),
                Err(SignatureError::Malformed(_))
            ));

            // Right shape, wrong bytes.
            let mut bytes = keys::decode_base64(&signature, "signature").expect("base64");
            let last = bytes.len() - 2;
            bytes[last] ^= 0x01;
            assert!(matches!(
                verify(&payload(), &encode_base64(&bytes), &public),
                Err(SignatureError::Mismatch)
            ));
        }
    }

    #[test]
    fn native_digest_is_sha256_of_canonical_json() {
        let value = parse(r#"{"b":1,"a":[true,null]}"#);
        assert_eq!(
            digest_hex(&value, Scheme::Native).expect("digest"),
            hex::encode(Sha256::digest(br#"{"a":[true,null],"b":1}"#))
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            SignatureError::Mismatch.to_string(),
            "signature does not match the configuration and key"
        );
    }
}
