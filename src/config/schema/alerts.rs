//! `alerts` (our addition): the enclave's own notifications (Slack, Discord, Telegram, a generic
//! JSON webhook) for when the metrics path is down and nobody sees Grafana's alerts. Off unless a
//! channel is configured. Webhook URLs, bot tokens and header values are secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;

use super::telemetry::read_headers;
use crate::config::defaults::alerts as defaults;
use crate::config::reader::{Fields, Report};
use crate::config::secret::Secret;

/// Every alert the enclave raises. The names are metric label values and message keys, so the
/// set is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertName {
    /// A feed's newest report (on chain, or the DON's without a chain) is older than its
    /// heartbeat plus `heartbeatGraceMs`.
    FeedNotReported,
    /// An oracle's `/health` says a feed completes no rounds (the node's per-feed status).
    FeedStalled,
    /// The price aggregator has no price for a feed: too few of its sources answer.
    SourcesUnavailable,
    /// A service restarted within the restart window.
    ServiceRestarted,
    /// One more restart within the window is tolerated; the one after stops the enclave.
    RestartLimitNear,
    /// A transmitter's balance is below the threshold.
    BalanceLow,
    /// No TDX quote binds the enclave's identity (`failed`; `unavailable` with `requireQuote`).
    AttestationFailed,
    /// The observations of a feed's newest report are spread wider than `maxSpreadPpb`.
    ObservationSpread,
    /// A pegged feed's price is farther from its peg than its `maxDeviationPpb`.
    Depeg,
    /// Another member of a DON across enclaves is not admitted (refused, or never reached).
    DonMemberNotAdmitted,
}

impl AlertName {
    pub const ALL: [AlertName; 10] = [
        AlertName::FeedNotReported,
        AlertName::FeedStalled,
        AlertName::SourcesUnavailable,
        AlertName::ServiceRestarted,
        AlertName::RestartLimitNear,
        AlertName::BalanceLow,
        AlertName::AttestationFailed,
        AlertName::ObservationSpread,
        AlertName::Depeg,
        AlertName::DonMemberNotAdmitted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertName::FeedNotReported => "feed_not_reported",
            AlertName::FeedStalled => "feed_stalled",
            AlertName::SourcesUnavailable => "sources_unavailable",
            AlertName::ServiceRestarted => "service_restarted",
            AlertName::RestartLimitNear => "restart_limit_near",
            AlertName::BalanceLow => "balance_low",
            AlertName::AttestationFailed => "attestation_failed",
            AlertName::ObservationSpread => "observation_spread",
            AlertName::Depeg => "depeg",
            AlertName::DonMemberNotAdmitted => "don_member_not_admitted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    pub fn severity(self) -> Severity {
        match self {
            AlertName::ServiceRestarted | AlertName::BalanceLow | AlertName::ObservationSpread => {
                Severity::Warning
            }
            _ => Severity::Critical,
        }
    }
}

impl fmt::Display for AlertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A URL whose path or query carries a secret (Slack's and Discord's webhook URLs are the
/// credential themselves). Only `scheme://host:port` is ever shown.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    url: Secret<String>,
    shown: String,
}

impl SecretUrl {
    /// The whole URL, to send to. Callers must not log or format it.
    pub fn expose(&self) -> &str {
        self.url.expose()
    }

    /// `scheme://host[:port]`: safe for logs.
    pub fn origin(&self) -> &str {
        &self.shown
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}/***\"", self.shown)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/***", self.shown)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChannelKind {
    Slack,
    Discord,
    Telegram,
    Webhook,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] = [
        ChannelKind::Slack,
        ChannelKind::Discord,
        ChannelKind::Telegram,
        ChannelKind::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Webhook => "webhook",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChannelTarget {
    /// Slack incoming webhook: `POST {"text": …}`.
    Slack { webhook_url: SecretUrl },
    /// Discord webhook: `POST {"content": …}` (at most 2000 characters).
    Discord { webhook_url: SecretUrl },
    /// Telegram Bot API `POST <api_url>/bot<token>/sendMessage` with `chat_id` and `text`.
    Telegram {
        api_url: String,
        bot_token: Secret<String>,
        chat_id: String,
    },
    /// Any receiver of the documented JSON body.
    Webhook {
        url: SecretUrl,
        headers: BTreeMap<String, Secret<String>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelConfig {
    pub target: ChannelTarget,
    /// Per request; retries come on top.
    pub timeout: Duration,
    /// Alerts below this severity are not sent to this channel.
    pub min_severity: Severity,
}

impl ChannelConfig {
    pub fn kind(&self) -> ChannelKind {
        match self.target {
            ChannelTarget::Slack { .. } => ChannelKind::Slack,
            ChannelTarget::Discord { .. } => ChannelKind::Discord,
            ChannelTarget::Telegram { .. } => ChannelKind::Telegram,
            ChannelTarget::Webhook { .. } => ChannelKind::Webhook,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeggedFeed {
    pub feed: String,
    pub peg: Decimal,
    /// Farther than this from the peg (parts per billion of the peg) is a depeg.
    pub max_deviation_ppb: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// No channel (or only disabled ones): the alerter does nothing.
    pub channels: Vec<ChannelConfig>,
    /// How often the enclave's state is collected and the rules evaluated.
    pub interval: Duration,
    /// A condition must hold this long before it fires (events such as a restart fire at once).
    pub for_duration: Duration,
    /// A still-firing alert is repeated this often; `None`: never.
    pub repeat_interval: Option<Duration>,
    /// Notifications per alert (and subject) per hour, bursts included.
    pub max_per_hour: u32,
    pub disabled: BTreeSet<AlertName>,
    pub heartbeat_grace: Duration,
    /// `None`: `faucetMinWei` when a faucet is configured, else
    /// [`defaults::BALANCE_THRESHOLD_WEI`].
    pub balance_threshold_wei: Option<u128>,
    pub max_spread_ppb: u64,
    pub pegged: Vec<PeggedFeed>,
    /// `unavailable` attestation (no TDX quote interface) counts as failed.
    pub require_quote: bool,
}

/// What an absent `alerts` section means: the defaults, read the one way they are read.
impl Default for AlertsConfig {
    fn default() -> Self {
        read_alerts(&mut Report::default(), Fields::empty("solution.alerts"))
    }
}

impl AlertsConfig {
    pub fn enabled(&self) -> bool {
        !self.channels.is_empty()
    }
}

pub fn read_alerts(r: &mut Report, mut f: Fields<'_>) -> AlertsConfig {
    let ms = Duration::from_millis;
    let mut channels = Vec::new();
    for (path, value) in f.array(r, "channels").unwrap_or_default() {
        if let Some(cf) = Fields::of(r, &path, value) {
            channels.extend(read_channel(r, cf));
        }
    }
    let interval = f.millis(r, "intervalMs", 1000, 3_600_000, defaults::INTERVAL_MS);
    let for_duration = f.millis(r, "forMs", 0, 86_400_000, defaults::FOR_MS);
    let repeat_interval = match f.integer(r, "repeatIntervalMs", 0, 604_800_000) {
        Some(0) => None,
        Some(v) if v < 60_000 => {
            r.error(
                f.path_of("repeatIntervalMs"),
                "must be 0 (never repeat) or between 60000 and 604800000",
            );
            Some(ms(defaults::REPEAT_INTERVAL_MS))
        }
        Some(v) => Some(ms(v)),
        None => Some(ms(defaults::REPEAT_INTERVAL_MS)),
    };
    let max_per_hour = f.integer_or(
        r,
        "maxNotificationsPerHour",
        1,
        3600,
        defaults::MAX_NOTIFICATIONS_PER_HOUR,
    ) as u32;
    let disabled = read_disabled(r, &mut f);
    let heartbeat_grace = f.millis(
        r,
        "heartbeatGraceMs",
        0,
        86_400_000,
        defaults::HEARTBEAT_GRACE_MS,
    );
    let balance_threshold_wei = f.big_integer(r, "balanceThresholdWei", 1);
    let max_spread_ppb = f.integer_or(
        r,
        "maxSpreadPpb",
        1,
        1_000_000_000,
        defaults::MAX_SPREAD_PPB,
    );
    let pegged = read_pegged(r, &mut f);
    let require_quote = f.boolean_or(r, "requireQuote", defaults::REQUIRE_QUOTE);
    f.finish(r, &[]);
    AlertsConfig {
        channels,
        interval,
        for_duration,
        repeat_interval,
        max_per_hour,
        disabled,
        heartbeat_grace,
        balance_threshold_wei,
        max_spread_ppb,
        pegged,
        require_quote,
    }
}

fn read_disabled(r: &mut Report, f: &mut Fields<'_>) -> BTreeSet<AlertName> {
    let mut out = BTreeSet::new();
    for (path, value) in f.array(r, "disabled").unwrap_or_default() {
        let name = match value {
            Value::String(s) => AlertName::parse(s),
            _ => None,
        };
        match name {
            Some(name) => {
                out.insert(name);
            }
            None => {
                let known: Vec<&str> = AlertName::ALL.iter().map(|a| a.as_str()).collect();
                r.error(
                    path,
                    format!("must be one of the alert names: {}", known.join(", ")),
                );
            }
        }
    }
    out
}

fn read_pegged(r: &mut Report, f: &mut Fields<'_>) -> Vec<PeggedFeed> {
    let mut out: Vec<PeggedFeed> = Vec::new();
    for (path, value) in f.array(r, "pegged").unwrap_or_default() {
        let Some(mut pf) = Fields::of(r, &path, value) else {
            continue;
        };
        let feed = pf.required_string(r, "feed").map(str::to_owned);
        let peg = pf.get("peg").map(|v| (pf.path_of("peg"), v));
        let peg = match peg {
            None => {
                r.error(pf.path_of("peg"), "is required (e.g. \"1.0\")");
                None
            }
            Some((peg_path, value)) => positive_decimal(r, &peg_path, value),
        };
        let max_deviation_ppb = pf.integer_or(
            r,
            "maxDeviationPpb",
            1,
            1_000_000_000,
            defaults::PEG_MAX_DEVIATION_PPB,
        );
        pf.finish(r, &[]);
        let (Some(feed), Some(peg)) = (feed, peg) else {
            continue;
        };
        if out.iter().any(|p| p.feed == feed) {
            r.error(format!("{path}.feed"), "repeats an earlier pegged feed");
            continue;
        }
        out.push(PeggedFeed {
            feed,
            peg,
            max_deviation_ppb,
        });
    }
    out
}

/// A decimal written as a string (`"1.0"`) or a JSON number (`1`).
fn positive_decimal(r: &mut Report, path: &str, value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let parsed = Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
        .filter(|d| d.is_sign_positive() && !d.is_zero());
    if parsed.is_none() {
        r.error(path, "must be a positive decimal number such as \"1.0\"");
    }
    parsed
}

fn read_channel(r: &mut Report, mut f: Fields<'_>) -> Option<ChannelConfig> {
    let enabled = f.boolean_or(r, "enabled", defaults::CHANNEL_ENABLED);
    let kind = f.required_string(r, "type").and_then(|t| {
        let kind = ChannelKind::ALL.into_iter().find(|k| k.as_str() == t);
        if kind.is_none() {
            r.error(
                f.path_of("type"),
                "must be one of: slack, discord, telegram, webhook",
            );
        }
        kind
    });
    let timeout = f.integer_or(r, "timeoutMs", 1000, 60_000, defaults::CHANNEL_TIMEOUT_MS);
    let min_severity = match f
        .string(r, "minSeverity")
        .unwrap_or(defaults::CHANNEL_MIN_SEVERITY)
    {
        "warning" => Severity::Warning,
        "critical" => Severity::Critical,
        _ => {
            r.error(f.path_of("minSeverity"), "must be warning or critical");
            Severity::Warning
        }
    };
    let target = match kind {
        Some(ChannelKind::Slack) => {
            secret_url(r, &mut f, "webhookUrl").map(|u| ChannelTarget::Slack { webhook_url: u })
        }
        Some(ChannelKind::Discord) => {
            secret_url(r, &mut f, "webhookUrl").map(|u| ChannelTarget::Discord { webhook_url: u })
        }
        Some(ChannelKind::Telegram) => read_telegram(r, &mut f),
        Some(ChannelKind::Webhook) => {
            let url = secret_url(r, &mut f, "url");
            let headers = read_headers(r, &mut f);
            url.map(|url| ChannelTarget::Webhook { url, headers })
        }
        // Without a known type, which other fields belong is unknown: one error is enough.
        None => return None,
    };
    f.finish(r, &[]);
    if !enabled {
        return None;
    }
    Some(ChannelConfig {
        target: target?,
        timeout: Duration::from_millis(timeout),
        min_severity,
    })
}

fn read_telegram(r: &mut Report, f: &mut Fields<'_>) -> Option<ChannelTarget> {
    let token = f.required_string(r, "botToken").and_then(|t| {
        // `<bot id>:<secret>` as BotFather issues it; never echoed.
        let valid = t.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !valid {
            r.error(
                f.path_of("botToken"),
                "must be a Telegram bot token (<digits>:<letters, digits, _ or ->)",
            );
            return None;
        }
        Some(Secret::from(t))
    });
    let chat_id = match f.get("chatId") {
        None => {
            r.error(f.path_of("chatId"), "is required");
            None
        }
        Some(Value::Number(n)) if n.is_i64() => Some(n.to_string()),
        Some(Value::String(s)) if is_chat_id(s) => Some(s.clone()),
        Some(_) => {
            r.error(
                f.path_of("chatId"),
                "must be a chat id (an integer such as -1001234567890) or @channelusername",
            );
            None
        }
    };
    let api_url = match f.string(r, "apiUrl") {
        None => Some(defaults::TELEGRAM_API_URL.to_owned()),
        Some(text) => {
            let path = f.path_of("apiUrl");
            crate::config::values::url(r, &path, text, &["http", "https"]).and_then(|u| {
                if u.expose().query().is_some() || u.expose().fragment().is_some() {
                    r.error(path, "must have no query or fragment");
                    return None;
                }
                Some(u.expose().as_str().trim_end_matches('/').to_owned())
            })
        }
    };
    Some(ChannelTarget::Telegram {
        api_url: api_url?,
        bot_token: token?,
        chat_id: chat_id?,
    })
}

fn is_chat_id(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let numeric =
        !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit());
    let username = s.strip_prefix('@').is_some_and(|u| {
        (5..=32).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    numeric || username
}

/// A required http(s) URL held as a secret. The message never repeats the text.
fn secret_url(r: &mut Report, f: &mut Fields<'_>, key: &str) -> Option<SecretUrl> {
    let path = f.path_of(key);
    let text = f.required_string(r, key)?;
    let parsed = crate::config::values::url(r, &path, text, &["http", "https"])?;
    let u = parsed.expose();
    let mut shown = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(port) = u.port() {
        shown.push_str(&format!(":{port}"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        r.error(
            path,
            "must not carry credentials in the URL (use headers for a webhook)",
        );
        return None;
    }
    Some(SecretUrl {
        url: Secret::from(u.as_str()),
        shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> (AlertsConfig, Report) {
        let mut r = Report::default();
        let f = Fields::of(&mut r, "solution.alerts", &v).expect("object");
        (read_alerts(&mut r, f), r)
    }

    fn paths(r: &Report) -> Vec<&str> {
        r.problems.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn an_empty_section_is_off_with_the_documented_defaults() {
        let (c, r) = read(json!({}));
        assert!(r.is_ok(), "{:?}", r.problems);
        assert!(!c.enabled());
        assert_eq!(c, AlertsConfig::default());
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.for_duration, Duration::from_secs(30));
        assert_eq!(c.repeat_interval, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(c.max_per_hour, 6);
    }

    #[test]
    fn every_channel_kind_reads() {
        let (c, r) = read(json!({"channels": [
            {"type": "slack", "webhookUrl": "https://hooks.slack.com/services/T0/B0/XyZ"},
            {"type": "discord", "webhookUrl": "https://discord.com/api/webhooks/1/tok", "minSeverity": "critical"},
            {"type": "telegram", "botToken": "123456:AbC-d_e", "chatId": -1001234567890_i64},
            {"type": "telegram", "botToken": "1:x", "chatId": "@alerts_channel", "apiUrl": "http://127.0.0.1:8081/"},
            {"type": "webhook", "url": "http://127.0.0.1:9000/hook", "headers": {"Authorization": "Bearer t"}, "timeoutMs": 2000},
            {"type": "slack", "enabled": false, "webhookUrl": "https://hooks.slack.com/services/x"},
        ]}));
        assert!(r.is_ok(), "{:?}", r.problems);
        assert!(c.enabled());
        let kinds: Vec<_> = c.channels.iter().map(ChannelConfig::kind).collect();
        use ChannelKind::*;
        assert_eq!(kinds, [Slack, Discord, Telegram, Telegram, Webhook]);
        assert_eq!(c.channels[1].min_severity, Severity::Critical);
        assert_eq!(c.channels[4].timeout, Duration::from_secs(2));
        match &c.channels[2].target {
            ChannelTarget::Telegram {
                api_url, chat_id, ..
            } => {
                assert_eq!(api_url, "https://api.telegram.org");
                assert_eq!(chat_id, "-1001234567890");
            }
            other => panic!("{other:?}"),
        }
        match &c.channels[3].target {
            ChannelTarget::Telegram { api_url, .. } => {
                assert_eq!(api_url, "http://127.0.0.1:8081")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let (c, _) = read(json!({"channels": [
            {"type": "slack", "webhookUrl": "https://hooks.slack.com/services/T0/B0/SECRET1"},
            {"type": "telegram", "botToken": "123:SECRET2", "chatId": 5},
            {"type": "webhook", "url": "https://h.example/p?key=SECRET3", "headers": {"X-Key": "SECRET4"}},
        ]}));
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("https://hooks.slack.com/***"), "{shown}");
        let (_, r) = read(json!({"channels": [
            {"type": "telegram", "botToken": "not a token SECRET5", "chatId": "x y"},
            {"type": "slack", "webhookUrl": "ftp://SECRET6"},
        ]}));
        let messages = format!("{:?}", r.problems);
        assert!(!messages.contains("SECRET"), "{messages}");
    }

    #[test]
    fn bad_fields_are_named() {
        let (_, r) = read(json!({
            "channels": [
                {"type": "pager"},
                {"type": "slack"},
                {"type": "telegram", "botToken": "abc", "chatId": true},
                {"type": "webhook", "url": "https://u:p@h.example/x", "minSeverity": "info"},
                {"type": "discord", "webhookUrl": "https://d.example/x", "colour": 1},
            ],
            "intervalMs": 10,
            "repeatIntervalMs": 5,
            "disabled": ["depeg", "nope"],
            "pegged": [
                {"feed": "USDC-USD", "peg": "one"},
                {"feed": "USDT-USD"},
                {"feed": "DAI-USD", "peg": 1, "maxDeviationPpb": 0},
                {"feed": "DAI-USD", "peg": "1.0"},
            ],
            "maxSpreadPpb": 0,
        }));
        assert_eq!(
            paths(&r),
            [
                "solution.alerts.channels[0].type",
                "solution.alerts.channels[1].webhookUrl",
                "solution.alerts.channels[2].botToken",
                "solution.alerts.channels[2].chatId",
                "solution.alerts.channels[3].minSeverity",
                "solution.alerts.channels[3].url",
                "solution.alerts.channels[4].colour",
                "solution.alerts.intervalMs",
                "solution.alerts.repeatIntervalMs",
                "solution.alerts.disabled[1]",
                "solution.alerts.maxSpreadPpb",
                "solution.alerts.pegged[0].peg",
                "solution.alerts.pegged[1].peg",
                "solution.alerts.pegged[2].maxDeviationPpb",
                "solution.alerts.pegged[3].feed",
            ]
        );
    }

    #[test]
    fn pegs_read_from_strings_and_numbers_exactly() {
        let (c, r) = read(json!({"pegged": [
            {"feed": "USDC-USD", "peg": "1.0"},
            {"feed": "EURC-EUR", "peg": 1, "maxDeviationPpb": 5000000},
            {"feed": "X", "peg": "0.0001"},
        ], "repeatIntervalMs": 0, "disabled": ["observation_spread"]}));
        assert!(r.is_ok(), "{:?}", r.problems);
        assert_eq!(c.pegged[0].peg, Decimal::from_str("1.0").unwrap());
        assert_eq!(
            c.pegged[0].max_deviation_ppb,
            defaults::PEG_MAX_DEVIATION_PPB
        );
        assert_eq!(c.pegged[1].peg, Decimal::ONE);
        assert_eq!(c.pegged[1].max_deviation_ppb, 5_000_000);
        assert_eq!(c.pegged[2].peg, Decimal::from_str("0.0001").unwrap());
        assert_eq!(c.repeat_interval, None);
        assert!(c.disabled.contains(&AlertName::ObservationSpread));
    }

    #[test]
    fn alert_names_round_trip_and_have_a_severity() {
        for a in AlertName::ALL {
            assert_eq!(AlertName::parse(a.as_str()), Some(a));
            assert!(a
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(AlertName::Depeg.severity(), Severity::Critical);
        assert_eq!(AlertName::BalanceLow.severity(), Severity::Warning);
    }
}
