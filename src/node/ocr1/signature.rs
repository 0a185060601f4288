//! On-chain report signatures and the `transmit` call (libocr
//! `offchainreporting/internal/signature/on_chain_signature.go`, `attested_report.go`
//! `collateSignatures`; contract `OffchainAggregator.transmit`).
//!
//! Each signer signs `keccak256(report)` with secp256k1 exactly as go-ethereum's `crypto.Sign`:
//! RFC 6979 nonces, low-S, 65 bytes `r ‖ s ‖ v` with v ∈ {0, 1}. The contract recovers each
//! signer with `ecrecover(keccak256(report), rawVs[i] + 27, rs[i], ss[i])`.

use alloy_primitives::{keccak256, Address, Bytes, B256};
use alloy_sol_types::SolCall;
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};

use super::types::MAX_ORACLES;

alloy_sol_types::sol! {
    /// `OffchainAggregator.transmit`, selector `c9807539`.
    function transmit(bytes _report, bytes32[] _rs, bytes32[] _ss, bytes32 _rawVs);
}

/// Bytes in a go-ethereum style recoverable signature.
pub const SIGNATURE_BYTES: usize = 65;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("secp256k1 signing failed: {0}")]
    Signing(String),
    #[error("signature has recovery id {0}; the contract only accepts v = 0 or 1 (x-coordinate overflowed the curve order)")]
    UnusableRecoveryId(u8),
    #[error(
        "signature v byte is {0}; it must be 0 or 1 (go-ethereum crypto.Sign form, not 27/28)"
    )]
    InvalidV(u8),
    #[error("signature r or s is zero or not below the secp256k1 group order")]
    InvalidScalars,
    #[error("signature does not recover to any public key for this report")]
    Unrecoverable,
    #[error("{0} signatures; the contract accepts at most {MAX_ORACLES}")]
    TooManySignatures(usize),
}

/// The Ethereum address of a secp256k1 key: the last 20 bytes of keccak256 of the 64-byte
/// uncompressed point. This is what `signers[]` in the on-chain config holds.
pub fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    // Uncompressed SEC1 is 0x04 ‖ x ‖ y; the address hashes x ‖ y.
    Address::from_raw_public_key(&point.as_bytes()[1..])
}

/// Signs `keccak256(report)`, giving the same 65 bytes go-ethereum's `crypto.Sign` gives for
/// the same key (both use RFC 6979 and low-S).
///
/// Fails only in cases with probability ~2^-128 (a zero nonce scalar, or an R whose x
/// overflows the group order and so needs v ≥ 2, which the contract cannot take).
pub fn sign_report(
    key: &SigningKey,
    report: &[u8],
) -> Result<[u8; SIGNATURE_BYTES], SignatureError> {
    let hash = keccak256(report);
    let (signature, recovery_id) = key
        .sign_prehash_recoverable(hash.as_slice())
        .map_err(|e| SignatureError::Signing(e.to_string()))?;
    if recovery_id.is_x_reduced() {
        return Err(SignatureError::UnusableRecoveryId(recovery_id.to_byte()));
    }
    let mut out = [0u8; SIGNATURE_BYTES];
    out[..64].copy_from_slice(&signature.to_bytes());
    out[64] = recovery_id.to_byte();
    Ok(out)
}

/// The address `ecrecover` yields for `signature` over `keccak256(report)`.
///
/// Like `ecrecover` (and libocr's `crypto.SigToPub`), a high-S signature is accepted: it is
/// rewritten to its low-S twin (s → n − s, v → v ⊕ 1), which recovers the same key. A wrong
/// signature normally recovers to some other address rather than failing; callers compare the
/// result against the configured signers.
pub fn recover_signer(
    report: &[u8],
    signature: &[u8; SIGNATURE_BYTES],
) -> Result<Address, SignatureError> {
    let v = signature[64];
    if v > 1 {
        return Err(SignatureError::InvalidV(v));
    }
    let sig =
        Signature::from_slice(&signature[..64]).map_err(|_| SignatureError::InvalidScalars)?;
    let (sig, y_odd) = match sig.normalize_s() {
        Some(low) => (low, v == 0),
        None => (sig, v == 1),
    };
    let hash = keccak256(report);
    let key =
        VerifyingKey::recover_from_prehash(hash.as_slice(), &sig, RecoveryId::new(y_odd, false))
            .map_err(|_| SignatureError::Unrecoverable)?;
    Ok(address_of(&key))
}

/// Splits signatures into `transmit`'s `(rs, ss, rawVs)`: `rs[i] = sig[0..32]`,
/// `ss[i] = sig[32..64]`, and byte i of `rawVs` (counting from the left) = `sig[64]`.
pub fn collate(
    signatures: &[[u8; SIGNATURE_BYTES]],
) -> Result<(Vec<B256>, Vec<B256>, B256), SignatureError> {
    if signatures.len() > MAX_ORACLES {
        return Err(SignatureError::TooManySignatures(signatures.len()));
    }
    let mut raw_vs = B256::ZERO;
    let mut rs = Vec::with_capacity(signatures.len());
    let mut ss = Vec::with_capacity(signatures.len());
    for (i, sig) in signatures.iter().enumerate() {
        if sig[64] > 1 {
            return Err(SignatureError::InvalidV(sig[64]));
        }
        rs.push(B256::from_slice(&sig[..32]));
        ss.push(B256::from_slice(&sig[32..64]));
        raw_vs[i] = sig[64];
    }
    Ok((rs, ss, raw_vs))
}

/// Calldata for `transmit(bytes,bytes32[],bytes32[],bytes32)`. With a report whose length is a
/// multiple of 32 (every OCR1 report is) its length is exactly what the contract requires:
/// `4 + 7·32 + len(report) + 32·len(rs) + 32·len(ss)`.
pub fn transmit_calldata(
    report: &[u8],
    signatures: &[[u8; SIGNATURE_BYTES]],
) -> Result<Vec<u8>, SignatureError> {
    let (rs, ss, raw_vs) = collate(signatures)?;
    Ok(transmitCall {
        _report: Bytes::copy_from_slice(report),
        _rs: rs,
        _ss: ss,
        _rawVs: raw_vs,
    }
    .abi_encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ocr1::report::tests::REPORT_HEX;
    use alloy_primitives::{address, U256};

    fn key(d: u8) -> SigningKey {
        let mut bytes = [0u8; 32];
        bytes[31] = d;
        SigningKey::from_slice(&bytes).expect("valid scalar")
    }

    fn report() -> Vec<u8> {
        hex::decode(REPORT_HEX).expect("hex")
    }

    // From vectors.py: eth-keys sign_msg_hash(keccak(report)) with private keys 1 and 2.
    const SIG_1: &str = "5a186e7f34e2f486a0f65ab0fddb72adce7c28543b222acf68b34724cbfc80a51bd055f34729c8ff89ba8c22daa8316e4d5d2a678990dcb7a4a518a186549bc601";
    const SIG_2: &str = "d7ba7b28efe01f909ff24b5b41e37433a967cf00cc4da880e7c6bd8a875e596709f5c83646817bb5f030ad85adea5367714ce0ced0e8df92c0abd88cf26d20e601";
    const ADDR_1: Address = address!("7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
    const ADDR_2: Address = address!("2B5AD5c4795c026514f8317c7a215E218DcCD6cF");

    fn sig(text: &str) -> [u8; SIGNATURE_BYTES] {
        hex::decode(text)
            .expect("hex")
            .try_into()
            .expect("65 bytes")
    }

    #[test]
    fn addresses_are_keccak_of_the_uncompressed_key() {
        assert_eq!(address_of(key(1).verifying_key()), ADDR_1);
        assert_eq!(address_of(key(2).verifying_key()), ADDR_2);
    }

    #[test]
    fn signatures_match_go_ethereum_style_rfc6979_low_s_bytes() {
        assert_eq!(
            hex::encode(sign_report(&key(1), &report()).expect("sign")),
            SIG_1
        );
        assert_eq!(
            hex::encode(sign_report(&key(2), &report()).expect("sign")),
            SIG_2
        );
    }

    #[test]
    fn signatures_recover_to_their_signer_as_ecrecover_would() {
        assert_eq!(recover_signer(&report(), &sig(SIG_1)), Ok(ADDR_1));
        assert_eq!(recover_signer(&report(), &sig(SIG_2)), Ok(ADDR_2));
    }

    #[test]
    fn a_signature_on_other_bytes_recovers_to_another_address() {
        let mut tampered = report();
        tampered[40] ^= 1;
        let who = recover_signer(&tampered, &sig(SIG_1)).expect("recovers to something");
        assert_ne!(who, ADDR_1);
        let mut flipped = sig(SIG_1);
        flipped[64] ^= 1;
        assert_ne!(recover_signer(&report(), &flipped), Ok(ADDR_1));
    }

    #[test]
    fn high_s_twins_recover_the_same_signer_like_ecrecover() {
        let order = U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            16,
        )
        .expect("n");
        let mut high = sig(SIG_1);
        let s = U256::from_be_slice(&high[32..64]);
        high[32..64].copy_from_slice(&(order - s).to_be_bytes::<32>());
        high[64] ^= 1;
        assert_eq!(recover_signer(&report(), &high), Ok(ADDR_1));
    }

    #[test]
    fn malformed_signatures_are_errors() {
        let mut v27 = sig(SIG_1);
        v27[64] = 27;
        assert_eq!(
            recover_signer(&report(), &v27),
            Err(SignatureError::InvalidV(27))
        );
        let mut zero_r = sig(SIG_1);
        zero_r[..32].fill(0);
        assert_eq!(
            recover_signer(&report(), &zero_r),
            Err(SignatureError::InvalidScalars)
        );
        let mut big_s = sig(SIG_1);
        big_s[32..64].fill(0xff);
        assert_eq!(
            recover_signer(&report(), &big_s),
            Err(SignatureError::InvalidScalars)
        );
    }

    #[test]
    fn collation_puts_v_bytes_left_aligned() {
        let (rs, ss, raw_vs) = collate(&[sig(SIG_1), sig(SIG_2)]).expect("collate");
        assert_eq!(hex::encode(rs[0]), &SIG_1[..64]);
        assert_eq!(hex::encode(ss[1]), &SIG_2[64..128]);
        assert_eq!(
            hex::encode(raw_vs),
            "0101000000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            collate(&vec![sig(SIG_1); 32]),
            Err(SignatureError::TooManySignatures(32))
        );
        let mut v27 = sig(SIG_1);
        v27[64] = 27;
        assert_eq!(collate(&[v27]), Err(SignatureError::InvalidV(27)));
    }

    #[test]
    fn transmit_calldata_matches_abi_encoding_and_the_contracts_length_rule() {
        // From vectors.py: selector ‖ eth_abi.encode(["bytes","bytes32[]","bytes32[]","bytes32"], …).
        const CALLDATA: &str = concat!(
            "c9807539",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "00000000000000000000000000000000000000000000000000000000000001a0",
            "0000000000000000000000000000000000000000000000000000000000000200",
            "0101000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000100",
            "000000000000000000000000112233445566778899aabbccddeeff0102030405",
            "0300070100000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000060",
            "0000000000000000000000000000000000000000000000000000000000000004",
            "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffb",
            "0000000000000000000000000000000000000000000000000000000000000064",
            "0000000000000000000000000000000000000000000000000000000000000064",
            "00000000000000007fffffffffffffffffffffffffffffffffffffffffffffff",
            "0000000000000000000000000000000000000000000000000000000000000002",
            "5a186e7f34e2f486a0f65ab0fddb72adce7c28543b222acf68b34724cbfc80a5",
            "d7ba7b28efe01f909ff24b5b41e37433a967cf00cc4da880e7c6bd8a875e5967",
            "0000000000000000000000000000000000000000000000000000000000000002",
            "1bd055f34729c8ff89ba8c22daa8316e4d5d2a678990dcb7a4a518a186549bc6",
            "09f5c83646817bb5f030ad85adea5367714ce0ced0e8df92c0abd88cf26d20e6",
        );
        assert_eq!(transmitCall::SELECTOR, [0xc9, 0x80, 0x75, 0x39]);
        let report = report();
        let sigs = [sig(SIG_1), sig(SIG_2)];
        let calldata = transmit_calldata(&report, &sigs).expect("calldata");
        assert_eq!(hex::encode(&calldata), CALLDATA);
        for k in 1..=MAX_ORACLES {
            let sigs = vec![sig(SIG_1); k];
            let calldata = transmit_calldata(&report, &sigs).expect("calldata");
            assert_eq!(calldata.len(), 4 + 7 * 32 + report.len() + 32 * k + 32 * k);
        }
    }
}
