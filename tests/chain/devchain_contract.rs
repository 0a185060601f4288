//! Runs the dev chain's Python tests in `cargo test`: the OCR1 aggregator contract against the
//! fact sheet (scripts/devchain/test_contract.py: real signed reports, every revert string) and
//! the chain's JSON-RPC semantics (scripts/devchain/test_devchain.py).

use crate::common;

use std::process::Command;

use common::devchain;

fn run_python_test(script: &str) {
    if let Some(reason) = devchain::skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let python = devchain::python(); // runs scripts/devchain/ensure.sh first
    let output = Command::new(python)
        .arg(common::repo().join("scripts/devchain").join(script))
        .output()
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{}{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    // unittest's summary, so that `cargo test -- --nocapture` shows what ran.
    eprintln!(
        "{script}: {}",
        stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
    );
}

#[test]
fn aggregator_contract() {
    run_python_test("test_contract.py");
}

#[test]
fn chain_json_rpc() {
    run_python_test("test_devchain.py");
}
