//! `priceAggregatorConfig`: the reference's aggregator settings (reference-solution.md §1.3).

use std::collections::BTreeMap;
use std::time::Duration;

use super::sources::{read_sources, SourceConfig, SourceId};
use super::telemetry::{read_push_target, PushTarget};
use crate::config::defaults::{aggregator as defaults, ports};
use crate::config::reader::{Fields, Report};
use crate::config::values::{url, RedactedUrl};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Verbose,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefetchConfig {
    pub enabled: bool,
    pub stale_trigger_before_expiry: Duration,
    pub batch_interval: Duration,
    pub min_time_between_refreshes: Duration,
    pub failed_pairs_retry: FailedPairsRetry,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailedPairsRetry {
    pub enabled: bool,
    pub max_attempts: u32,
    pub retry_delay: Duration,
    pub check_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PairCleanup {
    pub enabled: bool,
    pub inactive_timeout: Duration,
    pub cleanup_interval: Duration,
}

/// A TTL override for one pair, optionally for one source only. The first match wins.
#[derive(Debug, Clone, PartialEq)]
pub struct PairTtl {
    pub base: String,
    pub quote: String,
    pub source: Option<SourceId>,
    pub ttl: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CoingeckoGlobal {
    pub enabled: bool,
    pub refresh_interval: Duration,
    pub use_proxy: bool,
}

/// Cross-source aggregation of `/quotes/batch` (our addition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregationConfig {
    /// A pair with fewer usable sources is unavailable.
    pub min_sources: usize,
    /// Quotes farther than this from the median (parts per billion) are left out.
    pub max_deviation_ppb: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggregatorConfig {
    pub port: u16,
    /// The address the HTTP API binds to (127.0.0.1 unless configured otherwise).
    pub host: std::net::IpAddr,
    pub aggregation: AggregationConfig,
    pub max_pairs_per_request: usize,
    pub max_tracked_pairs: usize,
    pub pairs_file_path: Option<String>,
    pub log_level: LogLevel,
    pub log_pretty: bool,
    pub metrics_push: Option<PushTarget>,
    pub sources: BTreeMap<SourceId, SourceConfig>,
    pub proxy: Option<RedactedUrl>,
    pub refetch: RefetchConfig,
    pub quote_request_timeout: Duration,
    pub pair_cleanup: PairCleanup,
    pub pairs_ttl: Vec<PairTtl>,
    pub coingecko_global: CoingeckoGlobal,
}

impl AggregatorConfig {
    /// The sources that are configured and enabled.
    pub fn enabled_sources(&self) -> impl Iterator<Item = SourceId> + '_ {
        self.sources
            .iter()
            .filter(|(_, s)| s.enabled)
            .map(|(id, _)| *id)
    }
}

/// Reference fields that have no effect (the reference does not use `environment` either).
const IGNORED: &[&str] = &["environment"];

pub fn read_aggregator(r: &mut Report, f: Option<Fields<'_>>) -> AggregatorConfig {
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.priceAggregatorConfig"));
    let proxy = f
        .string(r, "proxy")
        .and_then(|s| url(r, &f.path_of("proxy"), s, &["http", "https"]));
    let sources = f
        .object(r, "sources")
        .map(|sf| read_sources(r, sf, proxy.is_some()))
        .unwrap_or_default();
    let logger = f
        .object(r, "logger")
        .unwrap_or_else(|| Fields::empty("solution.priceAggregatorConfig.logger"));
    let (log_level, log_pretty) = read_logger(r, logger);
    let metrics_push = f
        .object(r, "metricsPush")
        .and_then(|mf| read_push_target(r, mf, true));
    let refetch = f.object(r, "refetch");
    let refetch = read_refetch(r, refetch);
    let quotes = f.object(r, "quotes");
    let quote_request_timeout = read_quotes(r, quotes);
    let cleanup = f.object(r, "pairCleanup");
    let pair_cleanup = read_pair_cleanup(r, cleanup);
    let market_data = f.object(r, "marketData");
    let coingecko_global = read_market_data(r, market_data, proxy.is_some());
    let host = f.ip_addr(
        r,
        "host",
        ports::LISTEN_HOST,
        "must be an IP address, such as 127.0.0.1",
    );
    let aggregation = f.object(r, "aggregation");
    let aggregation = read_aggregation(r, aggregation);
    let config = AggregatorConfig {
        port: f.port(r, "port", defaults::PORT),
        host,
        aggregation,
        max_pairs_per_request: f.integer_or(
            r,
            "maxPairsPerRequest",
            1,
            1000,
            defaults::MAX_PAIRS_PER_REQUEST,
        ) as usize,
        max_tracked_pairs: f.integer_or(
            r,
            "maxTrackedPairs",
            1,
            100_000,
            defaults::MAX_TRACKED_PAIRS,
        ) as usize,
        pairs_file_path: f.non_empty_string(r, "pairsFilePath").map(str::to_owned),
        log_level,
        log_pretty,
        metrics_push,
        sources,
        refetch,
        quote_request_timeout,
        pair_cleanup,
        pairs_ttl: read_pairs_ttl(r, &mut f),
        coingecko_global,
        proxy,
    };
    f.finish(r, IGNORED);
    config
}

fn read_aggregation(r: &mut Report, f: Option<Fields<'_>>) -> AggregationConfig {
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.priceAggregatorConfig.aggregation"));
    let config = AggregationConfig {
        min_sources: f.integer_or(r, "minSources", 1, 13, defaults::MIN_SOURCES) as usize,
        max_deviation_ppb: f.integer_or(
            r,
            "maxDeviationPpb",
            1,
            1_000_000_000,
            defaults::MAX_DEVIATION_PPB,
        ),
    };
    f.finish(r, &[]);
    config
}

fn read_logger(r: &mut Report, mut f: Fields<'_>) -> (LogLevel, bool) {
    let level = match f.string(r, "level").unwrap_or(defaults::LOG_LEVEL) {
        "info" => LogLevel::Info,
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "debug" => LogLevel::Debug,
        "verbose" => LogLevel::Verbose,
        _ => {
            r.error(
                f.path_of("level"),
                "must be one of error, warn, info, debug, verbose",
            );
            LogLevel::Info
        }
    };
    let pretty = f.boolean_or(r, "isPrettyEnabled", defaults::LOG_PRETTY);
    f.finish(r, &[]);
    (level, pretty)
}

fn read_refetch(r: &mut Report, f: Option<Fields<'_>>) -> RefetchConfig {
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.priceAggregatorConfig.refetch"));
    let retry = f.object(r, "failedPairsRetry").unwrap_or_else(|| {
        Fields::empty("solution.priceAggregatorConfig.refetch.failedPairsRetry")
    });
    let refetch = RefetchConfig {
        enabled: f.boolean_or(r, "enabled", defaults::REFETCH_ENABLED),
        stale_trigger_before_expiry: f.millis(
            r,
            "staleTriggerBeforeExpiry",
            100,
            60_000,
            defaults::STALE_TRIGGER_BEFORE_EXPIRY_MS,
        ),
        batch_interval: f.millis(r, "batchInterval", 100, 10_000, defaults::BATCH_INTERVAL_MS),
        min_time_between_refreshes: f.millis(
            r,
            "minTimeBetweenRefreshes",
            100,
            60_000,
            defaults::MIN_TIME_BETWEEN_REFRESHES_MS,
        ),
        failed_pairs_retry: read_failed_pairs_retry(r, retry),
    };
    f.finish(r, &[]);
    refetch
}

fn read_failed_pairs_retry(r: &mut Report, mut f: Fields<'_>) -> FailedPairsRetry {
    let retry = FailedPairsRetry {
        enabled: f.boolean_or(r, "enabled", defaults::FAILED_PAIRS_RETRY_ENABLED),
        max_attempts: f.integer_or(
            r,
            "maxAttempts",
            1,
            1000,
            defaults::FAILED_PAIRS_RETRY_MAX_ATTEMPTS,
        ) as u32,
        retry_delay: f.millis(
            r,
            "retryDelay",
            1000,
            3_600_000,
            defaults::FAILED_PAIRS_RETRY_DELAY_MS,
        ),
        check_interval: f.millis(
            r,
            "checkInterval",
            5000,
            300_000,
            defaults::FAILED_PAIRS_CHECK_INTERVAL_MS,
        ),
    };
    f.finish(r, &[]);
    retry
}

fn read_quotes(r: &mut Report, f: Option<Fields<'_>>) -> Duration {
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.priceAggregatorConfig.quotes"));
    let timeout = f.millis(
        r,
        "requestTimeoutMs",
        1000,
        60_000,
        defaults::QUOTE_REQUEST_TIMEOUT_MS,
    );
    f.finish(r, &[]);
    timeout
}

fn read_pair_cleanup(r: &mut Report, f: Option<Fields<'_>>) -> PairCleanup {
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.priceAggregatorConfig.pairCleanup"));
    let cleanup = PairCleanup {
        enabled: f.boolean_or(r, "enabled", defaults::PAIR_CLEANUP_ENABLED),
        inactive_timeout: f.millis(
            r,
            "inactiveTimeoutMs",
            10_000,
            86_400_000,
            defaults::PAIR_INACTIVE_TIMEOUT_MS,
        ),
        cleanup_interval: f.millis(
            r,
            "cleanupIntervalMs",
            1000,
            3_600_000,
            defaults::PAIR_CLEANUP_INTERVAL_MS,
        ),
    };
    f.finish(r, &[]);
    cleanup
}

fn read_pairs_ttl(r: &mut Report, f: &mut Fields<'_>) -> Vec<PairTtl> {
    let mut out = Vec::new();
    for (path, value) in f.array(r, "pairsTtl").unwrap_or_default() {
        let Some(mut ef) = Fields::of(r, &path, value) else {
            continue;
        };
        let pair = read_pair(r, &mut ef);
        let source = ef.string(r, "source").and_then(|s| {
            let id = SourceId::parse(s);
            if id.is_none() {
                r.error(ef.path_of("source"), "is not a known source");
            }
            id
        });
        let ttl = ef.integer(r, "ttl", 1000, u64::MAX);
        if ttl.is_none() && !ef.has("ttl") {
            r.error(ef.path_of("ttl"), "is required");
        }
        ef.finish(r, &[]);
        if let (Some((base, quote)), Some(ttl)) = (pair, ttl) {
            out.push(PairTtl {
                base,
                quote,
                source,
                ttl: Duration::from_millis(ttl),
            });
        }
    }
    out
}

fn read_pair(r: &mut Report, f: &mut Fields<'_>) -> Option<(String, String)> {
    let path = f.path_of("pair");
    let items = match f.array(r, "pair") {
        Some(items) => items,
        None => {
            if !f.has("pair") {
                r.error(&path, "is required");
            }
            return None;
        }
    };
    let names: Vec<String> = items
        .iter()
        .filter_map(|(p, v)| crate::config::reader::string(r, p, v).map(str::to_owned))
        .collect();
    match <[String; 2]>::try_from(names) {
        Ok([base, quote]) if !base.is_empty() && !quote.is_empty() => Some((base, quote)),
        _ => {
            r.error(path, "must be [base, quote], two non-empty strings");
            None
        }
    }
}

/// `marketData.coingeckoGlobal` is off when absent; present, its own fields have defaults.
fn read_market_data(r: &mut Report, f: Option<Fields<'_>>, has_proxy: bool) -> CoingeckoGlobal {
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.priceAggregatorConfig.marketData"));
    let cf = f.object(r, "coingeckoGlobal");
    let present = cf.is_some();
    let mut cf = cf.unwrap_or_else(|| {
        Fields::empty("solution.priceAggregatorConfig.marketData.coingeckoGlobal")
    });
    let out = CoingeckoGlobal {
        enabled: present && cf.boolean_or(r, "enabled", defaults::COINGECKO_GLOBAL_ENABLED),
        refresh_interval: cf.millis(
            r,
            "refreshIntervalMs",
            10_000,
            86_400_000,
            defaults::COINGECKO_GLOBAL_REFRESH_INTERVAL_MS,
        ),
        use_proxy: cf.boolean_or(r, "useProxy", defaults::COINGECKO_GLOBAL_USE_PROXY),
    };
    if out.use_proxy && !has_proxy {
        r.error(
            cf.path_of("useProxy"),
            "is true but priceAggregatorConfig.proxy is not set",
        );
    }
    cf.finish(r, &[]);
    f.finish(r, &[]);
    out
}
