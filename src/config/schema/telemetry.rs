//! Metric push targets: the `telemetry` section (every service) and the reference's
//! `priceAggregatorConfig.metricsPush` (the aggregator), which share one shape.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::defaults::push_target;
use crate::config::reader::{Fields, Report};
use crate::config::secret::Secret;
use crate::config::values::{is_label_name, url, RedactedUrl};

/// The receiver's protocol, told by the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Prometheus Pushgateway: `PUT <url>/metrics/job/<job>/instance/<instance>/…`.
    Pushgateway,
    /// VictoriaMetrics `…/api/v1/import/prometheus`, labels as `extra_label`.
    VictoriaMetrics,
}

pub const VICTORIA_IMPORT_PATH: &str = "/api/v1/import/prometheus";

#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushTarget {
    pub url: RedactedUrl,
    pub kind: TargetKind,
    /// The Pushgateway job; `None` means the pushing service's own name.
    pub job_name: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub grouping_labels: BTreeMap<String, String>,
    pub basic_auth: Option<BasicAuth>,
    /// Header values may be bearer tokens, so they are secrets.
    pub headers: BTreeMap<String, Secret<String>>,
    /// Sent as the `ttl` label and query parameter, as the reference's exporter does.
    pub ttl: Option<Duration>,
    /// How much history to keep for VictoriaMetrics while it is unreachable.
    pub buffer: Duration,
    /// Sample lines per request.
    pub batch_size: u32,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetryConfig {
    pub targets: Vec<PushTarget>,
    /// The `instance` label; defaults to `chainlinkNodeName`.
    pub instance: Option<String>,
}

pub fn read_telemetry(r: &mut Report, mut f: Fields<'_>) -> TelemetryConfig {
    let mut targets = Vec::new();
    for (path, value) in f.array(r, "targets").unwrap_or_default() {
        if let Some(tf) = Fields::of(r, &path, value) {
            targets.extend(read_push_target(r, tf, false));
        }
    }
    let instance = f.non_empty_string(r, "instance").map(str::to_owned);
    f.finish(r, &[]);
    TelemetryConfig { targets, instance }
}

/// Reads one target. `enabled` exists in the reference's `metricsPush` (default false); in
/// `telemetry.targets` a listed target is on unless it says `"enabled": false`.
pub fn read_push_target(
    r: &mut Report,
    mut f: Fields<'_>,
    reference_default_off: bool,
) -> Option<PushTarget> {
    let enabled = f.boolean_or(
        r,
        "enabled",
        if reference_default_off {
            push_target::METRICS_PUSH_ENABLED
        } else {
            push_target::ENABLED
        },
    );
    let target_url = match f.string(r, "url") {
        Some(s) => url(r, &f.path_of("url"), s, &["http", "https"]),
        None if enabled => {
            r.error(f.path_of("url"), "is required when the target is enabled");
            None
        }
        None => None,
    };
    let interval = f.integer_or(r, "intervalMs", 1000, 86_400_000, push_target::INTERVAL_MS);
    let timeout = f.integer_or(r, "timeoutMs", 100, 600_000, push_target::TIMEOUT_MS);
    if timeout > interval {
        r.warn(
            f.path_of("timeoutMs"),
            "is longer than intervalMs; pushes will overlap the next interval",
        );
    }
    let job_name = f.non_empty_string(r, "jobName").map(str::to_owned);
    let grouping_labels = read_labels(r, &mut f);
    let basic_auth = f
        .object(r, "basicAuth")
        .and_then(|bf| read_basic_auth(r, bf));
    let headers = read_headers(r, &mut f);
    let ttl = f
        .integer(r, "ttlSeconds", 60, 31_536_000)
        .map(Duration::from_secs);
    let buffer = f.integer_or(r, "bufferMs", 0, 86_400_000, push_target::BUFFER_MS);
    let batch_size = f.integer_or(r, "batchSize", 1, 1_000_000, push_target::BATCH_SIZE) as u32;
    f.finish(r, &[]);
    let url = target_url?;
    if !enabled {
        return None;
    }
    let kind = if url
        .path()
        .trim_end_matches('/')
        .ends_with(VICTORIA_IMPORT_PATH)
    {
        TargetKind::VictoriaMetrics
    } else {
        TargetKind::Pushgateway
    };
    Some(PushTarget {
        url,
        kind,
        job_name,
        interval: Duration::from_millis(interval),
        timeout: Duration::from_millis(timeout),
        grouping_labels,
        basic_auth,
        headers,
        ttl,
        buffer: Duration::from_millis(buffer),
        batch_size,
    })
}

fn read_labels(r: &mut Report, f: &mut Fields<'_>) -> BTreeMap<String, String> {
    let labels = f.string_map(r, "groupingLabels").unwrap_or_default();
    for name in labels.keys() {
        if !is_label_name(name) {
            r.error(
                format!("{}.{name}", f.path_of("groupingLabels")),
                "is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)",
            );
        }
    }
    labels
}

pub(crate) fn read_headers(r: &mut Report, f: &mut Fields<'_>) -> BTreeMap<String, Secret<String>> {
    let path = f.path_of("headers");
    let mut out = BTreeMap::new();
    for (name, value) in f.string_map(r, "headers").unwrap_or_default() {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            r.error(format!("{path}.{name}"), "is not a valid HTTP header name");
        } else if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            r.error(format!("{path}.{name}"), "must not contain line breaks");
        }
        out.insert(name, Secret::new(value));
    }
    out
}

fn read_basic_auth(r: &mut Report, mut f: Fields<'_>) -> Option<BasicAuth> {
    let username = f.required_string(r, "username").map(str::to_owned);
    let password = f.required_string(r, "password").map(Secret::from);
    if username.as_deref().is_some_and(|u| u.contains(':')) {
        r.error(
            f.path_of("username"),
            "must not contain ':' (basic auth separates user and password with it)",
        );
    }
    f.finish(r, &[]);
    Some(BasicAuth {
        username: username?,
        password: password?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(v: serde_json::Value, reference: bool) -> (Option<PushTarget>, Report) {
        let mut r = Report::default();
        let f = Fields::of(&mut r, "t", &v).expect("object");
        let t = read_push_target(&mut r, f, reference);
        (t, r)
    }

    #[test]
    fn kind_follows_the_url() {
        let (t, r) = target(
            json!({"url": "http://127.0.0.1:8428/api/v1/import/prometheus"}),
            false,
        );
        assert!(r.is_ok());
        assert_eq!(t.expect("target").kind, TargetKind::VictoriaMetrics);
        let (t, _) = target(json!({"url": "http://127.0.0.1:9091"}), false);
        assert_eq!(t.expect("target").kind, TargetKind::Pushgateway);
    }

    #[test]
    fn reference_metrics_push_is_off_unless_enabled_and_needs_a_url_when_on() {
        let (t, r) = target(json!({}), true);
        assert!(t.is_none() && r.is_ok());
        let (_, r) = target(json!({"enabled": true}), true);
        assert_eq!(
            r.problems[0].to_string(),
            "t.url: is required when the target is enabled"
        );
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let (t, _) = target(
            json!({"url": "https://vm.example.com/api/v1/import/prometheus",
                   "basicAuth": {"username": "u", "password": "pw-SECRET-1"},
                   "headers": {"Authorization": "Bearer TOKEN-SECRET-2"}}),
            false,
        );
        let shown = format!("{t:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn bad_labels_and_headers_are_named() {
        let (_, r) = target(
            json!({"url": "http://h:1", "groupingLabels": {"a-b": "x"}, "headers": {"bad name": "v"}}),
            false,
        );
        let paths: Vec<_> = r.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["t.groupingLabels.a-b", "t.headers.bad name"]);
    }
}
