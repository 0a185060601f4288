//! `feeds`: which prices the oracles report, from which sources, to which contracts.

use std::time::Duration;

use super::sources::SourceId;
use crate::config::defaults::feed;
use crate::config::reader::{Fields, Report};
use crate::config::values::{evm_address, is_token, EvmAddress};

/// Decimal places an int192 answer can carry with room for any realistic price.
pub const MAX_DECIMALS: u64 = 36;

/// One (source, base, quote) the oracles observe for a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedLeg {
    pub source: SourceId,
    pub base: String,
    pub quote: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeedConfig {
    /// Unique, `[A-Za-z0-9._-]`, used in the node API (`/v1/feeds/{name}`) and as the aggregator pair.
    pub name: String,
    pub decimals: u8,
    pub contract_address: EvmAddress,
    /// Deviation threshold in parts per billion (OCR `alphaPPB`).
    pub alpha_ppb: u64,
    /// Heartbeat (OCR `ΔC`): report at least this often even without deviation.
    pub heartbeat: Duration,
    pub legs: Vec<FeedLeg>,
}

pub fn read_feeds(r: &mut Report, items: Vec<(String, &serde_json::Value)>) -> Vec<FeedConfig> {
    items
        .into_iter()
        .filter_map(|(path, value)| Fields::of(r, &path, value).and_then(|f| read_feed(r, f)))
        .collect()
}

fn read_feed(r: &mut Report, mut f: Fields<'_>) -> Option<FeedConfig> {
    let name = f.required_string(r, "name");
    if let Some(n) = name {
        if !is_token(n, 64, &['.', '_', '-']) {
            r.error(
                f.path_of("name"),
                "must be 1-64 characters from A-Z a-z 0-9 . _ -",
            );
        }
    }
    let decimals = f.required_integer(r, "decimals", 0, MAX_DECIMALS);
    let address = f
        .required_string(r, "contractAddress")
        .and_then(|s| evm_address(r, &f.path_of("contractAddress"), s));
    let alpha_ppb = f.integer_or(r, "alphaPPB", 0, u64::MAX, feed::ALPHA_PPB);
    let heartbeat = f.integer_or(r, "heartbeatMs", 0, u64::MAX, feed::HEARTBEAT_MS);
    let legs = read_legs(r, &mut f);
    f.finish(r, &[]);
    Some(FeedConfig {
        name: name?.to_owned(),
        decimals: u8::try_from(decimals?).ok()?,
        contract_address: address?,
        alpha_ppb,
        heartbeat: Duration::from_millis(heartbeat),
        legs,
    })
}

fn read_legs(r: &mut Report, f: &mut Fields<'_>) -> Vec<FeedLeg> {
    let Some(items) = f.array(r, "legs") else {
        if !f.has("legs") {
            r.error(f.path_of("legs"), "is required");
        }
        return Vec::new();
    };
    if items.is_empty() {
        r.error(
            f.path_of("legs"),
            "must list at least one (source, base, quote)",
        );
    }
    let mut legs: Vec<FeedLeg> = Vec::new();
    for (path, value) in items {
        let Some(leg) = Fields::of(r, &path, value).and_then(|lf| read_leg(r, lf)) else {
            continue;
        };
        if legs.contains(&leg) {
            r.error(path, "repeats an earlier leg");
        } else {
            legs.push(leg);
        }
    }
    legs
}

fn read_leg(r: &mut Report, mut f: Fields<'_>) -> Option<FeedLeg> {
    let source = f.required_string(r, "source").and_then(|s| {
        let id = SourceId::parse(s);
        if id.is_none() {
            r.error(f.path_of("source"), "is not a known source");
        }
        id
    });
    let mut symbol = |r: &mut Report, key: &str| {
        let s = f.required_string(r, key)?;
        if is_token(s, 64, &['.', '_', '-']) {
            Some(s.to_owned())
        } else {
            r.error(
                f.path_of(key),
                "must be 1-64 characters from A-Z a-z 0-9 . _ -",
            );
            None
        }
    };
    let base = symbol(r, "base");
    let quote = symbol(r, "quote");
    f.finish(r, &[]);
    Some(FeedLeg {
        source: source?,
        base: base?,
        quote: quote?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_complete_feed_reads_with_defaults() {
        let v = json!([{"name": "BTC-USD", "decimals": 8,
            "contractAddress": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "legs": [{"source": "binance", "base": "BTC", "quote": "USDT"}]}]);
        let mut r = Report::default();
        let items: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("f[{i}]"), v))
            .collect();
        let feeds = read_feeds(&mut r, items);
        assert!(r.is_ok(), "{:?}", r.problems);
        assert_eq!(feeds[0].alpha_ppb, feed::ALPHA_PPB);
        assert_eq!(feeds[0].legs[0].source, SourceId::Binance);
    }

    #[test]
    fn every_bad_field_of_a_feed_is_reported() {
        let v = json!({"name": "BTC/USD", "decimals": 99, "contractAddress": "0x12",
            "legs": [{"source": "nasdaq", "base": "B T C", "quote": "USD"}, {"source": "okx", "base": "A", "quote": "B"}, {"source": "okx", "base": "A", "quote": "B"}]});
        let mut r = Report::default();
        read_feeds(&mut r, vec![("f[0]".into(), &v)]);
        let paths: Vec<_> = r.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "f[0].name",
                "f[0].decimals",
                "f[0].contractAddress",
                "f[0].legs[0].source",
                "f[0].legs[0].base",
                "f[0].legs[2]"
            ]
        );
    }
}
