//! What the tests of the metric expositions share: the text of a registry, one sample's value,
//! and `promtool check metrics`.

use std::ffi::OsStr;
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
    match promtool_check_metrics("promtool", text) {
        Err(skip) => eprintln!("skipping promtool check metrics: {skip}"),
        Ok(Err(shown)) => panic!("promtool check metrics: {shown}\n{text}"),
        Ok(Ok(_)) => {}
    }
}

/// `program check metrics` on `text`: the outer `Err` says why promtool cannot run (a test
/// skips); inside, `Ok(output)` when the lint passes, `Err(output)` when it does not.
pub fn promtool_check_metrics(
    program: impl AsRef<OsStr>,
    text: &str,
) -> Result<Result<String, String>, String> {
    let mut child = Command::new(program)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool ({e})"))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool finishes");
    let shown = format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(if output.status.success() {
        Ok(shown)
    } else {
        Err(shown)
    })
}
