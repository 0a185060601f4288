//! Strict JSON reading and the configuration file's envelope.
//!
//! JSON allows duplicate keys and parsers disagree on which one wins; in a signed document that
//! difference is an attack (the verifier sees one value, a consumer another), so duplicates are
//! rejected outright.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::logging::Untrusted;

/// Where the settings are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `{"solution": {...}}`, as Super Protocol delivers it.
    Nested,
    /// The solution object itself, as the reference's signer writes it.
    Flat,
}

#[derive(Debug, Error)]
pub enum JsonError {
    /// serde_json's message, which can quote a member name (`duplicate key …`).
    #[error("not valid JSON: {}", Untrusted::bounded(.0, 400))]
    Syntax(String),
    #[error("the configuration must be a JSON object")]
    NotAnObject,
    #[error("solution: must be an object")]
    SolutionNotAnObject,
}

/// Parses JSON text, rejecting duplicate object keys.
pub fn parse_strict(text: &str) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue::deserialize(&mut de).map_err(|e| JsonError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value.0)
}

/// The layout of a parsed file and a reference to its solution object.
pub fn solution_of(document: &Value) -> Result<(Layout, &Map<String, Value>), JsonError> {
    let top = document.as_object().ok_or(JsonError::NotAnObject)?;
    match top.get("solution") {
        Some(Value::Object(solution)) => Ok((Layout::Nested, solution)),
        Some(_) => Err(JsonError::SolutionNotAnObject),
        None => Ok((Layout::Flat, top)),
    }
}

/// Mutable access to the solution object (for signing).
pub fn solution_of_mut(document: &mut Value) -> Result<&mut Map<String, Value>, JsonError> {
    let nested = matches!(document.get("solution"), Some(Value::Object(_)));
    let top = document.as_object_mut().ok_or(JsonError::NotAnObject)?;
    if nested {
        match top.get_mut("solution") {
            Some(Value::Object(solution)) => Ok(solution),
            _ => Err(JsonError::SolutionNotAnObject),
        }
    } else if top.contains_key("solution") {
        Err(JsonError::SolutionNotAnObject)
    } else {
        Ok(top)
    }
}

/// Members of a nested file beside `solution`: the platform may add them, they are not covered
/// by the signature, so they are reported and never used.
pub fn envelope_extras(document: &Value) -> Vec<String> {
    match document.as_object() {
        Some(top) if top.get("solution").is_some_and(Value::is_object) => top
            .keys()
            .filter(|k| k.as_str() != "solution")
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let StrictValue(value) = access.next_value()?;
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        let err = parse_strict(r#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key `b`"), "{err}");
        assert!(parse_strict(r#"{"a": 1, "a": 1}"#).is_err());
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert!(parse_strict(r#"{"a": 1} x"#).is_err());
    }

    #[test]
    fn layout_is_detected() {
        let nested = parse_strict(r#"{"solution": {"a": 1}, "extra": 2}"#).unwrap();
        let (layout, s) = solution_of(&nested).unwrap();
        assert_eq!(layout, Layout::Nested);
        assert!(s.contains_key("a"));
        assert_eq!(envelope_extras(&nested), ["extra"]);
        let flat = parse_strict(r#"{"a": 1}"#).unwrap();
        assert_eq!(solution_of(&flat).unwrap().0, Layout::Flat);
        let bad = parse_strict(r#"{"solution": 5}"#).unwrap();
        assert!(solution_of(&bad).is_err());
        assert!(solution_of(&Value::from(3)).is_err());
    }
}
