//! The shared secret's distribution in the on-chain configuration (ocr-and-sources.md A.2.2,
//! libocr `shared_secret_encrypt.go`): a dealer X25519 key agrees a key with each oracle's config
//! key; the 16-byte secret is one AES-128 block encrypted under keccak256(agreed)[:16].

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes128;
use alloy_primitives::keccak256;
use x25519_dalek::{PublicKey, StaticSecret};

use super::config_digest::SharedSecretEncryptions;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedSecretError {
    #[error("the configuration holds no encryption for oracle {0}")]
    NoEncryption(usize),
    #[error("the decrypted shared secret does not match sharedSecretHash: this oracle's config key is not the one the configuration was made for")]
    HashMismatch,
}

fn block_key(agreed: &[u8; 32]) -> Aes128 {
    let hash = keccak256(agreed);
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash[..16]);
    Aes128::new(&key.into())
}

/// Encrypts `secret` to each oracle's X25519 config public key, with `dealer` as the ephemeral key.
pub fn encrypt(
    secret: &[u8; 16],
    config_keys: &[[u8; 32]],
    dealer: &StaticSecret,
) -> SharedSecretEncryptions {
    let encryptions = config_keys
        .iter()
        .map(|pk| {
            let agreed = dealer.diffie_hellman(&PublicKey::from(*pk));
            let mut block = aes::Block::from(*secret);
            block_key(agreed.as_bytes()).encrypt_block(&mut block);
            let mut out = [0u8; 16];
            out.copy_from_slice(&block);
            out
        })
        .collect();
    SharedSecretEncryptions {
        diffie_hellman_point: PublicKey::from(dealer).to_bytes(),
        shared_secret_hash: keccak256(secret).0,
        encryptions,
    }
}

/// Oracle `index` recovers the secret with its config key, and checks it against the hash.
pub fn decrypt(
    encryptions: &SharedSecretEncryptions,
    index: usize,
    config_key: &StaticSecret,
) -> Result<[u8; 16], SharedSecretError> {
    let block = encryptions
        .encryptions
        .get(index)
        .ok_or(SharedSecretError::NoEncryption(index))?;
    let agreed = config_key.diffie_hellman(&PublicKey::from(encryptions.diffie_hellman_point));
    let mut data = aes::Block::from(*block);
    block_key(agreed.as_bytes()).decrypt_block(&mut data);
    let mut secret = [0u8; 16];
    secret.copy_from_slice(&data);
    if keccak256(secret).0 != encryptions.shared_secret_hash {
        return Err(SharedSecretError::HashMismatch);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle_key(i: u8) -> StaticSecret {
        StaticSecret::from([0x20 + i; 32])
    }

    /// Computed independently with PyNaCl (crypto_scalarmult), pycryptodome (AES-ECB) and
    /// eth-hash (keccak): dealer scalar 0x11×32, secret 00..0f, oracle scalars 0x20+i ×32.
    #[test]
    fn encryption_matches_independent_vectors_and_every_oracle_decrypts() {
        let secret: [u8; 16] = core::array::from_fn(|i| i as u8);
        let keys: Vec<[u8; 32]> = (0..4)
            .map(|i| PublicKey::from(&oracle_key(i)).to_bytes())
            .collect();
        assert_eq!(
            hex::encode(keys[0]),
            "06453fcd9cef5a1f53acc4f942104c0c8e9e27d5c7b37f5507cdcd1628105963"
        );
        let enc = encrypt(&secret, &keys, &StaticSecret::from([0x11; 32]));
        assert_eq!(
            hex::encode(enc.diffie_hellman_point),
            "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13"
        );
        assert_eq!(
            hex::encode(enc.shared_secret_hash),
            "01aec967ba5d2a807edd3fd8942c6f72c0c62961bfeb10c1f79c756f7294b0e3"
        );
        let expected = [
            "795c64772ee5a18ce8d3b583d3396233",
            "355ac97a63b945b006025e6708739c57",
            "6cd53df279cedc75daef77c533d1b219",
            "7908d9d0498d15dd8b338af2ea730346",
        ];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(hex::encode(enc.encryptions[i]), *e);
            assert_eq!(decrypt(&enc, i, &oracle_key(i as u8)), Ok(secret));
        }
    }

    #[test]
    fn a_wrong_key_or_a_missing_entry_is_an_error() {
        let secret = [9u8; 16];
        let keys = vec![PublicKey::from(&oracle_key(0)).to_bytes()];
        let enc = encrypt(&secret, &keys, &StaticSecret::from([0x11; 32]));
        assert_eq!(
            decrypt(&enc, 0, &oracle_key(1)),
            Err(SharedSecretError::HashMismatch)
        );
        assert_eq!(
            decrypt(&enc, 1, &oracle_key(0)),
            Err(SharedSecretError::NoEncryption(1))
        );
    }
}
