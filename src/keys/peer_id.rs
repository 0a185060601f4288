//! A node's network identity: its Ed25519 public key, printed in libp2p's `12D3KooW…` form so
//! operators can compare it with what Chainlink tooling shows (ocr-and-sources.md A.3.2).

use std::fmt;
use std::str::FromStr;

/// `0x00 0x24` (identity multihash, 36 bytes) `0x08 0x01` (KeyType Ed25519) `0x12 0x20` (32-byte key).
const LIBP2P_ED25519_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// The raw 32-byte Ed25519 public key of a node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerIdError {
    #[error("peer id is not base58")]
    NotBase58,
    #[error(
        "peer id is not a libp2p Ed25519 identity (expected 38 bytes starting 00 24 08 01 12 20)"
    )]
    NotEd25519,
}

impl PeerId {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Short form for logs and metric labels: the last 8 characters of the libp2p form.
    pub fn short(&self) -> String {
        let full = self.to_string();
        full[full.len().saturating_sub(8)..].to_owned()
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(38);
        bytes.extend_from_slice(&LIBP2P_ED25519_PREFIX);
        bytes.extend_from_slice(&self.0);
        f.write_str(&bs58::encode(bytes).into_string())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = PeerIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = bs58::decode(s)
            .into_vec()
            .map_err(|_| PeerIdError::NotBase58)?;
        if bytes.len() != 38 || bytes[..6] != LIBP2P_ED25519_PREFIX {
            return Err(PeerIdError::NotEd25519);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[6..]);
        Ok(PeerId(key))
    }
}

impl serde::Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PeerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_print_in_the_libp2p_ed25519_form_and_parse_back() {
        let id = PeerId([7u8; 32]);
        let text = id.to_string();
        assert!(text.starts_with("12D3KooW"), "{text}");
        assert_eq!(text.parse::<PeerId>(), Ok(id));
    }

    #[test]
    fn a_known_libp2p_peer_id_decodes_to_its_key() {
        // The all-zero key, computed independently with a Python base58: base58(00 24 08 01 12 20 ‖ 00×32).
        let zero = PeerId([0u8; 32]).to_string();
        assert_eq!(zero, "12D3KooW9pNAk8aiBuGVQtWRdbkLmo5qVL3e2h5UxbN2Nz9ttwiw");
    }

    #[test]
    fn other_key_types_and_garbage_are_refused() {
        assert_eq!("0OIl".parse::<PeerId>(), Err(PeerIdError::NotBase58));
        let secp = bs58::encode([0u8, 37, 8, 2, 18, 33]).into_string();
        assert_eq!(secp.parse::<PeerId>(), Err(PeerIdError::NotEd25519));
    }
}
