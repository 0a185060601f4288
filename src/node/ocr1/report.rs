//! The OCR1 on-chain report: the exact bytes the oracles sign and `OffchainAggregator.transmit`
//! decodes (libocr `offchainreporting/internal/protocol/attested_report.go` `OnChainReport`,
//! `report_context.go`; contract `abi.decode(_report, (bytes32, bytes32, int192[]))`).
//!
//! Layout, k observations, 128 + 32·k bytes:
//! `rawReportContext (00×11 ‖ digest16 ‖ epoch u32 BE ‖ round u8) ‖ rawObservers (observer of
//! observation i in byte i, zero-padded) ‖ 0x60 (offset) ‖ k ‖ k × int192 (sign-extended words)`.

use alloy_primitives::B256;
use alloy_sol_types::SolValue;

use super::int192::I192;
use super::types::{ConfigDigest, EpochRound, OracleId, MAX_ORACLES};

/// Bytes before the observation words: context, observers, array offset, array length.
pub const REPORT_HEADER_BYTES: usize = 128;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("a report needs at least one observation (the contract takes observations[k/2])")]
    NoObservations,
    #[error("{0} observations; the contract accepts at most {MAX_ORACLES}")]
    TooManyObservations(usize),
    #[error("observations are not sorted ascending: #{index} is greater than #{next}", next = index + 1)]
    NotSorted { index: usize },
    #[error("observer index {0} is out of range; oracle indices are below {MAX_ORACLES}")]
    ObserverOutOfRange(u8),
    #[error("observer index {0} appears more than once")]
    DuplicateObserver(u8),
    #[error("report is {0} bytes; an OCR1 report is 128 + 32·k bytes")]
    WrongLength(usize),
    #[error("report does not ABI-decode as (bytes32, bytes32, int192[]): {0}")]
    Malformed(String),
    #[error("report is not in canonical form: {0}")]
    NotCanonical(&'static str),
}

/// `rawReportContext`, which is also libocr's `DomainSeparationTag` for signed observations:
/// 11 zero bytes ‖ config digest ‖ epoch (u32 big-endian) ‖ round.
pub fn raw_report_context(digest: ConfigDigest, er: EpochRound) -> [u8; 32] {
    let mut ctx = [0u8; 32];
    ctx[11..27].copy_from_slice(digest.as_bytes());
    ctx[27..31].copy_from_slice(&er.epoch.to_be_bytes());
    ctx[31] = er.round;
    ctx
}

/// One oracle's value as it goes into a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributedObservation {
    pub value: I192,
    pub observer: OracleId,
}

/// The on-chain median of observations sorted ascending: `observations[k/2]` (the upper median
/// for even k, as the contract computes it). `None` when there are none.
pub fn median_of(observations: &[AttributedObservation]) -> Option<I192> {
    observations.get(observations.len() / 2).map(|o| o.value)
}

/// Builds the report the oracles sign. Refuses anything the contract would revert on for the
/// report's own content: no observations, more than 31, observations not ascending
/// ("observations not sorted"), an observer index repeated ("observer index repeated") or not
/// below 31 (it would index past the contract's `seen` array).
pub fn encode_report(
    digest: ConfigDigest,
    er: EpochRound,
    observations: &[AttributedObservation],
) -> Result<Vec<u8>, ReportError> {
    check_observations(
        observations.iter().map(|o| o.observer.0),
        observations.iter().map(|o| o.value),
        observations.len(),
    )?;
    let mut raw_observers = [0u8; 32];
    for (slot, o) in raw_observers.iter_mut().zip(observations) {
        *slot = o.observer.0;
    }
    let values: Vec<I192> = observations.iter().map(|o| o.value).collect();
    Ok((
        B256::from(raw_report_context(digest, er)),
        B256::from(raw_observers),
        values,
    )
        .abi_encode_params())
}

/// A report read back from its bytes; only [`decode_report`] makes one, so it always holds
/// 1..=31 ascending observations from distinct observers below 31.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedReport {
    config_digest: ConfigDigest,
    epoch_round: EpochRound,
    observers: Vec<OracleId>,
    observations: Vec<I192>,
}

impl DecodedReport {
    pub fn config_digest(&self) -> ConfigDigest {
        self.config_digest
    }

    pub fn epoch_round(&self) -> EpochRound {
        self.epoch_round
    }

    /// `observers()[i]` made `observations()[i]`.
    pub fn observers(&self) -> &[OracleId] {
        &self.observers
    }

    /// Ascending.
    pub fn observations(&self) -> &[I192] {
        &self.observations
    }

    pub fn attributed_observations(&self) -> Vec<AttributedObservation> {
        self.observations
            .iter()
            .zip(&self.observers)
            .map(|(&value, &observer)| AttributedObservation { value, observer })
            .collect()
    }

    /// The answer the contract stores for this report.
    pub fn median(&self) -> I192 {
        // decode_report guarantees at least one observation.
        self.observations[self.observations.len() / 2]
    }
}

/// The answer the contract stores for `report`: `observations[k/2]`.
pub fn median(report: &DecodedReport) -> I192 {
    report.median()
}

/// Reads a report and checks everything the contract checks about the report itself (length,
/// 1..=31 observations, distinct observers below 31, ascending order). It is stricter than
/// the contract in one way: the bytes must be the canonical encoding that [`encode_report`]
/// (and libocr) produce — zero padding in the context and after the last observer, array at
/// offset 0x60, sign-extended int192 words, nothing trailing — so that a decoded report always
/// re-encodes to the same bytes, which is what the signatures cover.
///
/// Not checked here because they depend on contract state: the config digest and
/// (epoch, round) against the contract's latest, `observations.length > 2f`, and the median
/// against `minAnswer`/`maxAnswer`.
pub fn decode_report(report: &[u8]) -> Result<DecodedReport, ReportError> {
    if report.len() < REPORT_HEADER_BYTES
        || !(report.len() - REPORT_HEADER_BYTES).is_multiple_of(32)
    {
        return Err(ReportError::WrongLength(report.len()));
    }
    let (ctx, raw_observers, observations) = <(B256, B256, Vec<I192>)>::abi_decode_params(report)
        .map_err(|e| ReportError::Malformed(e.to_string()))?;
    if (ctx, raw_observers, observations.clone()).abi_encode_params() != report {
        return Err(ReportError::NotCanonical(
            "ABI layout differs from abi.encode (offset, length, trailing bytes or int192 sign extension)",
        ));
    }
    if ctx[..11].iter().any(|&b| b != 0) {
        return Err(ReportError::NotCanonical(
            "the 11 bytes before the config digest in rawReportContext are not zero",
        ));
    }
    let k = observations.len();
    check_observations(
        raw_observers.iter().copied().take(k),
        observations.iter().copied(),
        k,
    )?;
    if raw_observers[k..].iter().any(|&b| b != 0) {
        return Err(ReportError::NotCanonical(
            "rawObservers has non-zero bytes after the last observer",
        ));
    }
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&ctx[11..27]);
    let mut epoch = [0u8; 4];
    epoch.copy_from_slice(&ctx[27..31]);
    Ok(DecodedReport {
        config_digest: ConfigDigest(digest),
        epoch_round: EpochRound::new(u32::from_be_bytes(epoch), ctx[31]),
        observers: raw_observers[..k].iter().map(|&b| OracleId(b)).collect(),
        observations,
    })
}

/// The report-content checks shared by encoding and decoding, in the contract's order.
fn check_observations(
    observers: impl Iterator<Item = u8>,
    values: impl Iterator<Item = I192>,
    count: usize,
) -> Result<(), ReportError> {
    if count == 0 {
        return Err(ReportError::NoObservations);
    }
    if count > MAX_ORACLES {
        return Err(ReportError::TooManyObservations(count));
    }
    let mut seen = [false; MAX_ORACLES];
    for observer in observers {
        let slot = seen
            .get_mut(usize::from(observer))
            .ok_or(ReportError::ObserverOutOfRange(observer))?;
        if *slot {
            return Err(ReportError::DuplicateObserver(observer));
        }
        *slot = true;
    }
    let values: Vec<I192> = values.collect();
    // The contract requires observations[i] <= observations[i+1]; equal values are fine.
    if let Some(index) = values.windows(2).position(|w| w[0] > w[1]) {
        return Err(ReportError::NotSorted { index });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::node::ocr1::int192::parse_int192;

    // Inputs shared with vectors.py.
    pub(crate) const DIGEST: ConfigDigest = ConfigDigest([
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ]);
    pub(crate) const ER: EpochRound = EpochRound {
        epoch: 0x0102_0304,
        round: 5,
    };

    /// eth_abi.encode(["bytes32","bytes32","int192[]"], …) for observations
    /// [(-5, 3), (100, 0), (100, 7), (2^191-1, 1)], from vectors.py.
    pub(crate) const REPORT_HEX: &str = concat!(
        "000000000000000000000000112233445566778899aabbccddeeff0102030405",
        "0300070100000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000060",
        "0000000000000000000000000000000000000000000000000000000000000004",
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffb",
        "0000000000000000000000000000000000000000000000000000000000000064",
        "0000000000000000000000000000000000000000000000000000000000000064",
        "00000000000000007fffffffffffffffffffffffffffffffffffffffffffffff",
    );

    pub(crate) fn observations() -> Vec<AttributedObservation> {
        [
            ("-5", 3),
            ("100", 0),
            ("100", 7),
            (
                "3138550867693340381917894711603833208051177722232017256447",
                1,
            ),
        ]
        .iter()
        .map(|&(v, o)| AttributedObservation {
            value: parse_int192(v).expect("int192"),
            observer: OracleId(o),
        })
        .collect()
    }

    fn obs(pairs: &[(i64, u8)]) -> Vec<AttributedObservation> {
        pairs
            .iter()
            .map(|&(v, o)| AttributedObservation {
                value: I192::try_from(v).expect("i64 fits"),
                observer: OracleId(o),
            })
            .collect()
    }

    /// Encodes without any checks, to produce reports the decoder must refuse.
    fn raw(ctx: [u8; 32], observers: &[u8], values: &[i64]) -> Vec<u8> {
        let mut raw_observers = [0u8; 32];
        raw_observers[..observers.len()].copy_from_slice(observers);
        let values: Vec<I192> = values
            .iter()
            .map(|&v| I192::try_from(v).expect("fits"))
            .collect();
        (B256::from(ctx), B256::from(raw_observers), values).abi_encode_params()
    }

    #[test]
    fn report_context_is_libocrs_domain_separation_tag() {
        assert_eq!(
            hex::encode(raw_report_context(DIGEST, ER)),
            "000000000000000000000000112233445566778899aabbccddeeff0102030405"
        );
    }

    #[test]
    fn reports_encode_byte_for_byte_like_abi_encode() {
        let report = encode_report(DIGEST, ER, &observations()).expect("report");
        assert_eq!(hex::encode(&report), REPORT_HEX);
        assert_eq!(report.len(), REPORT_HEADER_BYTES + 32 * 4);
    }

    #[test]
    fn reports_decode_to_what_was_encoded() {
        let bytes = hex::decode(REPORT_HEX).expect("hex");
        let report = decode_report(&bytes).expect("decode");
        assert_eq!(report.config_digest(), DIGEST);
        assert_eq!(report.epoch_round(), ER);
        assert_eq!(
            report.observers(),
            &[OracleId(3), OracleId(0), OracleId(7), OracleId(1)]
        );
        assert_eq!(report.attributed_observations(), observations());
        // k = 4 → observations[2] = 100, the upper of the two middle values.
        assert_eq!(median(&report), parse_int192("100").expect("int"));
        assert_eq!(median_of(&observations()), Some(report.median()));
        assert_eq!(median_of(&[]), None);
    }

    #[test]
    fn equal_values_are_sorted_and_a_single_observation_is_its_own_median() {
        let one = obs(&[(42, 30)]);
        let report =
            decode_report(&encode_report(DIGEST, ER, &one).expect("encode")).expect("decode");
        assert_eq!(report.median(), I192::try_from(42).expect("fits"));
        let ties = obs(&[(7, 0), (7, 1), (7, 2)]);
        assert!(encode_report(DIGEST, ER, &ties).is_ok());
    }

    #[test]
    fn reports_the_contract_would_revert_on_are_not_built() {
        assert_eq!(
            encode_report(DIGEST, ER, &[]),
            Err(ReportError::NoObservations)
        );
        assert_eq!(
            encode_report(DIGEST, ER, &obs(&[(2, 0), (1, 1)])),
            Err(ReportError::NotSorted { index: 0 })
        );
        assert_eq!(
            encode_report(DIGEST, ER, &obs(&[(1, 0), (2, 4), (3, 4)])),
            Err(ReportError::DuplicateObserver(4))
        );
        assert_eq!(
            encode_report(DIGEST, ER, &obs(&[(1, 31)])),
            Err(ReportError::ObserverOutOfRange(31))
        );
        let many: Vec<(i64, u8)> = (0..32).map(|i| (i64::from(i), (i % 31) as u8)).collect();
        assert_eq!(
            encode_report(DIGEST, ER, &obs(&many)),
            Err(ReportError::TooManyObservations(32))
        );
        let all: Vec<(i64, u8)> = (0..31).map(|i| (i64::from(i), i as u8)).collect();
        let report = encode_report(DIGEST, ER, &obs(&all)).expect("31 observations are allowed");
        assert_eq!(report.len(), REPORT_HEADER_BYTES + 32 * 31);
    }

    #[test]
    fn truncated_or_padded_reports_are_refused() {
        let bytes = hex::decode(REPORT_HEX).expect("hex");
        assert_eq!(
            decode_report(&bytes[..bytes.len() - 1]),
            Err(ReportError::WrongLength(255))
        );
        assert_eq!(
            decode_report(&bytes[..100]),
            Err(ReportError::WrongLength(100))
        );
        assert_eq!(decode_report(&[]), Err(ReportError::WrongLength(0)));
        // One word short: the length word still says 4.
        assert!(matches!(
            decode_report(&bytes[..bytes.len() - 32]),
            Err(ReportError::Malformed(_))
        ));
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0u8; 32]);
        assert!(matches!(
            decode_report(&longer),
            Err(ReportError::NotCanonical(_))
        ));
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        let bytes = hex::decode(REPORT_HEX).expect("hex");
        // -5 without its sign extension in the top 8 bytes of the word.
        let mut unextended = bytes.clone();
        unextended[128..136].fill(0);
        assert!(matches!(
            decode_report(&unextended),
            Err(ReportError::NotCanonical(_))
        ));
        // Garbage in the context's zero padding.
        let mut padded = bytes.clone();
        padded[0] = 1;
        assert!(matches!(
            decode_report(&padded),
            Err(ReportError::NotCanonical(_))
        ));
        // A stray observer byte after the fourth observer.
        let mut stray = bytes.clone();
        stray[32 + 4] = 9;
        assert!(matches!(
            decode_report(&stray),
            Err(ReportError::NotCanonical(_))
        ));
    }

    #[test]
    fn decoding_applies_the_contracts_report_checks() {
        let ctx = raw_report_context(DIGEST, ER);
        assert_eq!(
            decode_report(&raw(ctx, &[], &[])),
            Err(ReportError::NoObservations)
        );
        assert_eq!(
            decode_report(&raw(ctx, &[0, 1], &[5, 4])),
            Err(ReportError::NotSorted { index: 0 })
        );
        assert_eq!(
            decode_report(&raw(ctx, &[2, 2], &[4, 5])),
            Err(ReportError::DuplicateObserver(2))
        );
        assert_eq!(
            decode_report(&raw(ctx, &[0, 31], &[4, 5])),
            Err(ReportError::ObserverOutOfRange(31))
        );
        let values: Vec<i64> = (0..32).collect();
        let observers: Vec<u8> = (0..32).collect();
        assert_eq!(
            decode_report(&raw(ctx, &observers, &values)),
            Err(ReportError::TooManyObservations(32))
        );
    }
}
