//! Deterministic peer keys for the P2P unit tests: seed `n` is always the same key and peer id.

use ed25519_dalek::SigningKey;

use crate::keys::peer_id::PeerId;

/// The peer key made of 32 copies of `seed`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The peer id of [`key`]`(seed)`.
pub fn id(seed: u8) -> PeerId {
    PeerId(key(seed).verifying_key().to_bytes())
}
