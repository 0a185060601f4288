//! Signed observations: an oracle's Ed25519 signature over its value for one (config, epoch,
//! round), which stops the leader from forging or altering what a follower observed.
//!
//! Byte layout, verified against libocr
//! `offchainreporting/internal/protocol/observation.go` (`signedObservationWireMessage` =
//! `repctx.DomainSeparationTag() ‖ observation.Marshal()`), `report_context.go`
//! (`DomainSeparationTag`) and `observation/observation.go` (`Marshal`), 56 bytes:
//! `00×11 ‖ config digest (16) ‖ epoch u32 BE ‖ round u8 ‖ value as 24-byte BE two's
//! complement`. The tag is the same 32 bytes as the report's `rawReportContext`; there is no
//! extra text label. Signing is plain Ed25519 over those bytes (Go `ed25519.Sign`, no prehash).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::int192::{encode_observation, I192};
use super::report::raw_report_context;
use super::types::{ConfigDigest, EpochRound};

/// Length of the signed message.
pub const OBSERVATION_MESSAGE_BYTES: usize = 32 + 24;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "observation signature does not verify for this key, config digest, epoch, round and value"
)]
pub struct ObservationError;

/// The exact bytes an oracle signs for `value` in round `er` of config `digest`.
pub fn observation_message(digest: ConfigDigest, er: EpochRound, value: I192) -> Vec<u8> {
    let mut message = Vec::with_capacity(OBSERVATION_MESSAGE_BYTES);
    message.extend_from_slice(&raw_report_context(digest, er));
    message.extend_from_slice(&encode_observation(value));
    message
}

/// Ed25519 signature over [`observation_message`]; deterministic, so the same inputs always
/// give the same 64 bytes.
pub fn sign_observation(
    key: &SigningKey,
    digest: ConfigDigest,
    er: EpochRound,
    value: I192,
) -> [u8; 64] {
    key.sign(&observation_message(digest, er, value)).to_bytes()
}

/// Checks a follower's signature as libocr's `SignedObservation.Verify` does. Uses dalek's
/// `verify` rather than `verify_strict`: like Go's `crypto/ed25519.Verify` it checks the
/// cofactorless equation and requires a canonical S, without the extra small-order-key and
/// malleability rejections, so honest signatures from Go and Rust oracles verify the same way.
pub fn verify_observation(
    key: &VerifyingKey,
    digest: ConfigDigest,
    er: EpochRound,
    value: I192,
    signature: &[u8; 64],
) -> Result<(), ObservationError> {
    let signature = Signature::from_bytes(signature);
    key.verify(&observation_message(digest, er, value), &signature)
        .map_err(|_| ObservationError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ocr1::int192::parse_int192;
    use crate::node::ocr1::report::tests::{DIGEST, ER};

    // From vectors.py (PyNaCl, seed 0x01×32).
    const PUBLIC_KEY: &str = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
    const MESSAGE: &str = "000000000000000000000000112233445566778899aabbccddeeff0102030405000000000000000000000000000000000000061ad6fad434";
    const SIGNATURE: &str = "cc575a8a2ae1e8b3c106904fd7a8d1f1afac4d050974cbf118239352c1fbe3cf019379b66513f8f358b633c90e17f50b3415af0b3f1df7534892041aa73f7202";
    const SIGNATURE_MINUS_ONE: &str = "8477d899a10685786b92a0115252823d0b5da16c3ac716102c1f1f8286f5993a0240251fa48389c608e746c8033e96fe824525f03240cf684c349ee3a428af08";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[1u8; 32])
    }

    fn value() -> I192 {
        parse_int192("6712345678900").expect("int")
    }

    fn sig(text: &str) -> [u8; 64] {
        hex::decode(text)
            .expect("hex")
            .try_into()
            .expect("64 bytes")
    }

    #[test]
    fn the_signed_message_is_libocrs_tag_then_the_24_byte_value() {
        assert_eq!(hex::encode(key().verifying_key().as_bytes()), PUBLIC_KEY);
        let message = observation_message(DIGEST, ER, value());
        assert_eq!(message.len(), OBSERVATION_MESSAGE_BYTES);
        assert_eq!(hex::encode(message), MESSAGE);
    }

    #[test]
    fn signatures_match_an_independent_ed25519() {
        assert_eq!(
            hex::encode(sign_observation(&key(), DIGEST, ER, value())),
            SIGNATURE
        );
        let minus_one = parse_int192("-1").expect("int");
        assert_eq!(
            hex::encode(sign_observation(&key(), DIGEST, ER, minus_one)),
            SIGNATURE_MINUS_ONE
        );
        let vk = key().verifying_key();
        assert_eq!(
            verify_observation(&vk, DIGEST, ER, value(), &sig(SIGNATURE)),
            Ok(())
        );
        assert_eq!(
            verify_observation(&vk, DIGEST, ER, minus_one, &sig(SIGNATURE_MINUS_ONE)),
            Ok(())
        );
    }

    #[test]
    fn a_signature_does_not_carry_over_to_another_value_round_config_or_key() {
        let vk = key().verifying_key();
        let good = sig(SIGNATURE);
        let other_value = parse_int192("6712345678901").expect("int");
        assert_eq!(
            verify_observation(&vk, DIGEST, ER, other_value, &good),
            Err(ObservationError)
        );
        let next_round = EpochRound::new(ER.epoch, ER.round + 1);
        assert_eq!(
            verify_observation(&vk, DIGEST, next_round, value(), &good),
            Err(ObservationError)
        );
        let mut other_digest = DIGEST;
        other_digest.0[0] ^= 1;
        assert_eq!(
            verify_observation(&vk, other_digest, ER, value(), &good),
            Err(ObservationError)
        );
        let other_key = SigningKey::from_bytes(&[2u8; 32]).verifying_key();
        assert_eq!(
            verify_observation(&other_key, DIGEST, ER, value(), &good),
            Err(ObservationError)
        );
        let mut corrupted = good;
        corrupted[10] ^= 0x40;
        assert_eq!(
            verify_observation(&vk, DIGEST, ER, value(), &corrupted),
            Err(ObservationError)
        );
    }
}
