//! The small identifiers every OCR1 message and report carries (libocr `offchainreporting/types`,
//! `commontypes.OracleID`, `protocol.EpochRound`).

use std::fmt;
use std::str::FromStr;

/// The most oracles an OCR1 configuration can have: `maxNumOracles` in `OffchainAggregator.sol`
/// (it sizes the contract's `seen`/`signed` bitmaps, so observer and signer indices must be below
/// it) and `types.MaxOracles` in libocr.
pub const MAX_ORACLES: usize = 31;

/// The 16-byte OCR1 config digest: `bytes16(keccak256(abi.encode(config…)))`, which ties every
/// report and signed observation to one on-chain configuration.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ConfigDigest(pub [u8; 16]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("config digest must be 32 hex digits (16 bytes), optionally prefixed with 0x: {0:?}")]
pub struct ConfigDigestError(String);

impl ConfigDigest {
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// `0x` and lowercase hex, as every other byte field the enclave prints (addresses, hashes,
/// keys) and as block explorers show the contract's `bytes16` (libocr's `Hex()` omits the `0x`;
/// [`FromStr`] accepts both).
impl fmt::Display for ConfigDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ConfigDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigDigest({self})")
    }
}

/// Accepts the `0x`-prefixed form too, because that is how block explorers and `cast` show the
/// `bytes16` returned by `latestConfigDetails()`.
impl FromStr for ConfigDigest {
    type Err = ConfigDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(digits, &mut bytes)
            .map_err(|_| ConfigDigestError(s.chars().take(40).collect()))?;
        Ok(ConfigDigest(bytes))
    }
}

/// Bare hex on the wire (protocol messages), as before `Display` took its `0x`: oracles of
/// either version read each other (parsing accepts both forms).
impl serde::Serialize for ConfigDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for ConfigDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An (epoch, round) pair. The derived order (epoch first, then round) is libocr's
/// `EpochRound.Less` and equals the contract's comparison of `uint40(epoch << 8 | round)`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct EpochRound {
    pub epoch: u32,
    pub round: u8,
}

impl EpochRound {
    pub fn new(epoch: u32, round: u8) -> Self {
        EpochRound { epoch, round }
    }

    /// The contract's `latestEpochAndRound`: `uint40(epoch) << 8 | round`.
    pub fn as_u40(self) -> u64 {
        (u64::from(self.epoch) << 8) | u64::from(self.round)
    }
}

impl fmt::Display for EpochRound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.epoch, self.round)
    }
}

/// An oracle's index into the configuration's `signers[]`/`transmitters[]` arrays.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct OracleId(pub u8);

impl OracleId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for OracleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_digests_print_with_0x_serialize_as_bare_hex_and_parse_either() {
        let digest = ConfigDigest([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        assert_eq!(digest.to_string(), "0x00112233445566778899aabbccddeeff");
        assert_eq!(
            format!("{digest:?}"),
            "ConfigDigest(0x00112233445566778899aabbccddeeff)"
        );
        assert_eq!("00112233445566778899aabbccddeeff".parse(), Ok(digest));
        assert_eq!("0x00112233445566778899AABBCCDDEEFF".parse(), Ok(digest));
        let json = serde_json::to_string(&digest).expect("serialize");
        assert_eq!(json, "\"00112233445566778899aabbccddeeff\"");
        assert_eq!(
            serde_json::from_str::<ConfigDigest>(&json).expect("deserialize"),
            digest
        );
    }

    #[test]
    fn malformed_config_digests_are_refused() {
        for bad in [
            "",
            "0x",
            "0011",
            "00112233445566778899aabbccddeeff00",
            "zz112233445566778899aabbccddeeff",
        ] {
            assert!(bad.parse::<ConfigDigest>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn epoch_rounds_order_by_epoch_then_round_like_the_contracts_u40() {
        let a = EpochRound::new(1, 255);
        let b = EpochRound::new(2, 0);
        let c = EpochRound::new(2, 1);
        assert!(a < b && b < c);
        assert!(a.as_u40() < b.as_u40() && b.as_u40() < c.as_u40());
        assert_eq!(EpochRound::new(0x0102_0304, 5).as_u40(), 0x01_0203_0405);
        assert_eq!(EpochRound::new(u32::MAX, u8::MAX).as_u40(), (1 << 40) - 1);
    }
}
