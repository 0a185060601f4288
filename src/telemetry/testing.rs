//! What the tests of the metric expositions share: the text of a registry, one sample's value,
//! and `promtool check metrics`.

use prometheus::{Encoder, Registry, TextEncoder};

/// The registry's text exposition; unlike [`super::encode::text`], an encoding error fails.
pub fn encode(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("encode");
    String::from_utf8(buffer).expect("utf-8")
}

/// The value of the sample line starting with `series ` (name and labels).
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics`, so that what Prometheus would refuse fails a test here. Skipped
/// with a note where promtool (Debian package prometheus) is not installed.
pub fn promtool_check(text: &str) {
    match enclave_testkit::promtool_check_metrics("promtool", text) {
        Err(skip) => eprintln!("skipping promtool check metrics: {skip}"),
        Ok(Err(shown)) => panic!("promtool check metrics: {shown}\n{text}"),
        Ok(Ok(_)) => {}
    }
}
