//! Reads typed fields out of a parsed JSON document while remembering where each one came from,
//! so that every problem is reported with its JSON path and none stops the others from being found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::logging::Untrusted;

/// One thing wrong with the configuration, at one JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Paths hold member names and messages may quote input: neither is shown raw.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            Untrusted::bounded(&self.path, MAX_PATH_CHARS),
            Untrusted::bounded(&self.message, MAX_MESSAGE_CHARS)
        )
    }
}

/// How much of a problem's JSON path is shown: enough for any real path, not for a flood.
pub const MAX_PATH_CHARS: usize = 200;
const MAX_MESSAGE_CHARS: usize = 400;

/// Everything learnt while reading: errors (the configuration is unusable), warnings (usable but
/// probably not what was meant), reference fields that were accepted and will not be used, and
/// members beside `solution` (not covered by the signature, never used).
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    pub ignored: Vec<String>,
    pub unsigned: Vec<String>,
}

impl Report {
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// `parent.key`, the path of a member.
pub fn member_path(parent: &str, key: &str) -> String {
    format!("{parent}.{key}")
}

/// `parent[index]`, the path of an array element.
pub fn element_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string, or `None` with a problem recorded.
pub fn string<'v>(r: &mut Report, path: &str, value: &'v Value) -> Option<&'v str> {
    match value {
        Value::String(s) => Some(s),
        other => {
            r.error(path, format!("must be a string, not {}", kind(other)));
            None
        }
    }
}

/// A non-negative integer, written as a JSON number or as a string of digits (`"5"`), because the
/// reference schema writes several counts as strings.
pub fn unsigned(r: &mut Report, path: &str, value: &Value) -> Option<u128> {
    let parsed = match value {
        Value::Number(n) => n.as_u64().map(u128::from).or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 3.4e38)
                .map(|f| f as u128)
        }),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u128>().ok()
        }
        _ => None,
    };
    if parsed.is_none() {
        let shown = match value {
            Value::Number(_) | Value::String(_) => "a non-negative integer",
            _ => "a non-negative integer (a number or a string of digits)",
        };
        r.error(path, format!("must be {shown}, not {}", describe(value)));
    }
    parsed
}

/// A non-negative integer within `min..=max`.
pub fn integer_in(r: &mut Report, path: &str, value: &Value, min: u64, max: u64) -> Option<u64> {
    let n = unsigned(r, path, value)?;
    if n < u128::from(min) || n > u128::from(max) {
        r.error(path, range_message(min, max));
        return None;
    }
    u64::try_from(n).ok()
}

fn range_message(min: u64, max: u64) -> String {
    if max == u64::MAX {
        format!("must be >= {min}")
    } else {
        format!("must be between {min} and {max}")
    }
}

/// A finite decimal number, as a JSON number or a numeric string.
pub fn number(r: &mut Report, path: &str, value: &Value) -> Option<f64> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    };
    if parsed.is_none() {
        r.error(path, format!("must be a number, not {}", describe(value)));
    }
    parsed
}

/// `true`/`false`, also accepted as the strings `"true"`/`"false"` (the reference's loader converts them).
pub fn boolean(r: &mut Report, path: &str, value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        other => {
            r.error(
                path,
                format!("must be true or false, not {}", describe(other)),
            );
            None
        }
    }
}

/// Shows the type of a bad value and, for short scalars, the value: enough to find the mistake
/// without ever echoing a long string that might be a secret put in the wrong place.
fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => format!("{n}"),
        Value::Bool(b) => format!("{b}"),
        other => kind(other).to_owned(),
    }
}

/// The members of one JSON object being read. Every member that is read is remembered, so that
/// [`Fields::finish`] can report the ones nobody asked for.
pub struct Fields<'v> {
    path: String,
    map: &'v Map<String, Value>,
    used: BTreeSet<&'v str>,
}

impl<'v> Fields<'v> {
    /// Starts reading `value` as an object; records a problem and returns `None` if it is not one.
    pub fn of(r: &mut Report, path: &str, value: &'v Value) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Self {
                path: path.to_owned(),
                map,
                used: BTreeSet::new(),
            }),
            other => {
                r.error(path, format!("must be an object, not {}", kind(other)));
                None
            }
        }
    }

    /// Reads an absent section as an empty object, so that its defaults apply.
    pub fn empty(path: &str) -> Fields<'static> {
        static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);
        Fields {
            path: path.to_owned(),
            map: &EMPTY,
            used: BTreeSet::new(),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn path_of(&self, key: &str) -> String {
        member_path(&self.path, key)
    }

    /// The raw value of a member; `null` counts as absent, as it does in the reference's loader.
    pub fn get(&mut self, key: &str) -> Option<&'v Value> {
        let (k, v) = self.map.get_key_value(key)?;
        self.used.insert(k.as_str());
        (!v.is_null()).then_some(v)
    }

    /// Whether the member is present and explicitly `null` (where `null` means something, such as
    /// "no rate limit").
    pub fn is_null(&mut self, key: &str) -> bool {
        match self.map.get_key_value(key) {
            Some((k, v)) => {
                self.used.insert(k.as_str());
                v.is_null()
            }
            None => false,
        }
    }

    /// Whether the member is present with a non-null value.
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    fn required(&mut self, r: &mut Report, key: &str) -> Option<&'v Value> {
        let value = self.get(key);
        if value.is_none() {
            r.error(self.path_of(key), "is required");
        }
        value
    }

    pub fn string(&mut self, r: &mut Report, key: &str) -> Option<&'v str> {
        let path = self.path_of(key);
        self.get(key).and_then(|v| string(r, &path, v))
    }

    pub fn required_string(&mut self, r: &mut Report, key: &str) -> Option<&'v str> {
        let path = self.path_of(key);
        self.required(r, key).and_then(|v| string(r, &path, v))
    }

    /// A string that must not be empty once trimmed.
    pub fn non_empty_string(&mut self, r: &mut Report, key: &str) -> Option<&'v str> {
        let s = self.string(r, key)?;
        if s.trim().is_empty() {
            r.error(self.path_of(key), "must not be empty");
            return None;
        }
        Some(s)
    }

    pub fn integer(&mut self, r: &mut Report, key: &str, min: u64, max: u64) -> Option<u64> {
        let path = self.path_of(key);
        self.get(key)
            .and_then(|v| integer_in(r, &path, v, min, max))
    }

    /// An optional integer with its default: absent (or wrong, which is reported) gives `default`.
    pub fn integer_or(
        &mut self,
        r: &mut Report,
        key: &str,
        min: u64,
        max: u64,
        default: u64,
    ) -> u64 {
        self.integer(r, key, min, max).unwrap_or(default)
    }

    /// An optional duration written in milliseconds, bounded and defaulted like
    /// [`Fields::integer_or`].
    pub fn millis(
        &mut self,
        r: &mut Report,
        key: &str,
        min: u64,
        max: u64,
        default_ms: u64,
    ) -> Duration {
        Duration::from_millis(self.integer_or(r, key, min, max, default_ms))
    }

    /// An optional TCP port (1 to 65535); the defaults are `u64` like every integer default.
    pub fn port(&mut self, r: &mut Report, key: &str, default: u64) -> u16 {
        // The bounds make the conversion lossless; the default is one of ours.
        self.integer_or(r, key, 1, 65535, default) as u16
    }

    /// An optional IP address; a value that is not one is reported with `message` and the
    /// default stands.
    pub fn ip_addr(&mut self, r: &mut Report, key: &str, default: IpAddr, message: &str) -> IpAddr {
        match self.string(r, key) {
            None => default,
            Some(text) => text.parse().unwrap_or_else(|_| {
                r.error(self.path_of(key), message);
                default
            }),
        }
    }

    pub fn required_integer(
        &mut self,
        r: &mut Report,
        key: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let path = self.path_of(key);
        self.required(r, key)
            .and_then(|v| integer_in(r, &path, v, min, max))
    }

    /// An amount too large for 64 bits (wei), as a number or a string of digits.
    pub fn big_integer(&mut self, r: &mut Report, key: &str, min: u128) -> Option<u128> {
        let path = self.path_of(key);
        let n = self.get(key).and_then(|v| unsigned(r, &path, v))?;
        if n < min {
            r.error(path, format!("must be >= {min}"));
            return None;
        }
        Some(n)
    }

    pub fn number(&mut self, r: &mut Report, key: &str) -> Option<f64> {
        let path = self.path_of(key);
        self.get(key).and_then(|v| number(r, &path, v))
    }

    pub fn boolean(&mut self, r: &mut Report, key: &str) -> Option<bool> {
        let path = self.path_of(key);
        self.get(key).and_then(|v| boolean(r, &path, v))
    }

    /// An optional boolean with its default.
    pub fn boolean_or(&mut self, r: &mut Report, key: &str, default: bool) -> bool {
        self.boolean(r, key).unwrap_or(default)
    }

    /// A nested object, read with its own [`Fields`].
    pub fn object(&mut self, r: &mut Report, key: &str) -> Option<Fields<'v>> {
        let path = self.path_of(key);
        self.get(key).and_then(|v| Fields::of(r, &path, v))
    }

    /// The elements of an array member, each with its path.
    pub fn array(&mut self, r: &mut Report, key: &str) -> Option<Vec<(String, &'v Value)>> {
        let path = self.path_of(key);
        match self.get(key)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (element_path(&path, i), v))
                    .collect(),
            ),
            other => {
                r.error(path, format!("must be an array, not {}", kind(other)));
                None
            }
        }
    }

    /// An object whose members are all strings (labels, headers).
    pub fn string_map(&mut self, r: &mut Report, key: &str) -> Option<BTreeMap<String, String>> {
        let mut fields = self.object(r, key)?;
        let keys: Vec<&String> = fields.map.keys().collect();
        let mut out = BTreeMap::new();
        for k in keys {
            if let Some(v) = fields.string(r, k) {
                out.insert(k.clone(), v.to_owned());
            }
        }
        Some(out)
    }

    /// Reports every member that was never read: reference fields we accept but do not use are
    /// noted as ignored, anything else is an error (a typo must not silently become a default).
    pub fn finish(self, r: &mut Report, ignored: &[&str]) {
        for key in self.map.keys() {
            if self.used.contains(key.as_str()) {
                continue;
            }
            let path = self.path_of(key);
            if ignored.contains(&key.as_str()) {
                r.ignored.push(path);
            } else {
                r.error(path, unknown_field_message(key, self.used.iter().copied()));
            }
        }
    }
}

fn unknown_field_message<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> String {
    let closest = known
        .map(|k| {
            (
                strsim::levenshtein(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min();
    match closest {
        Some((_, k)) => format!("unknown field (did you mean `{k}`?)"),
        None => "unknown field".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_written_as_strings_are_accepted() {
        let mut r = Report::default();
        let v = json!({"a": "5", "b": 7, "c": "x5", "d": -1, "e": 2.5});
        let mut f = Fields::of(&mut r, "solution", &v).expect("object");
        assert_eq!(f.integer(&mut r, "a", 1, 10), Some(5));
        assert_eq!(f.integer(&mut r, "b", 1, 10), Some(7));
        assert_eq!(f.integer(&mut r, "c", 1, 10), None);
        assert_eq!(f.integer(&mut r, "d", 1, 10), None);
        assert_eq!(f.integer(&mut r, "e", 1, 10), None);
        let paths: Vec<_> = r.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["solution.c", "solution.d", "solution.e"]);
    }

    #[test]
    fn out_of_range_names_the_bounds() {
        let mut r = Report::default();
        let v = json!({"port": 70000});
        let mut f = Fields::of(&mut r, "solution", &v).expect("object");
        assert_eq!(f.integer(&mut r, "port", 1, 65535), None);
        assert_eq!(
            r.problems[0].to_string(),
            "solution.port: must be between 1 and 65535"
        );
    }

    #[test]
    fn unknown_fields_are_errors_and_ignored_fields_are_noted() {
        let mut r = Report::default();
        let v = json!({"pgPort": 1, "pgPrt": 2, "chainlinkEmail": "a@b"});
        let mut f = Fields::of(&mut r, "solution", &v).expect("object");
        f.integer(&mut r, "pgPort", 1, 65535);
        f.finish(&mut r, &["chainlinkEmail"]);
        assert_eq!(r.ignored, ["solution.chainlinkEmail"]);
        assert_eq!(
            r.problems[0].to_string(),
            "solution.pgPrt: unknown field (did you mean `pgPort`?)"
        );
    }

    #[test]
    fn bad_string_values_are_not_echoed() {
        let mut r = Report::default();
        let v = json!({"n": "super-secret-password"});
        let mut f = Fields::of(&mut r, "s", &v).expect("object");
        f.integer(&mut r, "n", 0, 10);
        assert!(!r.problems[0].message.contains("super-secret"));
    }
}
