//! The configuration reference (docs/operator/configuration.md) against the code: every fixed
//! default in [`super::defaults`] is documented with the same value, every default the reference shows is
//! one the code has, every field a reader asks for is documented, and the example validates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::defaults::*;

const REFERENCE: &str = "docs/operator/configuration.md";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Each field with a fixed default, by its path in the reference, and that default as the
/// reference writes it (the first word of its `default` cell).
fn expected() -> Vec<(&'static str, String)> {
    fn n(v: impl Into<u128>) -> String {
        v.into().to_string()
    }
    fn b(v: bool) -> String {
        v.to_string()
    }
    fn t(v: impl ToString) -> String {
        v.to_string()
    }
    vec![
        ("pgDatabase", t(solution::PG_DATABASE)),
        ("pgPort", n(solution::PG_PORT)),
        ("spSecretsDir", t(solution::SP_SECRETS_DIR)),
        ("maxRestarts", n(solution::MAX_RESTARTS)),
        ("chainlinkNodeName", t(solution::CHAINLINK_NODE_NAME)),
        (
            "balanceTopupCheckIntervalMs",
            n(solution::BALANCE_TOPUP_CHECK_INTERVAL_MS),
        ),
        ("faucetMinWei", n(solution::FAUCET_MIN_WEI)),
        ("faucetTopupWei", n(solution::FAUCET_TOPUP_WEI)),
        ("restartWindowMs", n(solution::RESTART_WINDOW_MS)),
        (
            "supervisor.restartBackoffInitialMs",
            n(supervisor::RESTART_BACKOFF_INITIAL_MS),
        ),
        (
            "supervisor.restartBackoffMaxMs",
            n(supervisor::RESTART_BACKOFF_MAX_MS),
        ),
        (
            "supervisor.logMaxFileBytes",
            n(supervisor::LOG_MAX_FILE_BYTES),
        ),
        ("supervisor.logArchives", n(supervisor::LOG_ARCHIVES)),
        ("ports.supervisor", n(ports::SUPERVISOR)),
        ("ports.processMetrics", n(ports::PROCESS_METRICS)),
        ("ports.alerts", n(ports::ALERTS)),
        ("ports.nodeApiBase", n(ports::NODE_API_BASE)),
        ("ports.nodeP2pBase", n(ports::NODE_P2P_BASE)),
        ("ports.listenHost", t(ports::LISTEN_HOST)),
        ("don.recheckMs", n(don::RECHECK_MS)),
        ("node.retentionDays", n(node::RETENTION_DAYS)),
        ("node.observationTimeoutMs", n(node::OBSERVATION_TIMEOUT_MS)),
        ("node.listenHost", t(ports::LISTEN_HOST)),
        ("node.maxFrameBytes", n(node::MAX_FRAME_BYTES)),
        ("consensus.deltaProgressMs", n(consensus::DELTA_PROGRESS_MS)),
        ("consensus.deltaResendMs", n(consensus::DELTA_RESEND_MS)),
        ("consensus.deltaRoundMs", n(consensus::DELTA_ROUND_MS)),
        ("consensus.deltaGraceMs", n(consensus::DELTA_GRACE_MS)),
        ("consensus.deltaStageMs", n(consensus::DELTA_STAGE_MS)),
        ("consensus.rMax", n(consensus::R_MAX)),
        (
            "consensus.skipChainSpecificChecks",
            b(consensus::SKIP_CHAIN_SPECIFIC_CHECKS),
        ),
        ("chain.enabled", b(chain::ENABLED)),
        ("chain.rpcTimeoutMs", n(chain::RPC_TIMEOUT_MS)),
        ("chain.gasType", t(chain::GAS_TYPE)),
        ("chain.gasLimit", n(chain::GAS_LIMIT)),
        ("chain.maxGasPriceWei", n(chain::MAX_GAS_PRICE_WEI)),
        ("chain.gasBumpPercent", n(chain::GAS_BUMP_PERCENT)),
        ("chain.receiptTimeoutMs", n(chain::RECEIPT_TIMEOUT_MS)),
        ("chain.rebroadcastAfterMs", n(chain::REBROADCAST_AFTER_MS)),
        ("chain.maxLogRange", n(chain::MAX_LOG_RANGE)),
        (
            "chain.contractPollIntervalMs",
            n(chain::CONTRACT_POLL_INTERVAL_MS),
        ),
        ("chain.setConfigFunction", t(chain::SET_CONFIG_FUNCTION)),
        ("chain.configureContracts", b(chain::CONFIGURE_CONTRACTS)),
        ("chain.payee", t(chain::PAYEE)),
        ("feeds[].alphaPPB", n(feed::ALPHA_PPB)),
        ("feeds[].heartbeatMs", n(feed::HEARTBEAT_MS)),
        ("telemetry.targets[].enabled", b(push_target::ENABLED)),
        (
            "telemetry.targets[].intervalMs",
            n(push_target::INTERVAL_MS),
        ),
        ("telemetry.targets[].timeoutMs", n(push_target::TIMEOUT_MS)),
        ("telemetry.targets[].bufferMs", n(push_target::BUFFER_MS)),
        ("telemetry.targets[].batchSize", n(push_target::BATCH_SIZE)),
        ("alerts.intervalMs", n(alerts::INTERVAL_MS)),
        ("alerts.forMs", n(alerts::FOR_MS)),
        ("alerts.repeatIntervalMs", n(alerts::REPEAT_INTERVAL_MS)),
        (
            "alerts.maxNotificationsPerHour",
            n(alerts::MAX_NOTIFICATIONS_PER_HOUR),
        ),
        ("alerts.heartbeatGraceMs", n(alerts::HEARTBEAT_GRACE_MS)),
        ("alerts.maxSpreadPpb", n(alerts::MAX_SPREAD_PPB)),
        (
            "alerts.pegged[].maxDeviationPpb",
            n(alerts::PEG_MAX_DEVIATION_PPB),
        ),
        ("alerts.requireQuote", b(alerts::REQUIRE_QUOTE)),
        ("alerts.channels[].enabled", b(alerts::CHANNEL_ENABLED)),
        (
            "alerts.channels[].minSeverity",
            t(alerts::CHANNEL_MIN_SEVERITY),
        ),
        ("alerts.channels[].timeoutMs", n(alerts::CHANNEL_TIMEOUT_MS)),
        ("alerts.channels[].apiUrl", t(alerts::TELEGRAM_API_URL)),
        ("priceAggregatorConfig.port", n(aggregator::PORT)),
        ("priceAggregatorConfig.host", t(ports::LISTEN_HOST)),
        (
            "priceAggregatorConfig.aggregation.minSources",
            n(aggregator::MIN_SOURCES),
        ),
        (
            "priceAggregatorConfig.aggregation.maxDeviationPpb",
            n(aggregator::MAX_DEVIATION_PPB),
        ),
        (
            "priceAggregatorConfig.maxPairsPerRequest",
            n(aggregator::MAX_PAIRS_PER_REQUEST),
        ),
        (
            "priceAggregatorConfig.maxTrackedPairs",
            n(aggregator::MAX_TRACKED_PAIRS),
        ),
        (
            "priceAggregatorConfig.logger.level",
            t(aggregator::LOG_LEVEL),
        ),
        (
            "priceAggregatorConfig.logger.isPrettyEnabled",
            b(aggregator::LOG_PRETTY),
        ),
        (
            "priceAggregatorConfig.refetch.enabled",
            b(aggregator::REFETCH_ENABLED),
        ),
        (
            "priceAggregatorConfig.refetch.staleTriggerBeforeExpiry",
            n(aggregator::STALE_TRIGGER_BEFORE_EXPIRY_MS),
        ),
        (
            "priceAggregatorConfig.refetch.batchInterval",
            n(aggregator::BATCH_INTERVAL_MS),
        ),
        (
            "priceAggregatorConfig.refetch.minTimeBetweenRefreshes",
            n(aggregator::MIN_TIME_BETWEEN_REFRESHES_MS),
        ),
        (
            "priceAggregatorConfig.refetch.failedPairsRetry.enabled",
            b(aggregator::FAILED_PAIRS_RETRY_ENABLED),
        ),
        (
            "priceAggregatorConfig.refetch.failedPairsRetry.maxAttempts",
            n(aggregator::FAILED_PAIRS_RETRY_MAX_ATTEMPTS),
        ),
        (
            "priceAggregatorConfig.refetch.failedPairsRetry.retryDelay",
            n(aggregator::FAILED_PAIRS_RETRY_DELAY_MS),
        ),
        (
            "priceAggregatorConfig.refetch.failedPairsRetry.checkInterval",
            n(aggregator::FAILED_PAIRS_CHECK_INTERVAL_MS),
        ),
        (
            "priceAggregatorConfig.quotes.requestTimeoutMs",
            n(aggregator::QUOTE_REQUEST_TIMEOUT_MS),
        ),
        (
            "priceAggregatorConfig.pairCleanup.enabled",
            b(aggregator::PAIR_CLEANUP_ENABLED),
        ),
        (
            "priceAggregatorConfig.pairCleanup.inactiveTimeoutMs",
            n(aggregator::PAIR_INACTIVE_TIMEOUT_MS),
        ),
        (
            "priceAggregatorConfig.pairCleanup.cleanupIntervalMs",
            n(aggregator::PAIR_CLEANUP_INTERVAL_MS),
        ),
        (
            "priceAggregatorConfig.marketData.coingeckoGlobal.enabled",
            b(aggregator::COINGECKO_GLOBAL_ENABLED),
        ),
        (
            "priceAggregatorConfig.marketData.coingeckoGlobal.refreshIntervalMs",
            n(aggregator::COINGECKO_GLOBAL_REFRESH_INTERVAL_MS),
        ),
        (
            "priceAggregatorConfig.marketData.coingeckoGlobal.useProxy",
            b(aggregator::COINGECKO_GLOBAL_USE_PROXY),
        ),
        (
            "priceAggregatorConfig.sources.<name>.enabled",
            b(source::ENABLED),
        ),
        (
            "priceAggregatorConfig.sources.<name>.ttl",
            n(source::TTL_MS),
        ),
        (
            "priceAggregatorConfig.sources.<name>.maxConcurrent",
            n(source::MAX_CONCURRENT),
        ),
        (
            "priceAggregatorConfig.sources.<name>.timeoutMs",
            n(source::TIMEOUT_MS),
        ),
        (
            "priceAggregatorConfig.sources.<name>.useProxy",
            b(source::USE_PROXY),
        ),
        (
            "priceAggregatorConfig.sources.<name>.maxRetries",
            n(source::MAX_RETRIES),
        ),
        (
            "priceAggregatorConfig.sources.<name>.refetch",
            b(source::REFETCH),
        ),
        (
            "priceAggregatorConfig.sources.<name>.stream.autoReconnect",
            b(source::STREAM_AUTO_RECONNECT),
        ),
        (
            "priceAggregatorConfig.sources.<name>.stream.reconnectInterval",
            n(source::STREAM_RECONNECT_INTERVAL_MS),
        ),
        (
            "priceAggregatorConfig.sources.<name>.stream.maxReconnectAttempts",
            n(source::STREAM_MAX_RECONNECT_ATTEMPTS),
        ),
        (
            "priceAggregatorConfig.sources.<name>.stream.heartbeatInterval",
            n(source::STREAM_HEARTBEAT_INTERVAL_MS),
        ),
    ]
}

/// Rows whose `default` cell starts with a number or a boolean that is not a fixed default of
/// the code, each with the reason.
const NOT_FIXED: &[(&str, &str)] = &[
    // `"1"` is the only value allowed, not a default that could be configured otherwise.
    ("bootstrapNodes", "the bootstrap is always node 1"),
    ("nodesList", "every node, 1 … totalNodes"),
    (
        "chain.maxFeePerGasWei",
        "2 × the base fee + the tip, from the node",
    ),
];

/// The cells of a markdown table row; `|` inside `code` does not split.
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    for c in line.trim().trim_start_matches('|').chars() {
        match c {
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '|' if !in_code => out.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    out
}

/// Every documented field with the first word of its `default` cell (backticks, quotes and bold
/// removed).
fn documented(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let row = cells(line);
        let [field, _type, default, ..] = row.as_slice() else {
            continue;
        };
        let first = default
            .replace(['`', '"'], "")
            .replace("**", "")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned();
        for name in field.split('`').skip(1).step_by(2) {
            out.insert(name.to_owned(), first.clone());
        }
    }
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_fixed_default_is_documented_with_the_value_the_code_uses() {
    let doc = documented(&read(&repo().join(REFERENCE)));
    let mut wrong = Vec::new();
    for (field, value) in expected() {
        match doc.get(field) {
            None => wrong.push(format!("{field}: missing from {REFERENCE}")),
            Some(shown) if *shown != value => wrong.push(format!(
                "{field}: {REFERENCE} says the default is {shown:?}, the code's is {value:?}"
            )),
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_default_the_reference_shows_is_one_the_code_has() {
    let doc = documented(&read(&repo().join(REFERENCE)));
    let known: Vec<&str> = expected().iter().map(|(f, _)| *f).collect();
    let literal = |s: &str| s.parse::<u128>().is_ok() || s == "true" || s == "false";
    let unknown: Vec<String> = doc
        .iter()
        .filter(|(field, first)| literal(first) && !known.contains(&field.as_str()))
        .filter(|(field, _)| !NOT_FIXED.iter().any(|(f, _)| f == field))
        .map(|(field, first)| {
            format!("{field}: documented default {first} has no constant in config::defaults")
        })
        .collect();
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
}

/// The member names the readers ask for, found in their source: the string literal right after
/// the report (`r, "name"`), the section (`f, "name"`) or in `get`/`has`/`is_null`.
fn keys_read_in(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut keys = Vec::new();
    let mut rest = code;
    while let Some(start) = rest.find('"') {
        let before = rest[..start].trim_end();
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { break };
        let literal = &after[..end];
        let is_key = literal.starts_with(|c: char| c.is_ascii_lowercase())
            && literal.chars().all(|c| c.is_ascii_alphanumeric());
        let asked = ["r,", "f,", "get(", "has(", "is_null("].iter().any(|p| {
            before.strip_suffix(p).is_some_and(|head| {
                // `r,` and `f,` are the report and the fields, not the end of `Error,`.
                !p.ends_with(',') || !head.ends_with(|c: char| c.is_alphanumeric() || c == '_')
            })
        });
        if is_key && asked {
            keys.push(literal.to_owned());
        }
        rest = &after[end + 1..];
    }
    keys
}

#[test]
fn every_field_a_reader_asks_for_is_in_the_reference() {
    let doc = documented(&read(&repo().join(REFERENCE)));
    // A section (`priceAggregatorConfig.refetch`) is documented through its fields' paths.
    let segments: BTreeSet<&str> = doc
        .keys()
        .flat_map(|field| field.split('.'))
        .map(|segment| segment.trim_end_matches("[]"))
        .collect();
    // `solution` is the root every path starts in.
    let ignored = [crate::config::schema::IGNORED_FIELDS, &["solution"]].concat();
    let dir = repo().join("src/config/schema");
    let mut missing = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        // The readers; a reader's folder holds its tests, which read nothing.
        .filter(|path| path.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let mut seen = 0;
    for file in files {
        for key in keys_read_in(&read(&file)) {
            seen += 1;
            if !segments.contains(key.as_str()) && !ignored.contains(&key.as_str()) {
                missing.push(format!(
                    "{key} (read in {}): missing from {REFERENCE}",
                    file.display()
                ));
            }
        }
    }
    assert!(
        seen > 100,
        "found only {seen} field names: the scan is broken"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_example_configuration_validates() {
    let path = repo().join("configuration.example.json");
    let document: serde_json::Value =
        serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Err(e) = crate::config::validate_document(&document) {
        panic!("configuration.example.json: {e}");
    }
}

#[test]
fn absent_sections_read_as_their_documented_defaults() {
    use crate::config::schema::chain_options::ChainOptions;
    use std::time::Duration;
    let chain = ChainOptions::default();
    assert_eq!(chain.gas_limit, chain::GAS_LIMIT);
    assert_eq!(chain.max_gas_price_wei, chain::MAX_GAS_PRICE_WEI);
    assert_eq!(
        chain.contract_poll_interval,
        Duration::from_millis(chain::CONTRACT_POLL_INTERVAL_MS)
    );
    let alerting = crate::config::schema::alerts::AlertsConfig::default();
    assert_eq!(
        alerting.repeat_interval,
        Some(Duration::from_millis(alerts::REPEAT_INTERVAL_MS))
    );
}
