//! The configuration model: the reference's `solution` fields (reference-solution.md §1.2) and
//! our additions, read with every problem collected.

pub mod aggregator;
pub mod alerts;
pub mod attestation;
pub mod chain_options;
pub mod consensus;
pub mod contract_admin;
pub mod don;
pub mod feeds;
pub mod node_options;
pub mod nodes;
pub mod sources;
pub mod telemetry;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use self::aggregator::{read_aggregator, AggregatorConfig};
use self::alerts::{read_alerts, AlertsConfig};
use self::attestation::{read_attestation, AttestationConfig};
use self::chain_options::{read_chain_options, ChainOptions};
use self::consensus::{read_consensus, ConsensusConfig};
use self::don::{read_don, DonConfig};
use self::feeds::{read_feeds, FeedConfig};
use self::node_options::{read_node_options, NodeOptions};
use self::nodes::{read_nodes, NodesConfig, PortsConfig};
use self::telemetry::{read_telemetry, TelemetryConfig};
use super::defaults::{solution, supervisor};
use super::reader::{Fields, Report};
use super::secret::Secret;
use super::values::{url, RedactedUrl};

/// Reference fields this project accepts for compatibility and does not use: there is no
/// Chainlink node, keystore, UI or job template here, and database credentials are generated
/// per node and per boot instead of configured in clear.
pub const IGNORED_FIELDS: &[&str] = &[
    "pgUser",
    "pgPassword",
    "chainlinkEmail",
    "chainlinkPassword",
    "chainlinkKeystorePassword",
    "setConfigBatchSize",
    "chainlinkGasPrice",
    "chainlinkNodeScAddress",
    "chainlinkFeedTemplatesDir",
    "chainlinkRpcWsUrl",
    "linkCa",
    "adminContractAddress",
    "diamondContractAddress",
    "balanceTopupRequired",
];

/// The whole verified configuration that every service works from.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub postgres: PostgresConfig,
    pub chain: ChainConfig,
    pub nodes: NodesConfig,
    pub ports: PortsConfig,
    pub secrets_dir: PathBuf,
    pub restart: RestartPolicy,
    pub logs: LogPolicy,
    pub faucet: Option<FaucetConfig>,
    pub proxy: OutboundProxy,
    pub aggregator: AggregatorConfig,
    pub feeds: Vec<FeedConfig>,
    pub telemetry: TelemetryConfig,
    pub consensus: ConsensusConfig,
    pub node: NodeOptions,
    pub chain_options: ChainOptions,
    pub alerts: AlertsConfig,
    pub attestation: AttestationConfig,
    /// A DON across enclaves (`None`: every node runs in this enclave).
    pub don: Option<DonConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Node i's database is `<database_prefix>_<i>`.
    pub database_prefix: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    pub chain_id: u64,
    pub rpc_http_url: RedactedUrl,
    /// Names this deployment (telemetry's default `instance` label).
    pub node_name: String,
}

/// A crashed service is restarted; more than `max_restarts` restarts within `window` stop the
/// whole container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub window: Duration,
    /// The first restart waits this long; each further restart within the window doubles it.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// Size-rotated service logs: `current` plus `archives` older files of at most `max_file_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPolicy {
    pub max_file_bytes: u64,
    pub archives: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaucetConfig {
    pub private_key: Secret<String>,
    pub check_interval: Duration,
    pub min_wei: u128,
    pub topup_wei: u128,
}

/// Proxy settings for the nodes' outbound requests (the reference maps them to `HTTP(S)_PROXY`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutboundProxy {
    pub http: Option<RedactedUrl>,
    pub https: Option<RedactedUrl>,
    pub no_proxy: Option<String>,
}

const MAX_DATABASE_PREFIX: usize = 60;

/// The error of `ports.listenHost` and `node.listenHost`, which are read alike.
const LISTEN_HOST_MESSAGE: &str = "must be an IP address such as 127.0.0.1 or 0.0.0.0";

/// Reads the solution object (without its `signature`). The config is returned even when the
/// report has problems, so that cross-field checks can still run and report theirs.
pub fn read_solution(r: &mut Report, solution: &Value) -> Option<Config> {
    let mut f = Fields::of(r, "solution", solution)?;
    let (nodes, ports) = read_nodes(r, &mut f);
    let postgres = read_postgres(r, &mut f);
    let chain = read_chain(r, &mut f);
    let supervisor = f.object(r, "supervisor");
    let (restart, logs) = read_supervisor(r, &mut f, supervisor);
    let faucet = read_faucet(r, &mut f);
    let proxy = read_proxy(r, &mut f);
    let secrets_dir = read_secrets_dir(r, &mut f);
    let aggregator = f.object(r, "priceAggregatorConfig");
    let aggregator = read_aggregator(r, aggregator);
    let feeds = f.array(r, "feeds").unwrap_or_default();
    let feeds = read_feeds(r, feeds);
    let telemetry = f
        .object(r, "telemetry")
        .map(|tf| read_telemetry(r, tf))
        .unwrap_or_default();
    let consensus = f.object(r, "consensus");
    let consensus = read_consensus(r, consensus, nodes.oracles().len());
    let node = f.object(r, "node");
    let node = read_node_options(r, node);
    let chain_options = f.object(r, "chain");
    let chain_options = read_chain_options(r, chain_options, &nodes.oracles());
    let alerts = f
        .object(r, "alerts")
        .map(|af| read_alerts(r, af))
        .unwrap_or_default();
    let attestation = f.object(r, "attestation");
    let chain_id = chain.as_ref().map(|c| c.chain_id);
    let attestation = read_attestation(r, attestation, chain_id);
    let don = f.object(r, "don");
    let don = read_don(r, don, &nodes);
    f.get("signature");
    f.finish(r, IGNORED_FIELDS);
    Some(Config {
        postgres,
        chain: chain?,
        nodes,
        ports,
        secrets_dir,
        restart,
        logs,
        faucet,
        proxy,
        aggregator,
        feeds,
        telemetry,
        consensus,
        node,
        chain_options,
        alerts,
        attestation,
        don,
    })
}

fn read_postgres(r: &mut Report, f: &mut Fields<'_>) -> PostgresConfig {
    let prefix = f
        .non_empty_string(r, "pgDatabase")
        .unwrap_or(solution::PG_DATABASE);
    let valid = prefix.len() <= MAX_DATABASE_PREFIX
        && prefix.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        r.error(
            f.path_of("pgDatabase"),
            format!("must be a lowercase SQL identifier ([a-z_][a-z0-9_]*, at most {MAX_DATABASE_PREFIX} characters); node i's database is <pgDatabase>_<i>"),
        );
    }
    PostgresConfig {
        database_prefix: prefix.to_owned(),
        port: f.port(r, "pgPort", solution::PG_PORT),
    }
}

fn read_chain(r: &mut Report, f: &mut Fields<'_>) -> Option<ChainConfig> {
    let chain_id = f.required_integer(r, "chainlinkChainId", 1, u64::MAX);
    let rpc = f
        .required_string(r, "chainlinkRpcHttpUrl")
        .and_then(|s| url(r, &f.path_of("chainlinkRpcHttpUrl"), s, &["http", "https"]));
    let node_name = f
        .non_empty_string(r, "chainlinkNodeName")
        .unwrap_or(solution::CHAINLINK_NODE_NAME)
        .to_owned();
    Some(ChainConfig {
        chain_id: chain_id?,
        rpc_http_url: rpc?,
        node_name,
    })
}

fn read_supervisor(
    r: &mut Report,
    f: &mut Fields<'_>,
    section: Option<Fields<'_>>,
) -> (RestartPolicy, LogPolicy) {
    let ms = Duration::from_millis;
    let max_restarts = f.integer_or(r, "maxRestarts", 1, 1000, solution::MAX_RESTARTS) as u32;
    let window = f.millis(
        r,
        "restartWindowMs",
        1000,
        86_400_000,
        solution::RESTART_WINDOW_MS,
    );
    let mut s = section.unwrap_or_else(|| Fields::empty("solution.supervisor"));
    let backoff_initial = s.integer_or(
        r,
        "restartBackoffInitialMs",
        10,
        60_000,
        supervisor::RESTART_BACKOFF_INITIAL_MS,
    );
    let backoff_max = s.integer_or(
        r,
        "restartBackoffMaxMs",
        10,
        600_000,
        supervisor::RESTART_BACKOFF_MAX_MS,
    );
    if backoff_max < backoff_initial {
        r.error(
            s.path_of("restartBackoffMaxMs"),
            "must be >= restartBackoffInitialMs",
        );
    }
    let logs = LogPolicy {
        max_file_bytes: s.integer_or(
            r,
            "logMaxFileBytes",
            4096,
            1 << 30,
            supervisor::LOG_MAX_FILE_BYTES,
        ),
        archives: s.integer_or(r, "logArchives", 0, 1000, supervisor::LOG_ARCHIVES) as u32,
    };
    s.finish(r, &[]);
    let restart = RestartPolicy {
        max_restarts,
        window,
        backoff_initial: ms(backoff_initial),
        backoff_max: ms(backoff_max),
    };
    (restart, logs)
}

fn read_faucet(r: &mut Report, f: &mut Fields<'_>) -> Option<FaucetConfig> {
    let key = f.string(r, "faucetPrivateKey");
    let interval = f.integer_or(
        r,
        "balanceTopupCheckIntervalMs",
        5000,
        u64::MAX,
        solution::BALANCE_TOPUP_CHECK_INTERVAL_MS,
    );
    let min_wei = f
        .big_integer(r, "faucetMinWei", 1)
        .unwrap_or(solution::FAUCET_MIN_WEI);
    let topup_wei = f
        .big_integer(r, "faucetTopupWei", 1)
        .unwrap_or(solution::FAUCET_TOPUP_WEI);
    let Some(key) = key else {
        for field in [
            "balanceTopupCheckIntervalMs",
            "faucetMinWei",
            "faucetTopupWei",
        ] {
            if f.has(field) {
                r.warn(f.path_of(field), "has no effect without faucetPrivateKey");
            }
        }
        return None;
    };
    let hex_part = key.trim().strip_prefix("0x").unwrap_or(key.trim());
    if let Err(message) = super::values::secp256k1_private_key(key) {
        r.error(f.path_of("faucetPrivateKey"), message);
    }
    if topup_wei < min_wei {
        r.warn(
            f.path_of("faucetTopupWei"),
            "is below faucetMinWei: one top-up will not lift a transmitter above the threshold",
        );
    }
    Some(FaucetConfig {
        private_key: Secret::from(hex_part),
        check_interval: Duration::from_millis(interval),
        min_wei,
        topup_wei,
    })
}

fn read_proxy(r: &mut Report, f: &mut Fields<'_>) -> OutboundProxy {
    let mut proxy_url = |r: &mut Report, key: &str| {
        let s = f.string(r, key)?;
        url(r, &f.path_of(key), s, &["http", "https"])
    };
    OutboundProxy {
        http: proxy_url(r, "httpProxy"),
        https: proxy_url(r, "httpsProxy"),
        no_proxy: f.string(r, "noProxy").map(str::to_owned),
    }
}

fn read_secrets_dir(r: &mut Report, f: &mut Fields<'_>) -> PathBuf {
    let dir = f
        .non_empty_string(r, "spSecretsDir")
        .unwrap_or(solution::SP_SECRETS_DIR);
    if !dir.starts_with('/') {
        r.error(f.path_of("spSecretsDir"), "must be an absolute path");
    }
    PathBuf::from(dir)
}
