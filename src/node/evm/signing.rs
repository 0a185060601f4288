//! Building and signing transactions: alloy-consensus types (`TxLegacy` with an EIP-155 chain
//! id, `TxEip1559`) give the signing hash and the EIP-2718 bytes; the key signs that hash with
//! k256 (RFC 6979, low-S, as go-ethereum). Pure functions; the expected bytes in the tests come
//! from `vectors.py` (eth-account) and EIP-155's own example.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, Signature, TxKind, B256, U256};
use k256::ecdsa::SigningKey;

use super::error::ChainError;
use super::gas::Fees;

/// Everything a transaction to a contract carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRequest {
    pub chain_id: u64,
    pub nonce: u64,
    pub to: Address,
    pub value: U256,
    pub data: Bytes,
    pub gas_limit: u64,
    pub fees: Fees,
}

/// A signed transaction, ready for `eth_sendRawTransaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    pub hash: B256,
    /// EIP-2718 encoding: RLP for legacy, `0x02 ‖ RLP` for EIP-1559.
    pub raw: Bytes,
}

pub fn sign_transaction(key: &SigningKey, tx: &TxRequest) -> Result<SignedTx, ChainError> {
    let envelope: TxEnvelope = match tx.fees {
        Fees::Legacy { gas_price } => {
            let unsigned = TxLegacy {
                // Some(chain id) makes the signing hash and v follow EIP-155 (replay protection;
                // geth refuses unprotected transactions over RPC by default).
                chain_id: Some(tx.chain_id),
                nonce: tx.nonce,
                gas_price,
                gas_limit: tx.gas_limit,
                to: TxKind::Call(tx.to),
                value: tx.value,
                input: tx.data.clone(),
            };
            let signature = sign_hash(key, unsigned.signature_hash())?;
            unsigned.into_signed(signature).into()
        }
        Fees::Eip1559 {
            max_fee_per_gas,
            max_priority_fee_per_gas,
        } => {
            let unsigned = TxEip1559 {
                chain_id: tx.chain_id,
                nonce: tx.nonce,
                gas_limit: tx.gas_limit,
                max_fee_per_gas,
                max_priority_fee_per_gas,
                to: TxKind::Call(tx.to),
                value: tx.value,
                access_list: Default::default(),
                input: tx.data.clone(),
            };
            let signature = sign_hash(key, unsigned.signature_hash())?;
            unsigned.into_signed(signature).into()
        }
    };
    Ok(SignedTx {
        hash: *envelope.tx_hash(),
        raw: envelope.encoded_2718().into(),
    })
}

/// secp256k1 over a 32-byte hash, as `(r, s, y_parity)`.
fn sign_hash(key: &SigningKey, hash: B256) -> Result<Signature, ChainError> {
    let (signature, recovery_id) = key
        .sign_prehash_recoverable(hash.as_slice())
        .map_err(|e| ChainError::Signing(e.to_string()))?;
    // A reduced x needs v ≥ 2, which transactions cannot express (probability ~2^-127).
    if recovery_id.is_x_reduced() {
        return Err(ChainError::Signing(
            "signature with an x-reduced recovery id".into(),
        ));
    }
    let bytes = signature.to_bytes();
    Ok(Signature::new(
        U256::from_be_slice(&bytes[..32]),
        U256::from_be_slice(&bytes[32..]),
        recovery_id.is_y_odd(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ocr1::signature::address_of;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_slice(&[byte; 32]).expect("key")
    }

    /// The example of EIP-155 itself: nonce 9, 20 gwei, 21000 gas, to 0x3535…, 1 ether,
    /// chain id 1, key 0x4646….
    #[test]
    fn eip155_example_from_the_eip() {
        let signed = sign_transaction(
            &key(0x46),
            &TxRequest {
                chain_id: 1,
                nonce: 9,
                to: Address::repeat_byte(0x35),
                value: U256::from(10u128.pow(18)),
                data: Bytes::new(),
                gas_limit: 21_000,
                fees: Fees::Legacy {
                    gas_price: 20_000_000_000,
                },
            },
        )
        .expect("sign");
        assert_eq!(
            hex::encode(&signed.raw),
            "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
        );
    }

    // From vectors.py (eth-account 0.14): chain 204 (opBNB), nonce 42, 500k gas, to 0x2b5a…,
    // data = c9807539 ‖ 00 01 … 3f.
    const VECTOR_KEY: &str = "4c0883a69102937d6231471b5dc0e2b3dd68d6a1ce7e1f2a9da8c94a7c3f5b5e";
    const VECTOR_DATA: &str = "c9807539000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
    const LEGACY_RAW: &str = "f8a72a018307a120942b5ad5c4795c026514f8317c7a215e218dccd6cf80b844c9807539000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f8201bba02a9b9a01731e0e80fdb571a3986d309219458a8a4cfb07abd0a4a8070f901814a02486de88d754d5c89ce9c3a0fe08b0278ca19e14c212267d1528f362bd4821c1";
    const LEGACY_HASH: &str = "803ed3dc16eaea3e373b72dca83894eaddda0ac09fe5137c49db9e9600d3d4aa";
    const EIP1559_RAW: &str = "02f8b081cc2a830f424084773594008307a120942b5ad5c4795c026514f8317c7a215e218dccd6cf80b844c9807539000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3fc080a02b859d7b64ddcd8742eeff9016dea3301cc8b5bc853af1688bc4f7a46579bc41a073a2e18e643cf4fbc3db4fc603bc711fdfbda5bcbc208dd1cf486d87660ed946";
    const EIP1559_HASH: &str = "95cd74d5fa7b4f9292a80ef5f89eb14da72dfed41a6fafe44a08c9ee1e58594c";
    // Chain 5611, nonce 0, 3 gwei, 21000 gas, value 1 wei, no data.
    const TRANSFER_RAW: &str = "f8658084b2d05e00825208942b5ad5c4795c026514f8317c7a215e218dccd6cf0180822bf9a089bc1f1cc208f5623c19732f1c0a3dcfe71bade0fdb9951fc4dcb24177ad73daa059b294fc5715fe9ee2b81e5f077e56be3b0133ec50fa3c1d9a31abaf247c25a2";
    const TRANSFER_HASH: &str = "c00091eb64a6c0ec2f45aad81d842dfea4bad79fd90298287d3239b2ccc10a23";

    fn vector_request(fees: Fees) -> (SigningKey, TxRequest) {
        let key = SigningKey::from_slice(&hex::decode(VECTOR_KEY).expect("hex")).expect("key");
        let tx = TxRequest {
            chain_id: 204,
            nonce: 42,
            to: "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf"
                .parse()
                .expect("addr"),
            value: U256::ZERO,
            data: hex::decode(VECTOR_DATA).expect("hex").into(),
            gas_limit: 500_000,
            fees,
        };
        (key, tx)
    }

    #[test]
    fn legacy_eip155_matches_eth_account() {
        let (key, tx) = vector_request(Fees::Legacy { gas_price: 1 });
        let signed = sign_transaction(&key, &tx).expect("sign");
        assert_eq!(hex::encode(&signed.raw), LEGACY_RAW);
        assert_eq!(hex::encode(signed.hash), LEGACY_HASH);
    }

    #[test]
    fn eip1559_matches_eth_account() {
        let (key, tx) = vector_request(Fees::Eip1559 {
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000,
        });
        let signed = sign_transaction(&key, &tx).expect("sign");
        assert_eq!(hex::encode(&signed.raw), EIP1559_RAW);
        assert_eq!(hex::encode(signed.hash), EIP1559_HASH);
    }

    #[test]
    fn legacy_with_value_on_another_chain_matches_eth_account() {
        let (key, mut tx) = vector_request(Fees::Legacy {
            gas_price: 3_000_000_000,
        });
        tx.chain_id = 5611;
        tx.nonce = 0;
        tx.gas_limit = 21_000;
        tx.value = U256::from(1);
        tx.data = Bytes::new();
        let signed = sign_transaction(&key, &tx).expect("sign");
        assert_eq!(hex::encode(&signed.raw), TRANSFER_RAW);
        assert_eq!(hex::encode(signed.hash), TRANSFER_HASH);
    }

    #[test]
    fn the_vector_key_has_eth_accounts_address() {
        let (key, _) = vector_request(Fees::Legacy { gas_price: 1 });
        assert_eq!(
            address_of(key.verifying_key()).to_string(),
            "0x6229D55b8F463A17Ba891dBC917a0B86acd3Bc1a"
        );
    }
}
