//! Prometheus classic text exposition of a registry, and the forms each receiver wants.

use prometheus::{Encoder, Registry, TextEncoder};

/// The registry in text format 0.0.4 (what `/metrics` serves and Pushgateway receives).
pub fn text(registry: &Registry) -> String {
    let mut buf = Vec::new();
    // Encoding into memory fails only on invalid metric families, which the registry refuses at
    // registration; an empty body is the honest answer then.
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::warn!(error = %e, "cannot encode metrics");
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// The sample lines of a text exposition with a millisecond timestamp appended, for
/// VictoriaMetrics (which keeps given timestamps, so a late delivery lands at the right time).
/// Comments are dropped: VictoriaMetrics stores no metadata.
pub fn timestamped_samples(text: &str, timestamp_ms: i64) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| format!("{l} {timestamp_ms}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{IntCounterVec, Opts};

    #[test]
    fn samples_get_timestamps_and_comments_go() {
        let registry = Registry::new();
        let c = IntCounterVec::new(Opts::new("demo_total", "Demo."), &["pair"]).expect("metric");
        registry.register(Box::new(c.clone())).expect("register");
        c.with_label_values(&["BTC/USD"]).inc_by(3);
        let body = text(&registry);
        assert!(body.contains("# TYPE demo_total counter"));
        let lines = timestamped_samples(&body, 1_700_000_000_000);
        assert_eq!(lines, ["demo_total{pair=\"BTC/USD\"} 3 1700000000000"]);
    }
}
