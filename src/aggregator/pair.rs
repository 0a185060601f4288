//! A (base, quote) pair as clients and feeds name it, validated before anything registers it.

use std::fmt;

use thiserror::Error;

/// Longest base or quote accepted (CoinGecko ids such as `coinbase-wrapped-btc` are long).
pub const MAX_SYMBOL_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairError {
    #[error("pair must be BASE/QUOTE or BASE-QUOTE")]
    Shape,
    #[error("base and quote must be 1-{MAX_SYMBOL_LEN} characters from A-Z a-z 0-9 . _ -")]
    Symbol,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    pub base: String,
    pub quote: String,
}

fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SYMBOL_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Pair {
    pub fn new(base: &str, quote: &str) -> Result<Self, PairError> {
        if valid_symbol(base) && valid_symbol(quote) {
            Ok(Self {
                base: base.to_owned(),
                quote: quote.to_owned(),
            })
        } else {
            Err(PairError::Symbol)
        }
    }

    /// `BASE/QUOTE`, or `BASE-QUOTE` split at the last `-` (bases such as CoinGecko ids may
    /// contain `-`; quote currencies do not).
    pub fn parse(text: &str) -> Result<Self, PairError> {
        let (base, quote) = text
            .split_once('/')
            .or_else(|| text.rsplit_once('-'))
            .ok_or(PairError::Shape)?;
        Pair::new(base, quote)
    }

    pub fn upper(&self) -> Pair {
        Pair {
            base: self.base.to_ascii_uppercase(),
            quote: self.quote.to_ascii_uppercase(),
        }
    }
}

/// `BASE/QUOTE`, the reference's label form.
impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.quote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_separators_parse() {
        assert_eq!(
            Pair::parse("BTC-USD").expect("pair"),
            Pair::new("BTC", "USD").expect("pair")
        );
        assert_eq!(Pair::parse("BTC/USD").expect("pair").to_string(), "BTC/USD");
        let p = Pair::parse("stader-bnbx-usd").expect("pair");
        assert_eq!((p.base.as_str(), p.quote.as_str()), ("stader-bnbx", "usd"));
        let p = Pair::parse("stader-bnbx/usd").expect("pair");
        assert_eq!(p.base, "stader-bnbx");
    }

    #[test]
    fn bad_pairs_are_rejected() {
        assert_eq!(Pair::parse("BTCUSD"), Err(PairError::Shape));
        assert_eq!(Pair::parse("BTC-"), Err(PairError::Symbol));
        assert_eq!(Pair::parse("B TC-USD"), Err(PairError::Symbol));
        assert_eq!(
            Pair::parse(&format!("{}-USD", "A".repeat(65))),
            Err(PairError::Symbol)
        );
        assert_eq!(Pair::parse("<script>/USD"), Err(PairError::Symbol));
    }
}
