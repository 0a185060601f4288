//! int192: the type of every OCR1 observation and answer on chain (`int192[] observations`,
//! `int192 latestAnswer`), its text form, and libocr's 24-byte observation wire encoding
//! (`offchainreporting/internal/protocol/observation/observation.go` `Marshal`/`UnmarshalObservation`).

pub use alloy_primitives::aliases::I192;
use alloy_primitives::{I256, U256};
use rust_decimal::Decimal;

/// Bytes in the wire (and signed-message) encoding of one observation.
pub const INT192_BYTES: usize = 24;

/// Largest `decimals` [`scale_price`] accepts. 36 covers every feed convention in use (8 for
/// USD pairs, 18 for ETH-denominated ones) with room to spare, and keeps the scaled mantissa
/// below 2^216, so the arithmetic never overflows 256 bits.
pub const MAX_PRICE_DECIMALS: u8 = 36;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Int192Error {
    #[error("not a decimal integer (optional '-' then digits only): {0:?}")]
    NotAnInteger(String),
    #[error("{0} does not fit in int192 (-2^191 ..= 2^191-1)")]
    OutOfRange(String),
    #[error("price {0} is not positive; a feed answer must be > 0")]
    NotPositive(Decimal),
    #[error("price {price} is below one unit at {decimals} decimals and would be reported as 0")]
    RoundsToZero { price: Decimal, decimals: u8 },
    #[error("{0} decimals is more than the supported {MAX_PRICE_DECIMALS}")]
    TooManyDecimals(u8),
    #[error("an int192 observation is {INT192_BYTES} bytes on the wire, got {0}")]
    WrongLength(usize),
}

/// Parses a base-10 integer (`-123`, `0`, `6712345678900`) into an int192, refusing anything
/// else (`+1`, ` 1`, `1_000`, `1.0`, empty) so that a value has exactly one text form.
pub fn parse_int192(text: &str) -> Result<I192, Int192Error> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Int192Error::NotAnInteger(text.chars().take(80).collect()));
    }
    // Digits-only input can only fail by being out of range.
    I192::from_dec_str(text).map_err(|_| Int192Error::OutOfRange(text.chars().take(80).collect()))
}

/// The base-10 form `parse_int192` reads back (`-5`, `0`, `100`).
pub fn format_int192(value: I192) -> String {
    value.to_dec_string().trim_start_matches('+').to_owned()
}

/// `price × 10^decimals`, truncated toward zero, as the integer the contract stores.
///
/// Prices must be positive: the aggregator never produces anything else, and a zero or negative
/// answer reaching a lending protocol is worse than no update. For the same reason a price that
/// truncates to 0 at this precision is an error rather than a silent 0.
///
/// Computed on the decimal's integer mantissa in 256-bit arithmetic (mantissa < 2^96,
/// 10^36 < 2^120), never through floats or `Decimal` multiplication, which would overflow at
/// 28 significant digits.
pub fn scale_price(price: Decimal, decimals: u8) -> Result<I192, Int192Error> {
    if decimals > MAX_PRICE_DECIMALS {
        return Err(Int192Error::TooManyDecimals(decimals));
    }
    if price <= Decimal::ZERO {
        return Err(Int192Error::NotPositive(price));
    }
    let ten = U256::from(10u8);
    let mantissa = U256::from(price.mantissa().unsigned_abs());
    let scaled = mantissa * ten.pow(U256::from(decimals)) / ten.pow(U256::from(price.scale()));
    if scaled.is_zero() {
        return Err(Int192Error::RoundsToZero { price, decimals });
    }
    let max = (U256::from(1u8) << 191) - U256::from(1u8);
    if scaled > max {
        return Err(Int192Error::OutOfRange(scaled.to_string()));
    }
    let bytes = scaled.to_be_bytes::<32>();
    let mut low = [0u8; INT192_BYTES];
    low.copy_from_slice(&bytes[32 - INT192_BYTES..]);
    Ok(I192::from_be_bytes(low))
}

/// libocr's observation wire form: 24-byte big-endian two's complement.
pub fn encode_observation(value: I192) -> [u8; INT192_BYTES] {
    value.to_be_bytes::<INT192_BYTES>()
}

/// Reads the 24-byte wire form. Every 24-byte string is a valid int192, so only the length can
/// be wrong.
pub fn decode_observation(bytes: &[u8]) -> Result<I192, Int192Error> {
    let array: [u8; INT192_BYTES] = bytes
        .try_into()
        .map_err(|_| Int192Error::WrongLength(bytes.len()))?;
    Ok(I192::from_be_bytes(array))
}

/// Widens to int256 (e.g. to compare with `latestAnswer()`, which returns `int256`).
pub fn to_i256(value: I192) -> I256 {
    let fill = if value.is_negative() { 0xff } else { 0x00 };
    let mut bytes = [fill; 32];
    bytes[32 - INT192_BYTES..].copy_from_slice(&encode_observation(value));
    I256::from_be_bytes(bytes)
}

/// Narrows an int256 (as `latestAnswer()` returns it) to int192, refusing values outside the
/// int192 range.
pub fn from_i256(value: I256) -> Result<I192, Int192Error> {
    if value < to_i256(I192::MIN) || value > to_i256(I192::MAX) {
        return Err(Int192Error::OutOfRange(value.to_string()));
    }
    let bytes = value.to_be_bytes::<32>();
    let mut low = [0u8; INT192_BYTES];
    low.copy_from_slice(&bytes[32 - INT192_BYTES..]);
    Ok(I192::from_be_bytes(low))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn int(text: &str) -> I192 {
        parse_int192(text).expect("int192")
    }

    const MAX: &str = "3138550867693340381917894711603833208051177722232017256447";
    const MIN: &str = "-3138550867693340381917894711603833208051177722232017256448";

    #[test]
    fn decimal_text_round_trips_over_the_whole_range() {
        assert_eq!(int(MAX), I192::MAX);
        assert_eq!(int(MIN), I192::MIN);
        for text in ["0", "1", "-1", "6712345678900", MAX, MIN] {
            assert_eq!(format_int192(int(text)), text);
        }
        assert_eq!(format_int192(int("-0")), "0");
    }

    #[test]
    fn out_of_range_and_malformed_text_is_refused() {
        // 2^191 and -2^191 - 1.
        assert!(matches!(
            parse_int192("3138550867693340381917894711603833208051177722232017256448"),
            Err(Int192Error::OutOfRange(_))
        ));
        assert!(matches!(
            parse_int192("-3138550867693340381917894711603833208051177722232017256449"),
            Err(Int192Error::OutOfRange(_))
        ));
        for bad in [
            "", "-", "+1", " 1", "1 ", "1_000", "1.0", "0x10", "1e3", "--1",
        ] {
            assert!(
                matches!(parse_int192(bad), Err(Int192Error::NotAnInteger(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn wire_encoding_matches_libocr_24_byte_twos_complement() {
        // Expected bytes from vectors.py (Python int.to_bytes over 2^192).
        let cases = [
            ("0", "000000000000000000000000000000000000000000000000"),
            ("1", "000000000000000000000000000000000000000000000001"),
            ("-1", "ffffffffffffffffffffffffffffffffffffffffffffffff"),
            ("255", "0000000000000000000000000000000000000000000000ff"),
            ("-256", "ffffffffffffffffffffffffffffffffffffffffffffff00"),
            (MAX, "7fffffffffffffffffffffffffffffffffffffffffffffff"),
            (MIN, "800000000000000000000000000000000000000000000000"),
            (
                "6712345678900",
                "000000000000000000000000000000000000061ad6fad434",
            ),
            (
                "-6712345678900",
                "fffffffffffffffffffffffffffffffffffff9e529052bcc",
            ),
        ];
        for (text, wire) in cases {
            assert_eq!(hex::encode(encode_observation(int(text))), wire, "{text}");
            let bytes = hex::decode(wire).expect("hex");
            assert_eq!(decode_observation(&bytes), Ok(int(text)), "{text}");
        }
        assert_eq!(
            decode_observation(&[0u8; 23]),
            Err(Int192Error::WrongLength(23))
        );
        assert_eq!(
            decode_observation(&[0u8; 32]),
            Err(Int192Error::WrongLength(32))
        );
    }

    #[test]
    fn prices_scale_by_truncation_in_big_integer_arithmetic() {
        // Expected values from vectors.py (Python Decimal at 200 digits, ROUND_DOWN).
        let cases = [
            ("67123.456789", 8, "6712345678900"),
            ("1", 0, "1"),
            ("0.000000019", 8, "1"),
            (
                "79228162514264337593543950335",
                18,
                "79228162514264337593543950335000000000000000000",
            ),
            (
                "7.9228162514264337593543950335",
                36,
                "7922816251426433759354395033500000000",
            ),
            (
                "3138550867693340381917.894711",
                36,
                "3138550867693340381917894711000000000000000000000000000000",
            ),
        ];
        for (price, decimals, expected) in cases {
            let price = Decimal::from_str(price).expect("decimal");
            assert_eq!(scale_price(price, decimals), Ok(int(expected)), "{price}");
        }
    }

    #[test]
    fn prices_that_cannot_be_reported_are_errors() {
        let d = |s: &str| Decimal::from_str(s).expect("decimal");
        assert!(matches!(
            scale_price(d("79228162514264337593543950335"), 36),
            Err(Int192Error::OutOfRange(_))
        ));
        assert!(matches!(
            scale_price(d("3138550867693340381917.894712"), 36),
            Err(Int192Error::OutOfRange(_))
        ));
        assert_eq!(
            scale_price(d("0.000000009"), 8),
            Err(Int192Error::RoundsToZero {
                price: d("0.000000009"),
                decimals: 8
            })
        );
        assert_eq!(
            scale_price(d("0"), 8),
            Err(Int192Error::NotPositive(d("0")))
        );
        assert_eq!(
            scale_price(d("-1.5"), 8),
            Err(Int192Error::NotPositive(d("-1.5")))
        );
        assert_eq!(
            scale_price(d("1"), 37),
            Err(Int192Error::TooManyDecimals(37))
        );
    }

    #[test]
    fn int256_conversions_check_the_int192_range() {
        for text in ["0", "-1", "42", MAX, MIN] {
            assert_eq!(from_i256(to_i256(int(text))), Ok(int(text)));
        }
        assert_eq!(to_i256(int("-1")), I256::MINUS_ONE);
        let too_big = to_i256(I192::MAX) + I256::ONE;
        assert!(matches!(
            from_i256(too_big),
            Err(Int192Error::OutOfRange(_))
        ));
        let too_small = to_i256(I192::MIN) - I256::ONE;
        assert!(matches!(
            from_i256(too_small),
            Err(Int192Error::OutOfRange(_))
        ));
    }
}
