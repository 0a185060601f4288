//! Who transmits a report, and when: the per-round pseudo-random oracle order and the stage of
//! the transmission schedule `s` each oracle falls in.
//!
//! Ported from libocr `permutation/permutation.go` (`Permutation`: Go `math/rand`'s `Shuffle`
//! driven by `cryptoRandSource`, whose `Int63` is the next 8 bytes of AES-128-CTR(key, IV = 0)
//! keystream read little-endian with the top bit cleared) and
//! `offchainreporting/internal/protocol/transmission.go` (`transmitDelay`), with Go's
//! `(*Rand).Shuffle`, `int31n` and `Uint32` from `src/math/rand/rand.go`. All oracles of a DON
//! must agree on the order, so this matters only if Rust and Go oracles share one DON, but it
//! is cheap to be exact.

use aes::Aes128;
use alloy_primitives::keccak256;
use ctr::cipher::{KeyIvInit, StreamCipher};

use super::types::{ConfigDigest, EpochRound, OracleId, MAX_ORACLES};

/// Go's `cipher.NewCTR` increments the whole 16-byte IV as one big-endian counter.
type Aes128Ctr = ctr::Ctr128BE<Aes128>;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PermutationError {
    #[error("{0} oracles; a configuration has 1..={MAX_ORACLES}")]
    OracleCount(usize),
    #[error("oracle {oracle} is not among the {n} oracles")]
    UnknownOracle { oracle: OracleId, n: usize },
}

/// libocr's `cryptoRandSource` plus the parts of Go's `rand.Rand` that `Shuffle` uses.
struct CryptoRand(Aes128Ctr);

impl CryptoRand {
    fn new(key: &[u8; 16]) -> Self {
        CryptoRand(Aes128Ctr::new(key.into(), &[0u8; 16].into()))
    }

    /// `cryptoRandSource.Int63`: 8 keystream bytes (XORed onto zeros), little-endian, & (2^63−1).
    fn int63(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        self.0.apply_keystream(&mut buf);
        u64::from_le_bytes(buf) & ((1 << 63) - 1)
    }

    /// `(*Rand).Uint32`: `uint32(r.Int63() >> 31)`.
    fn uint32(&mut self) -> u32 {
        (self.int63() >> 31) as u32
    }

    /// Go's unexported `(*Rand).int31n` (Lemire's multiply-shift with rejection), which
    /// `Shuffle` uses; it consumes a different number of values than the exported `Int31n`.
    fn int31n(&mut self, n: u32) -> u32 {
        let mut prod = u64::from(self.uint32()) * u64::from(n);
        let mut low = prod as u32;
        if low < n {
            let thresh = n.wrapping_neg() % n;
            while low < thresh {
                prod = u64::from(self.uint32()) * u64::from(n);
                low = prod as u32;
            }
        }
        (prod >> 32) as u32
    }
}

/// libocr `permutation.Permutation(n, key)`: `[0, n)` shuffled by Go's Fisher–Yates `Shuffle`.
/// Limited to OCR1's 1..=31 oracles, which also keeps to `Shuffle`'s `int31n` branch (Go switches
/// to `Int63n` only above 2^31 − 2 elements).
pub fn permutation(n: usize, key: &[u8; 16]) -> Result<Vec<usize>, PermutationError> {
    if n == 0 || n > MAX_ORACLES {
        return Err(PermutationError::OracleCount(n));
    }
    let mut result: Vec<usize> = (0..n).collect();
    let mut rand = CryptoRand::new(key);
    for i in (1..n).rev() {
        // i + 1 <= 31, so the casts are lossless.
        let j = rand.int31n((i + 1) as u32) as usize;
        result.swap(i, j);
    }
    Ok(result)
}

/// The per-round permutation key: keccak256(transmissionOrderKey ‖ configDigest ‖
/// u64_LE(epoch) ‖ u64_LE(round))[:16].
pub fn round_transmission_key(
    transmission_order_key: &[u8; 16],
    digest: ConfigDigest,
    er: EpochRound,
) -> [u8; 16] {
    let mut input = [0u8; 48];
    input[..16].copy_from_slice(transmission_order_key);
    input[16..32].copy_from_slice(digest.as_bytes());
    input[32..40].copy_from_slice(&u64::from(er.epoch).to_le_bytes());
    input[40..48].copy_from_slice(&u64::from(er.round).to_le_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&keccak256(input)[..16]);
    key
}

/// The stage in which `oracle` transmits the report of round `er`: the first `i` with
/// `π[oracle] < s[0] + … + s[i]`. Its delay is `i · ΔStage`. `None` means the oracle is beyond
/// the schedule and never transmits this report.
pub fn transmission_delay_stage(
    transmission_order_key: &[u8; 16],
    digest: ConfigDigest,
    er: EpochRound,
    n: usize,
    oracle: OracleId,
    schedule: &[u8],
) -> Result<Option<usize>, PermutationError> {
    let pi = permutation(
        n,
        &round_transmission_key(transmission_order_key, digest, er),
    )?;
    let position = *pi
        .get(oracle.index())
        .ok_or(PermutationError::UnknownOracle { oracle, n })?;
    let mut total = 0usize;
    for (stage, &count) in schedule.iter().enumerate() {
        total += usize::from(count);
        if position < total {
            return Ok(Some(stage));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ocr1::leader::transmission_order_key;
    use crate::node::ocr1::report::tests::DIGEST;

    fn counting_key() -> [u8; 16] {
        core::array::from_fn(|i| i as u8)
    }

    #[test]
    fn permutations_match_gos_shuffle_over_aes_ctr() {
        // From vectors.py (pycryptodome AES-CTR + a transcription of Go's Shuffle/int31n).
        assert_eq!(permutation(4, &[0u8; 16]), Ok(vec![0, 2, 3, 1]));
        assert_eq!(permutation(4, &counting_key()), Ok(vec![1, 3, 2, 0]));
        assert_eq!(
            permutation(7, &counting_key()),
            Ok(vec![4, 2, 3, 6, 1, 5, 0])
        );
        assert_eq!(
            permutation(31, &counting_key()),
            Ok(vec![
                12, 22, 19, 23, 7, 25, 24, 5, 1, 20, 18, 30, 9, 14, 26, 3, 17, 13, 15, 4, 21, 10,
                8, 16, 11, 29, 27, 2, 6, 28, 0
            ])
        );
        assert_eq!(permutation(1, &[0u8; 16]), Ok(vec![0]));
        assert_eq!(
            permutation(0, &[0u8; 16]),
            Err(PermutationError::OracleCount(0))
        );
        assert_eq!(
            permutation(32, &[0u8; 16]),
            Err(PermutationError::OracleCount(32))
        );
    }

    #[test]
    fn transmission_stages_follow_the_schedule() {
        let tok = transmission_order_key(&counting_key());
        let schedule = [1, 2, 2, 2];
        // From vectors.py: (epoch, round, key, stage of oracles 0..4).
        let cases = [
            (1, 1, "54b8788763a716e603f93f7b45709a20", [2, 1, 1, 0]),
            (7, 3, "bb67256c7a7c4e0e8415aa49f698eeab", [1, 1, 2, 0]),
        ];
        for (epoch, round, key, stages) in cases {
            let er = EpochRound::new(epoch, round);
            assert_eq!(hex::encode(round_transmission_key(&tok, DIGEST, er)), key);
            for (oracle, want) in stages.iter().enumerate() {
                let got = transmission_delay_stage(
                    &tok,
                    DIGEST,
                    er,
                    4,
                    OracleId(oracle as u8),
                    &schedule,
                );
                assert_eq!(
                    got,
                    Ok(Some(*want)),
                    "epoch {epoch} round {round} oracle {oracle}"
                );
            }
        }
    }

    #[test]
    fn oracles_beyond_the_schedule_never_transmit() {
        let tok = transmission_order_key(&counting_key());
        let er = EpochRound::new(1, 1);
        // π = [3, 2, 1, 0]; with s = [1] only the oracle at position 0 (oracle 3) transmits.
        let stages: Vec<_> = (0..4)
            .map(|o| transmission_delay_stage(&tok, DIGEST, er, 4, OracleId(o), &[1]))
            .collect();
        assert_eq!(stages, vec![Ok(None), Ok(None), Ok(None), Ok(Some(0))]);
        assert_eq!(
            transmission_delay_stage(&tok, DIGEST, er, 4, OracleId(4), &[1]),
            Err(PermutationError::UnknownOracle {
                oracle: OracleId(4),
                n: 4
            })
        );
    }
}
