//! Building metric samples by hand, for collectors that render a cached reading (the process
//! and PostgreSQL collectors) instead of keeping live metric objects.

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricType};

/// Longest label value taken from outside the enclave's own code (a certificate's subject, …).
pub const MAX_LABEL_CHARS: usize = 256;

/// `value` cut to [`MAX_LABEL_CHARS`] characters (with `…` when cut): a label value read from a
/// file or a peer must not make every push carry kilobytes. (The text format escapes quotes,
/// backslashes and newlines itself.)
pub fn bounded(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(MAX_LABEL_CHARS) {
        None => std::borrow::Cow::Borrowed(value),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &value[..end])),
    }
}

pub fn label(name: &str, value: &str) -> LabelPair {
    let mut label = LabelPair::default();
    label.set_name(name.to_owned());
    label.set_value(value.to_owned());
    label
}

/// One sample of a counter or (anything else) a gauge.
pub fn metric(kind: MetricType, labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut metric = Metric::from_label(labels);
    if kind == MetricType::COUNTER {
        let mut counter = Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    } else {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    }
    metric
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_label_values_are_cut_at_a_character_boundary() {
        assert_eq!(bounded("CN=order 42"), "CN=order 42");
        let long = "é".repeat(10_000);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), MAX_LABEL_CHARS + 1);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(MAX_LABEL_CHARS);
        assert_eq!(bounded(&exact), exact.as_str());
    }
}
