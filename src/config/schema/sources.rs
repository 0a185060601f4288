//! `priceAggregatorConfig.sources`: the 13 price sources and their per-source settings.
//!
//! Unlike the reference, a source is enabled only when it is configured: an absent source is off,
//! a present one is on unless it says `"enabled": false`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::config::defaults::source;
use crate::config::reader::{Fields, Report};
use crate::config::secret::Secret;
use crate::config::values::{url, RedactedUrl};

/// Whether a source needs an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKey {
    Required { min_len: usize },
    Optional,
}

macro_rules! sources {
    ($($variant:ident => $key:literal, $name:literal, rps: $rps:expr, batch: $batch:expr, stream: $stream:expr, key: $api:expr;)*) => {
        /// One of the price sources the aggregator knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum SourceId { $($variant),* }

        impl SourceId {
            pub const ALL: [SourceId; 13] = [$(SourceId::$variant),*];

            /// The key under `priceAggregatorConfig.sources`.
            pub fn config_key(self) -> &'static str {
                match self { $(SourceId::$variant => $key),* }
            }

            /// The source's name in URLs, metrics and logs.
            pub fn name(self) -> &'static str {
                match self { $(SourceId::$variant => $name),* }
            }

            /// Default requests per second (the reference's defaults).
            pub fn default_rps(self) -> f64 {
                match self { $(SourceId::$variant => $rps),* }
            }

            /// The largest batch the source's REST API takes, if it has a batch endpoint.
            pub fn max_batch(self) -> Option<u32> {
                match self { $(SourceId::$variant => $batch),* }
            }

            /// Whether the source has a WebSocket stream.
            pub fn streams(self) -> bool {
                match self { $(SourceId::$variant => $stream),* }
            }

            pub fn api_key(self) -> ApiKey {
                match self { $(SourceId::$variant => $api),* }
            }
        }
    };
}

sources! {
    Binance => "binance", "binance", rps: 100.0, batch: Some(500), stream: true, key: ApiKey::Optional;
    Okx => "okx", "okx", rps: 10.0, batch: Some(200), stream: true, key: ApiKey::Optional;
    Finnhub => "finnhub", "finnhub", rps: 1.0, batch: None, stream: true, key: ApiKey::Required { min_len: 2 };
    CryptoCompare => "cryptocompare", "cryptocompare", rps: 25.0, batch: Some(50), stream: true, key: ApiKey::Required { min_len: 1 };
    AlphaVantage => "alphavantage", "alphavantage", rps: 1.0, batch: None, stream: false, key: ApiKey::Required { min_len: 1 };
    CoinGecko => "coingecko", "coingecko", rps: 1.0, batch: Some(100), stream: false, key: ApiKey::Optional;
    ExchangeRateHost => "exchangeratehost", "exchangerate-host", rps: 1.0, batch: None, stream: false, key: ApiKey::Optional;
    Kraken => "kraken", "kraken", rps: 1.0, batch: Some(50), stream: true, key: ApiKey::Optional;
    Coinbase => "coinbase", "coinbase", rps: 2.8, batch: None, stream: true, key: ApiKey::Optional;
    Frankfurter => "frankfurter", "frankfurter", rps: 10.0, batch: None, stream: false, key: ApiKey::Optional;
    YahooFinance => "yahoofinance", "yahoofinance", rps: 10.0, batch: None, stream: false, key: ApiKey::Optional;
    Kucoin => "kucoin", "kucoin", rps: 30.0, batch: None, stream: false, key: ApiKey::Optional;
    Bybit => "bybit", "bybit", rps: 120.0, batch: None, stream: true, key: ApiKey::Optional;
}

impl SourceId {
    /// Looks a source up by its configuration key or its name (`exchangeratehost` or
    /// `exchangerate-host`).
    pub fn parse(s: &str) -> Option<SourceId> {
        Self::ALL
            .into_iter()
            .find(|id| id.config_key() == s || id.name() == s)
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which proxy a source's requests go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UseProxy {
    None,
    /// The aggregator's global `proxy`.
    Global,
    /// A proxy of this source's own.
    Own(RedactedUrl),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    pub auto_reconnect: bool,
    pub reconnect_interval: Duration,
    pub max_reconnect_attempts: u32,
    pub heartbeat_interval: Duration,
    pub ws_url: Option<RedactedUrl>,
    pub batch_size: Option<u32>,
    /// Minimum time between two subscription messages.
    pub rate_limit: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub enabled: bool,
    pub api_key: Option<Secret<String>>,
    pub ttl: Duration,
    pub max_concurrent: u32,
    pub timeout: Duration,
    /// Requests per second; `None` means no limiter (`"rps": null`).
    pub rps: Option<f64>,
    pub use_proxy: UseProxy,
    pub max_retries: u32,
    pub refetch: bool,
    pub stale_trigger_before_expiry: Option<Duration>,
    pub stream: Option<StreamConfig>,
    pub base_url: Option<RedactedUrl>,
    pub max_batch_size: Option<u32>,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Reads `sources`; returns only the sources that are present, enabled or not.
pub fn read_sources(
    r: &mut Report,
    mut f: Fields<'_>,
    has_global_proxy: bool,
) -> BTreeMap<SourceId, SourceConfig> {
    let mut out = BTreeMap::new();
    for id in SourceId::ALL {
        if let Some(sf) = f.object(r, id.config_key()) {
            out.insert(id, read_source(r, sf, id, has_global_proxy));
        }
    }
    f.finish(r, &[]);
    out
}

fn read_source(
    r: &mut Report,
    mut f: Fields<'_>,
    id: SourceId,
    has_global_proxy: bool,
) -> SourceConfig {
    let enabled = f.boolean_or(r, "enabled", source::ENABLED);
    let api_key = read_api_key(r, &mut f, id, enabled);
    let rps = read_rps(r, &mut f, id);
    let use_proxy = read_use_proxy(r, &mut f, has_global_proxy);
    let stream = if id.streams() {
        f.object(r, "stream").map(|sf| read_stream(r, sf))
    } else {
        if f.has("stream") {
            r.error(f.path_of("stream"), format!("{id} has no WebSocket stream"));
        }
        f.get("stream");
        None
    };
    let max_batch_size = match id.max_batch() {
        Some(max) => f
            .integer(r, "maxBatchSize", 1, u64::from(max))
            .map(|v| v as u32),
        None => {
            if f.has("maxBatchSize") {
                r.error(
                    f.path_of("maxBatchSize"),
                    format!("{id} has no batch endpoint"),
                );
            }
            f.get("maxBatchSize");
            None
        }
    };
    let base_url = f
        .string(r, "baseUrl")
        .and_then(|s| url(r, &f.path_of("baseUrl"), s, &["http", "https"]));
    let config = SourceConfig {
        enabled,
        api_key,
        ttl: f.millis(r, "ttl", 1000, u64::MAX, source::TTL_MS),
        max_concurrent: f.integer_or(r, "maxConcurrent", 1, 10_000, source::MAX_CONCURRENT) as u32,
        timeout: f.millis(r, "timeoutMs", 1000, 600_000, source::TIMEOUT_MS),
        rps,
        use_proxy,
        max_retries: f.integer_or(r, "maxRetries", 0, 10, source::MAX_RETRIES) as u32,
        refetch: f.boolean_or(r, "refetch", source::REFETCH),
        stale_trigger_before_expiry: f
            .integer(r, "staleTriggerBeforeExpiry", 100, 60_000)
            .map(ms),
        stream,
        base_url,
        max_batch_size,
    };
    f.finish(r, &[]);
    config
}

fn read_api_key(
    r: &mut Report,
    f: &mut Fields<'_>,
    id: SourceId,
    enabled: bool,
) -> Option<Secret<String>> {
    let key = f.string(r, "apiKey").map(Secret::from);
    let min_len = match id.api_key() {
        ApiKey::Required { min_len } => min_len,
        ApiKey::Optional => 1,
    };
    match (&key, id.api_key()) {
        (Some(k), _) if k.expose().trim().len() < min_len => {
            r.error(
                f.path_of("apiKey"),
                format!("must be at least {min_len} characters"),
            );
        }
        (None, ApiKey::Required { .. }) if enabled => {
            r.error(
                f.path_of("apiKey"),
                format!("is required: {id} needs an API key when enabled"),
            );
        }
        _ => {}
    }
    key
}

fn read_rps(r: &mut Report, f: &mut Fields<'_>, id: SourceId) -> Option<f64> {
    let explicit_null = f.is_null("rps");
    match f.number(r, "rps") {
        Some(v) if v <= 0.0 => {
            r.error(f.path_of("rps"), "must be > 0 (use null for no limit)");
            Some(id.default_rps())
        }
        Some(v) if v > 1000.0 => {
            r.error(f.path_of("rps"), "must be <= 1000");
            Some(id.default_rps())
        }
        Some(v) => Some(v),
        None if explicit_null => None,
        None => Some(id.default_rps()),
    }
}

fn read_use_proxy(r: &mut Report, f: &mut Fields<'_>, has_global_proxy: bool) -> UseProxy {
    let path = f.path_of("useProxy");
    let absent = serde_json::Value::Bool(source::USE_PROXY);
    match f.get("useProxy").unwrap_or(&absent) {
        serde_json::Value::Bool(false) => UseProxy::None,
        serde_json::Value::Bool(true) => {
            if !has_global_proxy {
                r.error(
                    path,
                    "is true but priceAggregatorConfig.proxy is not set; set the global proxy or give a proxy URL here",
                );
            }
            UseProxy::Global
        }
        serde_json::Value::String(s) => url(r, &path, s, &["http", "https"])
            .map(UseProxy::Own)
            .unwrap_or(UseProxy::None),
        _ => {
            r.error(path, "must be true, false or a proxy URL");
            UseProxy::None
        }
    }
}

fn read_stream(r: &mut Report, mut f: Fields<'_>) -> StreamConfig {
    let ws_url = f
        .string(r, "wsUrl")
        .and_then(|s| url(r, &f.path_of("wsUrl"), s, &["ws", "wss"]));
    let stream = StreamConfig {
        auto_reconnect: f.boolean_or(r, "autoReconnect", source::STREAM_AUTO_RECONNECT),
        reconnect_interval: f.millis(
            r,
            "reconnectInterval",
            1000,
            3_600_000,
            source::STREAM_RECONNECT_INTERVAL_MS,
        ),
        max_reconnect_attempts: f.integer_or(
            r,
            "maxReconnectAttempts",
            0,
            100,
            source::STREAM_MAX_RECONNECT_ATTEMPTS,
        ) as u32,
        heartbeat_interval: f.millis(
            r,
            "heartbeatInterval",
            5000,
            3_600_000,
            source::STREAM_HEARTBEAT_INTERVAL_MS,
        ),
        ws_url,
        batch_size: f.integer(r, "batchSize", 1, 500).map(|v| v as u32),
        rate_limit: f.integer(r, "rateLimit", 10, 10_000).map(ms),
    };
    f.finish(r, &[]);
    stream
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: serde_json::Value, proxy: bool) -> (BTreeMap<SourceId, SourceConfig>, Report) {
        let mut r = Report::default();
        let f = Fields::of(&mut r, "s", &v).expect("object");
        let out = read_sources(&mut r, f, proxy);
        (out, r)
    }

    #[test]
    fn absent_sources_are_off_and_present_ones_on() {
        let (s, r) = read(json!({"okx": {}, "kraken": {"enabled": false}}), false);
        assert!(r.is_ok(), "{:?}", r.problems);
        assert_eq!(s.len(), 2);
        assert!(s[&SourceId::Okx].enabled);
        assert!(!s[&SourceId::Kraken].enabled);
        assert_eq!(s[&SourceId::Okx].rps, Some(10.0));
    }

    #[test]
    fn rps_below_one_is_fine_zero_is_not_null_is_unlimited() {
        let (s, r) = read(
            json!({"okx": {"rps": 0.5}, "kraken": {"rps": null}, "bybit": {"rps": 0}}),
            false,
        );
        assert_eq!(s[&SourceId::Okx].rps, Some(0.5));
        assert_eq!(s[&SourceId::Kraken].rps, None);
        assert_eq!(
            r.problems[0].to_string(),
            "s.bybit.rps: must be > 0 (use null for no limit)"
        );
    }

    #[test]
    fn api_keys_are_required_only_when_enabled() {
        let (_, r) = read(
            json!({"finnhub": {}, "alphavantage": {"enabled": false}}),
            false,
        );
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].path, "s.finnhub.apiKey");
    }

    #[test]
    fn use_proxy_needs_a_proxy() {
        let (_, r) = read(json!({"yahoofinance": {"useProxy": true}}), false);
        assert_eq!(r.problems[0].path, "s.yahoofinance.useProxy");
        let (s, r) = read(json!({"yahoofinance": {"useProxy": "http://p:1"}}), false);
        assert!(r.is_ok());
        assert!(matches!(
            s[&SourceId::YahooFinance].use_proxy,
            UseProxy::Own(_)
        ));
    }

    #[test]
    fn stream_and_batch_only_where_the_source_has_them() {
        let (_, r) = read(
            json!({"kucoin": {"stream": {}, "maxBatchSize": 10}, "okx": {"maxBatchSize": 201}}),
            false,
        );
        let paths: Vec<_> = r.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "s.okx.maxBatchSize",
                "s.kucoin.stream",
                "s.kucoin.maxBatchSize"
            ]
        );
    }

    #[test]
    fn both_names_of_exchangerate_host_resolve() {
        assert_eq!(
            SourceId::parse("exchangeratehost"),
            Some(SourceId::ExchangeRateHost)
        );
        assert_eq!(
            SourceId::parse("exchangerate-host"),
            Some(SourceId::ExchangeRateHost)
        );
        assert_eq!(SourceId::parse("nope"), None);
    }
}
