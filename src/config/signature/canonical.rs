//! RFC 8785 JSON Canonicalization Scheme (JCS): the byte string the native Ed25519 scheme signs.
//!
//! JCS sorts object members by UTF-16 code units, prints numbers the way ECMAScript does and
//! drops all insignificant whitespace, so two JSON texts that parse to the same value always
//! canonicalise to the same bytes, whatever tool formatted them.

use serde_json::Value;

/// Why a value could not be canonicalised.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    /// JCS has no representation for the value (for example a non-finite number).
    #[error("the configuration cannot be canonicalised as RFC 8785 JSON: {0}")]
    Unrepresentable(#[source] serde_json::Error),
}

/// The RFC 8785 canonical bytes of `value`.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(CanonicalError::Unrepresentable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        let value: Value = serde_json::from_str(text).expect("test JSON parses");
        String::from_utf8(canonical_json(&value).expect("canonicalises")).expect("UTF-8")
    }

    #[test]
    fn sorts_keys_recursively() {
        assert_eq!(
            canonical(r#"{"b":1,"a":{"d":[3,{"z":0,"y":1}],"c":null}}"#),
            r#"{"a":{"c":null,"d":[3,{"y":1,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn sorts_keys_by_utf16_code_units() {
        // U+1F600 (surrogates 0xD83D 0xDE00) sorts before U+FFFF in UTF-16, after it in UTF-8.
        assert_eq!(
            canonical(r#"{"\uffff":1,"😀":2,"a":3}"#),
            "{\"a\":3,\"\u{1F600}\":2,\"\u{FFFF}\":1}"
        );
    }

    #[test]
    fn ignores_whitespace_and_key_order() {
        let compact = canonical(r#"{"port":3000,"logger":{"level":"info"},"list":[1,2]}"#);
        let pretty = canonical(
            "{\n  \"list\" : [ 1, 2 ],\n\t\"logger\": { \"level\": \"info\" },\r\n  \"port\": 3000\n}\n",
        );
        assert_eq!(compact, pretty);
        assert_eq!(
            compact,
            r#"{"list":[1,2],"logger":{"level":"info"},"port":3000}"#
        );
    }

    #[test]
    fn keeps_array_order() {
        assert_eq!(canonical("[2,1]"), "[2,1]");
    }

    #[test]
    fn formats_numbers_like_ecmascript() {
        assert_eq!(canonical("1.0"), "1");
        assert_eq!(canonical("-0"), "0");
        assert_eq!(canonical("1e21"), "1e+21");
        assert_eq!(canonical("1e20"), "100000000000000000000");
        assert_eq!(canonical("0.000001"), "0.000001");
        assert_eq!(canonical("1e-7"), "1e-7");
        assert_eq!(canonical("12e1"), "120");
        assert_eq!(canonical("9007199254740993"), "9007199254740992");
        assert_eq!(canonical("[0.1,-2.5E3]"), "[0.1,-2500]");
    }

    #[test]
    fn escapes_strings_minimally() {
        assert_eq!(
            canonical(r#""\u0041\u00e9\n\u001f\"\\/""#),
            "\"A\u{e9}\\n\\u001f\\\"\\\\/\""
        );
    }
}
