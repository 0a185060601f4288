//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod clone;
pub mod devchain;
pub mod don;
pub mod harness;
pub mod hostile;
pub mod live_view;
pub mod price_server;
pub mod receivers;
pub mod tcp_proxy;
pub mod webhook_receiver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example_path() -> PathBuf {
    repo().join("configuration.example.json")
}

pub fn dev_public_key_path() -> PathBuf {
    repo().join("scripts/dev-keys/configuration.pub")
}

pub fn dev_private_key_path() -> PathBuf {
    repo().join("scripts/dev-keys/INSECURE-DEV-ONLY.configuration.key")
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("readable fixture");
    serde_json::from_str(&text).expect("valid JSON fixture")
}

/// Runs the `enclave` binary with a clean environment (no inherited configuration variables).
pub fn enclave(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enclave"))
        .args(args)
        .env_remove("CONFIGURATION_PATH")
        .env_remove("CONFIGURATION_PUBLIC_KEY")
        .env_remove("ENCLAVE_ROOT")
        .output()
        .expect("enclave runs")
}

/// The oracles' transmitter addresses from `enclave keys show` output.
pub fn oracle_transmitters(keys: &serde_json::Value) -> Vec<String> {
    keys["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["role"] == "oracle")
        .map(|n| {
            n["transmitterAddress"]
                .as_str()
                .expect("address")
                .to_owned()
        })
        .collect()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every leaf of a JSON value with its pointer (`/solution/pgPort`).
pub fn leaves(value: &serde_json::Value, pointer: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                leaves(
                    v,
                    format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, format!("{pointer}/{i}"), out);
            }
        }
        _ => out.push(pointer),
    }
}

/// A different value of the same kind (a one-character change for strings and numbers).
pub fn tampered(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            let mut t = s.clone();
            match t.pop() {
                Some(c) if c != 'x' => t.push('x'),
                Some(_) => t.push('y'),
                None => t.push('x'),
            }
            Value::String(t)
        }
        Value::Number(n) => match n.as_u64() {
            Some(0) => Value::from(1),
            Some(v) => Value::from(v - 1),
            None => Value::from(n.as_f64().unwrap_or(0.0) + 1.0),
        },
        Value::Bool(b) => Value::Bool(!b),
        Value::Null => Value::from(0),
        Value::Array(_) => Value::Array(vec![Value::Null]),
        Value::Object(_) => serde_json::json!({"x": 1}),
    }
}
