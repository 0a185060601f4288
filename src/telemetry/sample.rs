//! Building metric samples by hand, for collectors that render a cached reading (the process
//! and PostgreSQL collectors) instead of keeping live metric objects.

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricType};

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
