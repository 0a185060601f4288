//! What the tests of the metric expositions share: the text of a registry, one sample's value,
//! and `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

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
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("skipping promtool check metrics: cannot run promtool ({e})");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
