//! Keys derived from the config's shared secret, and the leader of each epoch.
//!
//! Verified against libocr `offchainreporting/internal/config/shared_config.go`
//! (`LeaderSelectionKey`, `TransmissionOrderKey`) and
//! `offchainreporting/internal/protocol/pacemaker.go` (`Leader`). Every oracle must compute the
//! same leader for an epoch, so this is bit-exact with libocr even where it is merely
//! "a PRF": keccak256 is used without HMAC because prepending a secret key to keccak is
//! already a PRF (libocr's own comment).

use alloy_primitives::{keccak256, U256};

use super::types::{OracleId, MAX_ORACLES};

const LEADER_SELECTION_LABEL: &[u8] = b"chainlink offchain reporting v1 leader selection key";
const TRANSMISSION_ORDER_LABEL: &[u8] = b"chainlink offchain reporting v1 transmission order key";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("cannot pick a leader among {0} oracles; a configuration has 1..={MAX_ORACLES}")]
pub struct LeaderError(pub usize);

/// keccak256(sharedSecret ‖ label)[:16].
fn derive_key(shared_secret: &[u8; 16], label: &[u8]) -> [u8; 16] {
    let mut input = Vec::with_capacity(16 + label.len());
    input.extend_from_slice(shared_secret);
    input.extend_from_slice(label);
    let mut key = [0u8; 16];
    key.copy_from_slice(&keccak256(input)[..16]);
    key
}

/// `keccak256(sharedSecret ‖ "chainlink offchain reporting v1 leader selection key")[:16]`.
pub fn leader_selection_key(shared_secret: &[u8; 16]) -> [u8; 16] {
    derive_key(shared_secret, LEADER_SELECTION_LABEL)
}

/// `keccak256(sharedSecret ‖ "chainlink offchain reporting v1 transmission order key")[:16]`.
pub fn transmission_order_key(shared_secret: &[u8; 16]) -> [u8; 16] {
    derive_key(shared_secret, TRANSMISSION_ORDER_LABEL)
}

/// The leader of `epoch` among `n` oracles: keccak256(key ‖ u64_LE(epoch)) read as a
/// big-endian 256-bit integer, mod n. (The modulo bias is < 2^-251, as libocr notes.)
pub fn leader(key: &[u8; 16], epoch: u32, n: usize) -> Result<OracleId, LeaderError> {
    if n == 0 || n > MAX_ORACLES {
        return Err(LeaderError(n));
    }
    let mut input = [0u8; 24];
    input[..16].copy_from_slice(key);
    input[16..].copy_from_slice(&u64::from(epoch).to_le_bytes());
    let hash = U256::from_be_bytes(keccak256(input).0);
    let index = hash % U256::from(n);
    // index < n <= 31, so it fits in a u8.
    Ok(OracleId(index.to::<u8>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> [u8; 16] {
        core::array::from_fn(|i| i as u8)
    }

    #[test]
    fn derived_keys_match_keccak_of_secret_and_label() {
        // From vectors.py, shared secret 00 01 … 0f.
        assert_eq!(
            hex::encode(leader_selection_key(&secret())),
            "df0c52fb203fd67038d721841a60a91f"
        );
        assert_eq!(
            hex::encode(transmission_order_key(&secret())),
            "8d986042b2df4b1b1b0b2a701ed77a20"
        );
    }

    #[test]
    fn leaders_match_libocrs_pacemaker_for_several_epochs_and_sizes() {
        let key = leader_selection_key(&secret());
        let epochs = [0, 1, 2, 3, 4, 5, 100, u32::MAX];
        // From vectors.py.
        let expected: [(usize, [u8; 8]); 3] = [
            (4, [1, 1, 2, 1, 3, 3, 1, 1]),
            (7, [5, 0, 1, 5, 6, 2, 4, 3]),
            (31, [7, 20, 5, 4, 26, 2, 12, 22]),
        ];
        for (n, leaders) in expected {
            for (epoch, want) in epochs.iter().zip(leaders) {
                assert_eq!(
                    leader(&key, *epoch, n),
                    Ok(OracleId(want)),
                    "n={n} epoch={epoch}"
                );
            }
        }
        assert_eq!(leader(&key, 12345, 1), Ok(OracleId(0)));
    }

    #[test]
    fn impossible_oracle_counts_are_errors() {
        let key = leader_selection_key(&secret());
        assert_eq!(leader(&key, 1, 0), Err(LeaderError(0)));
        assert_eq!(leader(&key, 1, 32), Err(LeaderError(32)));
    }
}
