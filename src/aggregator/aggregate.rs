//! Cross-source aggregation: the median of the fresh quotes of a pair's legs, with quotes too far
//! from it left out, and a minimum number of agreeing sources. A pair that cannot be priced is
//! unavailable with each source's reason — never a stale or guessed price.

use std::time::{Duration, SystemTime};

use rust_decimal::Decimal;

use super::price::Price;
use crate::config::schema::sources::SourceId;

/// What the cache knows of one leg (source, symbol) when the pair is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegState {
    /// A quote within its source's TTL.
    Fresh {
        price: Price,
        received_at: SystemTime,
    },
    /// A quote past its TTL: shown, never used.
    Stale {
        price: Price,
        received_at: SystemTime,
    },
    /// No quote: why (not found, rate limited, unreachable, pending first fetch, …).
    Missing { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub source: SourceId,
    pub symbol: String,
    pub state: LegState,
}

/// How one source fared in an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub source: SourceId,
    pub symbol: String,
    pub price: Option<Price>,
    pub received_at: Option<SystemTime>,
    pub age: Option<Duration>,
    pub used: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// `None`: unavailable.
    pub price: Option<Price>,
    /// The newest `received_at` among the quotes used.
    pub updated_at: Option<SystemTime>,
    pub sources: Vec<Verdict>,
    /// Why the pair is unavailable, when it is.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub min_sources: usize,
    /// Quotes farther than this from the median (parts per billion of the median) are left out.
    pub max_deviation_ppb: u64,
}

/// The median of sorted values; the mean of the middle two for an even count.
fn median(sorted: &[Decimal]) -> Option<Decimal> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / Decimal::TWO),
    }
}

fn deviation_ppb(price: Decimal, reference: Decimal) -> Option<Decimal> {
    if reference.is_zero() {
        return None;
    }
    ((price - reference).abs() / reference).checked_mul(Decimal::from(1_000_000_000u64))
}

pub fn aggregate(legs: &[Leg], policy: Policy, now: SystemTime) -> Aggregate {
    let age = |at: SystemTime| now.duration_since(at).unwrap_or(Duration::ZERO);
    let mut fresh: Vec<Decimal> = legs
        .iter()
        .filter_map(|l| match &l.state {
            LegState::Fresh { price, .. } => Some(price.value()),
            _ => None,
        })
        .collect();
    fresh.sort();
    let center = median(&fresh);
    let limit = Decimal::from(policy.max_deviation_ppb);
    let mut used_prices = Vec::new();
    let mut updated_at: Option<SystemTime> = None;
    let sources: Vec<Verdict> = legs
        .iter()
        .map(|leg| {
            let mut v = Verdict {
                source: leg.source,
                symbol: leg.symbol.clone(),
                price: None,
                received_at: None,
                age: None,
                used: false,
                reason: None,
            };
            match &leg.state {
                LegState::Fresh { price, received_at } => {
                    v.price = Some(*price);
                    v.received_at = Some(*received_at);
                    v.age = Some(age(*received_at));
                    let far = center
                        .and_then(|c| deviation_ppb(price.value(), c))
                        .is_some_and(|d| d > limit);
                    if far {
                        v.reason = Some(format!(
                            "outlier: more than {} ppb from the median",
                            policy.max_deviation_ppb
                        ));
                    } else {
                        v.used = true;
                        used_prices.push(price.value());
                        updated_at = Some(updated_at.map_or(*received_at, |u| u.max(*received_at)));
                    }
                }
                LegState::Stale { price, received_at } => {
                    v.price = Some(*price);
                    v.received_at = Some(*received_at);
                    v.age = Some(age(*received_at));
                    v.reason = Some("stale: older than the source's TTL".into());
                }
                LegState::Missing { reason } => v.reason = Some(reason.clone()),
            }
            v
        })
        .collect();
    used_prices.sort();
    let wanted = policy.min_sources.max(1);
    let (price, reason) = if used_prices.len() < wanted {
        let reason = format!(
            "{} usable source(s), at least {wanted} required",
            used_prices.len()
        );
        (None, Some(reason))
    } else {
        match median(&used_prices).map(Price::new) {
            Some(Ok(p)) => (Some(p), None),
            _ => (None, Some("no positive median".into())),
        }
    };
    Aggregate {
        updated_at: price.and(updated_at),
        price,
        sources,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(source: SourceId, price: &str, secs_ago: u64, now: SystemTime) -> Leg {
        Leg {
            source,
            symbol: "BTCUSD".into(),
            state: LegState::Fresh {
                price: price.parse().expect("price"),
                received_at: now - Duration::from_secs(secs_ago),
            },
        }
    }

    const POLICY: Policy = Policy {
        min_sources: 1,
        max_deviation_ppb: 10_000_000,
    };

    #[test]
    fn the_median_of_an_odd_and_an_even_count_is_exact() {
        let now = SystemTime::now();
        let odd = [
            fresh(SourceId::Binance, "100.01", 1, now),
            fresh(SourceId::Okx, "100.03", 2, now),
            fresh(SourceId::Kraken, "100.02", 3, now),
        ];
        let a = aggregate(&odd, POLICY, now);
        assert_eq!(a.price.map(|p| p.to_string()).as_deref(), Some("100.02"));
        assert_eq!(a.updated_at, Some(now - Duration::from_secs(1)));
        let even = &odd[..2];
        let a = aggregate(even, POLICY, now);
        assert_eq!(a.price.map(|p| p.to_string()).as_deref(), Some("100.02"));
    }

    #[test]
    fn outliers_are_left_out_and_say_why() {
        let now = SystemTime::now();
        let legs = [
            fresh(SourceId::Binance, "100", 1, now),
            fresh(SourceId::Okx, "101", 1, now),
            fresh(SourceId::Kraken, "100.5", 1, now),
            fresh(SourceId::Coinbase, "150", 1, now),
        ];
        let a = aggregate(&legs, POLICY, now);
        let coinbase = a
            .sources
            .iter()
            .find(|v| v.source == SourceId::Coinbase)
            .expect("verdict");
        assert!(!coinbase.used);
        assert!(coinbase
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("outlier")));
        assert_eq!(a.price.map(|p| p.to_string()).as_deref(), Some("100.5"));
    }

    #[test]
    fn too_few_sources_make_the_pair_unavailable_and_stale_quotes_never_count() {
        let now = SystemTime::now();
        let legs = [
            fresh(SourceId::Binance, "100", 1, now),
            Leg {
                source: SourceId::Okx,
                symbol: "BTC-USD".into(),
                state: LegState::Stale {
                    price: "99".parse().expect("price"),
                    received_at: now - Duration::from_secs(600),
                },
            },
            Leg {
                source: SourceId::Kraken,
                symbol: "XBTUSD".into(),
                state: LegState::Missing {
                    reason: "rate_limited".into(),
                },
            },
        ];
        let policy = Policy {
            min_sources: 2,
            ..POLICY
        };
        let a = aggregate(&legs, policy, now);
        assert_eq!(a.price, None);
        assert_eq!(a.updated_at, None);
        assert_eq!(
            a.reason.as_deref(),
            Some("1 usable source(s), at least 2 required")
        );
        let okx = &a.sources[1];
        assert!(
            !okx.used
                && okx
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("stale"))
        );
        assert_eq!(okx.age, Some(Duration::from_secs(600)));
        assert_eq!(a.sources[2].reason.as_deref(), Some("rate_limited"));
    }

    #[test]
    fn no_legs_is_unavailable() {
        let a = aggregate(&[], POLICY, SystemTime::now());
        assert!(a.price.is_none() && a.reason.is_some());
    }
}
