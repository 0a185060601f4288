//! Every fixed default of the configuration, in one place, grouped as the configuration reference
//! (docs/operator/configuration.md) groups its tables.
//!
//! The readers in [`super::schema`] take their defaults from here and nowhere else, so the value a
//! field gets when absent is written once. A test (`config::doc_check`) compares each of these
//! with the default the reference documents and fails naming the field when they differ or the
//! field is missing from the reference. Defaults that depend on other fields (the transmission
//! schedule, `f`, `primaryNodes`, per-source request rates) stay with the code that derives them.
//!
//! Integers are `u64` (the type `Fields::integer` returns) and wei amounts `u128`, so a reader
//! writes `.unwrap_or(CONST)` without conversions.

/// Top-level reference fields of `solution`.
pub mod solution {
    pub const PG_DATABASE: &str = "chainlink_node";
    pub const PG_PORT: u64 = 5432;
    pub const SP_SECRETS_DIR: &str = "/sp/secrets";
    pub const MAX_RESTARTS: u64 = 3;
    pub const CHAINLINK_NODE_NAME: &str = "enclave";
    pub const BALANCE_TOPUP_CHECK_INTERVAL_MS: u64 = 3_600_000;
    /// Also the default `alerts.balanceThresholdWei` and the Prometheus rule's threshold.
    pub const FAUCET_MIN_WEI: u128 = 20_000_000_000_000;
    pub const FAUCET_TOPUP_WEI: u128 = 10_000_000_000_000;
    pub const RESTART_WINDOW_MS: u64 = 300_000;
}

/// `supervisor`.
pub mod supervisor {
    pub const RESTART_BACKOFF_INITIAL_MS: u64 = 1000;
    pub const RESTART_BACKOFF_MAX_MS: u64 = 30_000;
    pub const LOG_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
    pub const LOG_ARCHIVES: u64 = 10;
}

/// `ports`.
pub mod ports {
    use std::net::{IpAddr, Ipv4Addr};

    /// Also the default of `node.listenHost` and `priceAggregatorConfig.host`: nothing is
    /// reachable from outside the enclave unless the configuration says so.
    pub const LISTEN_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    pub const SUPERVISOR: u64 = 3002;
    pub const PROCESS_METRICS: u64 = 3003;
    pub const ALERTS: u64 = 3004;
    pub const NODE_API_BASE: u64 = 6600;
    pub const NODE_P2P_BASE: u64 = 9900;
}

/// `don` (a DON across enclaves).
pub mod don {
    /// An admitted member's evidence is verified again this often (and at every reconnection).
    pub const RECHECK_MS: u64 = 600_000;
}

/// `node`.
pub mod node {
    pub const RETENTION_DAYS: u64 = 7;
    /// The reference deployment's OCR `ObservationTimeout` (ocr-and-sources.md §0).
    pub const OBSERVATION_TIMEOUT_MS: u64 = 5_000;
    pub const MAX_FRAME_BYTES: u64 = 1 << 20;
}

/// `consensus`: the values the reference deployment uses (ocr-and-sources.md §0).
pub mod consensus {
    pub const DELTA_PROGRESS_MS: u64 = 35_000;
    pub const DELTA_RESEND_MS: u64 = 17_000;
    pub const DELTA_ROUND_MS: u64 = 30_000;
    pub const DELTA_GRACE_MS: u64 = 12_000;
    pub const DELTA_STAGE_MS: u64 = 60_000;
    pub const R_MAX: u64 = 6;
    pub const SKIP_CHAIN_SPECIFIC_CHECKS: bool = false;
}

/// `chain`.
pub mod chain {
    pub const ENABLED: bool = true;
    pub const RPC_TIMEOUT_MS: u64 = 10_000;
    pub const GAS_TYPE: &str = "legacy";
    pub const GAS_LIMIT: u64 = 500_000;
    /// 1000 gwei.
    pub const MAX_GAS_PRICE_WEI: u128 = 1_000_000_000_000;
    pub const GAS_BUMP_PERCENT: u64 = 20;
    pub const RECEIPT_TIMEOUT_MS: u64 = 120_000;
    pub const REBROADCAST_AFTER_MS: u64 = 30_000;
    pub const MAX_LOG_RANGE: u64 = 5_000;
    pub const CONTRACT_POLL_INTERVAL_MS: u64 = 60_000;
    pub const SET_CONFIG_FUNCTION: &str = "superprotocol";
    pub const CONFIGURE_CONTRACTS: bool = false;
    pub const PAYEE: &str = "admin";
}

/// `feeds[]`.
pub mod feed {
    /// 0.5 %.
    pub const ALPHA_PPB: u64 = 5_000_000;
    pub const HEARTBEAT_MS: u64 = 86_400_000;
}

/// A push target: `telemetry.targets[]` and `priceAggregatorConfig.metricsPush`.
pub mod push_target {
    /// A listed `telemetry.targets[]` item is on unless it says otherwise.
    pub const ENABLED: bool = true;
    /// The reference's `metricsPush.enabled` defaults to false.
    pub const METRICS_PUSH_ENABLED: bool = false;
    pub const INTERVAL_MS: u64 = 30_000;
    pub const TIMEOUT_MS: u64 = 5000;
    pub const BUFFER_MS: u64 = 900_000;
    pub const BATCH_SIZE: u64 = 100;
}

/// `alerts`.
pub mod alerts {
    pub const INTERVAL_MS: u64 = 10_000;
    pub const FOR_MS: u64 = 30_000;
    /// 4 h.
    pub const REPEAT_INTERVAL_MS: u64 = 4 * 3_600_000;
    pub const MAX_NOTIFICATIONS_PER_HOUR: u64 = 6;
    pub const HEARTBEAT_GRACE_MS: u64 = 300_000;
    /// Used when `faucetMinWei` is not configured either.
    pub const BALANCE_THRESHOLD_WEI: u128 = super::solution::FAUCET_MIN_WEI;
    /// 2 %.
    pub const MAX_SPREAD_PPB: u64 = 20_000_000;
    /// 1 %.
    pub const PEG_MAX_DEVIATION_PPB: u64 = 10_000_000;
    pub const REQUIRE_QUOTE: bool = false;
    pub const CHANNEL_ENABLED: bool = true;
    pub const CHANNEL_MIN_SEVERITY: &str = "warning";
    pub const CHANNEL_TIMEOUT_MS: u64 = 10_000;
    pub const TELEGRAM_API_URL: &str = "https://api.telegram.org";
}

/// `priceAggregatorConfig`, with the reference's defaults.
pub mod aggregator {
    pub const PORT: u64 = 3000;
    pub const MIN_SOURCES: u64 = 1;
    /// 5 %.
    pub const MAX_DEVIATION_PPB: u64 = 50_000_000;
    pub const MAX_PAIRS_PER_REQUEST: u64 = 100;
    pub const MAX_TRACKED_PAIRS: u64 = 1000;
    pub const LOG_LEVEL: &str = "info";
    pub const LOG_PRETTY: bool = false;
    pub const REFETCH_ENABLED: bool = true;
    pub const STALE_TRIGGER_BEFORE_EXPIRY_MS: u64 = 3000;
    pub const BATCH_INTERVAL_MS: u64 = 1000;
    pub const MIN_TIME_BETWEEN_REFRESHES_MS: u64 = 2000;
    pub const FAILED_PAIRS_RETRY_ENABLED: bool = true;
    pub const FAILED_PAIRS_RETRY_MAX_ATTEMPTS: u64 = 50;
    pub const FAILED_PAIRS_RETRY_DELAY_MS: u64 = 10_000;
    pub const FAILED_PAIRS_CHECK_INTERVAL_MS: u64 = 30_000;
    pub const QUOTE_REQUEST_TIMEOUT_MS: u64 = 10_000;
    pub const PAIR_CLEANUP_ENABLED: bool = true;
    pub const PAIR_INACTIVE_TIMEOUT_MS: u64 = 7_200_000;
    pub const PAIR_CLEANUP_INTERVAL_MS: u64 = 300_000;
    /// When `marketData.coingeckoGlobal` is present; absent, it is off.
    pub const COINGECKO_GLOBAL_ENABLED: bool = true;
    pub const COINGECKO_GLOBAL_REFRESH_INTERVAL_MS: u64 = 60_000;
    pub const COINGECKO_GLOBAL_USE_PROXY: bool = false;
}

/// `priceAggregatorConfig.sources.<name>` (request rates are per source: `SourceId::default_rps`).
pub mod source {
    /// When the source is present; an absent source is off.
    pub const ENABLED: bool = true;
    pub const TTL_MS: u64 = 5000;
    pub const MAX_CONCURRENT: u64 = 10;
    pub const TIMEOUT_MS: u64 = 10_000;
    pub const USE_PROXY: bool = false;
    pub const MAX_RETRIES: u64 = 3;
    pub const REFETCH: bool = false;
    pub const STREAM_AUTO_RECONNECT: bool = true;
    pub const STREAM_RECONNECT_INTERVAL_MS: u64 = 5000;
    pub const STREAM_MAX_RECONNECT_ATTEMPTS: u64 = 10;
    pub const STREAM_HEARTBEAT_INTERVAL_MS: u64 = 30_000;
}
