//! Reads samples out of the Prometheus text exposition format (0.0.4) our own services serve:
//! `name{label="value",…} value [timestamp]`, with `\\`, `\"` and `\n` escapes in label values.
//! Only the families asked for are kept; lines that do not parse are skipped, not fatal.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of the metric `names` in `text`.
pub fn samples(text: &str, names: &[&str]) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_line)
        .filter(|s| names.contains(&s.name.as_str()))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Reads `a="x",b="y"}` and returns the labels and what follows the closing brace.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.insert(key, value);
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels_escapes_and_timestamps_are_read() {
        let text = r#"# HELP enclave_service_cpu_usage_cores CPU
# TYPE enclave_service_cpu_usage_cores gauge
enclave_service_cpu_usage_cores{service="node-2"} 0.25
enclave_service_cpu_usage_cores{service="we\"ird\\name\n"} 1e-3 1700000000000
enclave_other 5
enclave_service_resident_memory_bytes{service="postgres",} 4.5e+07
garbage line {
enclave_service_cpu_usage_cores{service="x"} notanumber
"#;
        let got = samples(
            text,
            &[
                "enclave_service_cpu_usage_cores",
                "enclave_service_resident_memory_bytes",
            ],
        );
        type Shown = (String, Vec<(String, String)>, f64);
        let shown: Vec<Shown> = got
            .into_iter()
            .map(|s| (s.name, s.labels.into_iter().collect(), s.value))
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "enclave_service_cpu_usage_cores".to_owned(),
                    vec![("service".to_owned(), "node-2".to_owned())],
                    0.25
                ),
                (
                    "enclave_service_cpu_usage_cores".to_owned(),
                    vec![("service".to_owned(), "we\"ird\\name\n".to_owned())],
                    0.001
                ),
                (
                    "enclave_service_resident_memory_bytes".to_owned(),
                    vec![("service".to_owned(), "postgres".to_owned())],
                    45_000_000.0
                ),
            ]
        );
    }
}
