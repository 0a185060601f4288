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

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Removes the variables through which a developer's shell could configure `enclave` behind
/// the test's back: every run sees only what its test gives it.
pub fn without_enclave_env(command: &mut Command) -> &mut Command {
    for name in [
        "CONFIGURATION_PATH",
        "CONFIGURATION_PUBLIC_KEY",
        "CONFIGURATION_PUBLIC_KEY_FILE",
        "ENCLAVE_ROOT",
    ] {
        command.env_remove(name);
    }
    command
}

/// The `enclave` binary, with a clean environment ([`without_enclave_env`]).
pub fn enclave_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_enclave"));
    without_enclave_env(&mut command);
    command
}

/// [`enclave_command`] for the enclave under `root` (`enclave --root <root> …`).
pub fn enclave_at(root: impl AsRef<OsStr>) -> Command {
    let mut command = enclave_command();
    command.arg("--root").arg(root);
    command
}

/// Runs the `enclave` binary with a clean environment (no inherited configuration variables).
pub fn enclave<S: AsRef<OsStr>>(args: &[S]) -> Output {
    enclave_command().args(args).output().expect("enclave runs")
}

/// [`enclave`], killed and failed if it takes longer than `limit` (a hang must fail the test,
/// not hold it).
pub fn enclave_within<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S], limit: Duration) -> Output {
    let mut child = enclave_command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("enclave runs");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("enclave {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Asserts that `text` contains `part`, showing all of `text` when it does not.
#[track_caller]
pub fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} not found in:\n{text}");
}

/// Whether `text` has a line that starts with `start` and contains every one of `parts`: a row
/// of the live view, a PASS or FAIL line of `verify-identity`.
pub fn has_line(text: &str, start: &str, parts: &[&str]) -> bool {
    text.lines()
        .any(|l| l.starts_with(start) && parts.iter().all(|p| l.contains(p)))
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
