//! Prices as exact decimals, read from the upstream text: a price never passes through `f64`,
//! so what an exchange said is what the oracles see, to the last digit it gave.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::value::RawValue;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a price: {0}")]
pub struct PriceError(String);

/// A positive, finite decimal price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(Decimal);

impl Price {
    pub fn new(value: Decimal) -> Result<Self, PriceError> {
        if value > Decimal::ZERO {
            Ok(Self(value))
        } else {
            Err(PriceError(format!("{value} is not positive")))
        }
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// Reads a JSON number or numeric string exactly as written (`"67123.45000000"`, `67123.4`,
    /// `2.3e12`). Needs the raw text of the value: parse the body with `&RawValue` fields.
    pub fn from_json(raw: &RawValue) -> Result<Self, PriceError> {
        let text = raw.get().trim();
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        text.parse()
    }
}

impl FromStr for Price {
    type Err = PriceError;

    fn from_str(text: &str) -> Result<Self, PriceError> {
        let t = text.trim();
        let shown: String = t.chars().take(40).collect();
        let value = if t.contains(['e', 'E']) {
            Decimal::from_scientific(t)
        } else {
            Decimal::from_str_exact(t)
        }
        .map_err(|_| PriceError(shown.clone()))?;
        Price::new(value).map_err(|_| PriceError(shown))
    }
}

/// Normalised: no trailing zeros (`67123.45000000` → `67123.45`).
impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.normalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("raw json")
    }

    #[test]
    fn prices_keep_every_digit_of_the_upstream_text() {
        assert_eq!(
            Price::from_json(&raw("\"67123.45000000\""))
                .expect("price")
                .to_string(),
            "67123.45"
        );
        // 0.1 + 0.2 style values that f64 cannot hold exactly stay exact.
        let p = Price::from_json(&raw("0.30000000000000000004")).expect("price");
        assert_eq!(p.value().to_string(), "0.30000000000000000004");
        assert_eq!(
            Price::from_json(&raw("2.3e12")).expect("price").to_string(),
            "2300000000000"
        );
        assert_eq!(
            Price::from_json(&raw("1.2E-5")).expect("price").to_string(),
            "0.000012"
        );
    }

    #[test]
    fn non_positive_and_garbage_are_rejected() {
        for bad in [
            "0", "-1", "\"abc\"", "null", "\"\"", "1e999", "\"NaN\"", "\"inf\"",
        ] {
            assert!(Price::from_json(&raw(bad)).is_err(), "{bad} accepted");
        }
        assert!("NaN".parse::<Price>().is_err());
    }
}
