//! `enclave quote verify`: the real Intel-signed samples of tests/fixtures/dcap (SOURCE.md) are
//! valid inside their collateral's window and invalid outside it, a tampered quote is invalid,
//! the policy (TCB status, platform flags, grace) and a measurements file decide the rest, and
//! unreadable inputs are told apart from invalid quotes by the exit code.

use crate::common;
use crate::support::fixture;

use std::path::PathBuf;

use common::{assert_contains, code, stderr, stdout};
use serde_json::{json, Value};

/// Inside each window (SOURCE.md).
const TDX_AT: &str = "2025-07-01T00:00:00Z";
const TDX_UNTIL: &str = "2025-07-19T10:00:34Z";
const TD15EX_AT: &str = "2026-10-20T00:00:00Z";
const SGX_AT: &str = "2025-07-01T00:00:00Z";

fn verify(quote: &str, collateral: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["quote", "verify", quote, "--collateral", collateral];
    args.extend_from_slice(extra);
    common::enclave(&args)
}

fn tdx(extra: &[&str]) -> std::process::Output {
    verify(
        &fixture("tdx_quote"),
        &fixture("tdx_quote_collateral.json"),
        extra,
    )
}

fn assert_exit(out: &std::process::Output, expected: i32) -> String {
    let text = stdout(out);
    assert_eq!(code(out), expected, "{text}{}", stderr(out));
    text
}

#[test]
fn the_sample_quotes_are_valid_inside_their_windows_and_say_what_they_attest() {
    let text = assert_exit(&tdx(&["--at", TDX_AT]), 0);
    for line in [
        "verification time: 2025-07-01T00:00:00Z",
        "quote: TDX v4, TD10 report, 5006 bytes",
        "collateral: valid 2025-06-19T10:32:27Z .. 2025-07-19T10:00:34Z (PCK CRL expires first)",
        "TCB status: UpToDate",
        "advisories: none",
        "platform: FMSPC B0C06F000000, PCK CA platform; dynamic-platform true, cached-keys true, smt true",
        "TD attributes: 0000001000000000 (debug off)",
        "MRTD: 91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7",
        "RTMR0: 44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0",
        "RTMR3: 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "REPORTDATA: 9a9d48e7f6799642",
        "VALID: the quote verifies to Intel's root and the policy accepts it",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "no line {line:?} in:\n{text}"
        );
    }
    // The window's last second still verifies.
    assert_exit(&tdx(&["--at", TDX_UNTIL]), 0);
    let text = assert_exit(
        &verify(
            &fixture("tdx_quote_td15ex"),
            &fixture("tdx_quote_td15ex_collateral.json"),
            &["--at", TD15EX_AT],
        ),
        0,
    );
    assert_contains(&text, "quote: TDX v5, TD15Ex report, 5247 bytes");
    assert_contains(&text, "MRCONFIGID: 01");
    assert_contains(&text, "own PCK certificate chain was set aside");
}

#[test]
fn json_output_carries_the_same_verdict_and_facts() {
    let out = tdx(&["--at", TDX_AT, "--json"]);
    let value: Value = serde_json::from_str(&assert_exit(&out, 0)).expect("json");
    assert_eq!(value["valid"], true);
    assert_eq!(value["result"], "valid");
    assert_eq!(value["quote"]["tcbStatus"], "UpToDate");
    assert_eq!(value["quote"]["platformFlags"]["smtEnabled"], "true");
    assert_eq!(value["quote"]["td"]["debug"], false);
    assert!(value["quote"]["td"]["mrTd"]
        .as_str()
        .expect("hex")
        .starts_with("91eb2b44"));
    assert_eq!(value["collateral"]["validUntil"], TDX_UNTIL);
    assert_eq!(value["policy"]["allowedTcbStatuses"], json!(["UpToDate"]));
    assert_eq!(value["refusals"], json!([]));

    let out = tdx(&["--at", "2025-07-20T00:00:00Z", "--json"]);
    let value: Value = serde_json::from_str(&assert_exit(&out, 1)).expect("json");
    assert_eq!(value["valid"], false);
    assert_eq!(value["result"], "invalid");
    assert!(value["error"]
        .as_str()
        .expect("error")
        .contains("the collateral expired at 2025-07-19T10:00:34Z"));
}

#[test]
fn expired_collateral_is_invalid_unless_a_grace_is_asked() {
    let late = "2025-07-20T00:00:00Z";
    let text = assert_exit(&tdx(&["--at", late]), 1);
    assert_contains(
        &text,
        "INVALID: the collateral expired at 2025-07-19T10:00:34Z (PCK CRL first)",
    );
    assert_contains(&text, "--collateral-grace");
    // One second after the window.
    assert_exit(&tdx(&["--at", "2025-07-19T10:00:35Z"]), 1);
    // Before it.
    let text = assert_exit(&tdx(&["--at", "2025-06-19T10:32:26Z"]), 1);
    assert_contains(&text, "issue date is in the future");

    let text = assert_exit(&tdx(&["--at", late, "--collateral-grace", "1d"]), 0);
    assert_contains(&text, "collateral grace: the collateral expired 13h 59m 26s before the verification time; checked as of 2025-07-19T10:00:34Z");
    let text = assert_exit(&tdx(&["--at", late, "--collateral-grace", "1h"]), 1);
    assert_contains(&text, "the grace of 1h is shorter");
}

#[test]
fn a_tampered_quote_is_invalid() {
    let dir = tempfile::tempdir().expect("tmp");
    let original = std::fs::read(fixture("tdx_quote")).expect("quote");
    // A byte of MRTD (header 48 + body offset 136), of the signature, of the header.
    for at in [48 + 136, 48 + 584 + 4 + 10, 20] {
        let mut quote = original.clone();
        quote[at] ^= 0x01;
        let path = dir.path().join("tampered");
        std::fs::write(&path, &quote).expect("write");
        let text = assert_exit(
            &verify(
                path.to_str().expect("utf-8"),
                &fixture("tdx_quote_collateral.json"),
                &["--at", TDX_AT],
            ),
            1,
        );
        assert!(text.contains("INVALID: "), "byte {at}: {text}");
        assert!(
            !text.lines().any(|l| l.starts_with("VALID")),
            "byte {at}: {text}"
        );
    }
    // Another quote's collateral.
    let text = assert_exit(
        &verify(
            &fixture("tdx_quote"),
            &fixture("tdx_quote_outdated_collateral.json"),
            &["--at", "2026-03-01T00:00:00Z"],
        ),
        1,
    );
    assert_contains(&text, "INVALID: the quote does not verify");
}

#[test]
fn tcb_statuses_other_than_up_to_date_are_accepted_only_by_name() {
    let sgx = |extra: &[&str]| {
        let mut args = vec!["--at", SGX_AT];
        args.extend_from_slice(extra);
        verify(
            &fixture("sgx_quote"),
            &fixture("sgx_quote_collateral.json"),
            &args,
        )
    };
    let text = assert_exit(&sgx(&[]), 1);
    assert_contains(&text, "TCB status: ConfigurationAndSWHardeningNeeded");
    assert_contains(&text, "advisories: INTEL-SA-00289, INTEL-SA-00615");
    assert_contains(&text, "REFUSED: TCB status ConfigurationAndSWHardeningNeeded is not accepted by the policy (accept it with --allow-tcb-status ConfigurationAndSWHardeningNeeded)");
    // Accepted by name (on the command line or in a policy file), the status is no longer
    // refused; the quote still is, as an SGX enclave's and not a TD's.
    let dir = tempfile::tempdir().expect("tmp");
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({"allowedTcbStatuses": ["ConfigurationAndSWHardeningNeeded"]}).to_string(),
    )
    .expect("write");
    for extra in [
        vec!["--allow-tcb-status", "ConfigurationAndSWHardeningNeeded"],
        vec!["--policy", policy.to_str().expect("utf-8")],
    ] {
        let text = assert_exit(&sgx(&extra), 1);
        assert!(!text.contains("REFUSED: TCB status"), "{text}");
        assert_contains(&text, "REFUSED: the quote is not a TDX quote");
    }
    let text = assert_exit(&sgx(&["--reject-advisory", "INTEL-SA-00615"]), 1);
    assert_contains(
        &text,
        "REFUSED: advisory INTEL-SA-00615 is rejected by the policy",
    );
    // Revoked can never be named; unknown names are usage errors.
    for bad in ["Revoked", "Outdated"] {
        let out = tdx(&["--at", TDX_AT, "--allow-tcb-status", bad]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
    }
}

#[test]
fn platform_flags_are_accepted_unless_refused_by_name() {
    let text = assert_exit(&tdx(&["--at", TDX_AT, "--refuse-platform-flag", "smt"]), 1);
    assert_contains(
        &text,
        "REFUSED: platform flag smt is set and the policy refuses it",
    );
    let out = tdx(&["--at", TDX_AT, "--refuse-platform-flag", "hyperthreading"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

fn sample_record(change: impl FnOnce(&mut Value)) -> Value {
    let out = tdx(&["--at", TDX_AT, "--json"]);
    let value: Value = serde_json::from_str(&stdout(&out)).expect("json");
    let td = &value["quote"]["td"];
    let mut record = json!({
        "measurement_id": "sample",
        "attestation_type": "dcap-tdx",
        "measurements": {
            "mrtd": {"expected_any": [td["mrTd"]]},
            "rtmr0": {"expected_any": [td["rtmr0"]]},
            "rtmr1": {"expected_any": ["00".repeat(48), td["rtmr1"]]},
            "rtmr2": {"expected_any": [td["rtmr2"]]},
        }
    });
    change(&mut record);
    record
}

#[test]
fn a_measurements_file_decides_which_tds_are_allowed() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = |records: Value| {
        let path: PathBuf = dir.path().join("measurements.json");
        std::fs::write(&path, records.to_string()).expect("write");
        path.to_str().expect("utf-8").to_owned()
    };
    let allowed = file(json!([sample_record(|_| {})]));
    let text = assert_exit(&tdx(&["--at", TDX_AT, "--measurements", &allowed]), 0);
    assert_contains(&text, "measurements: allowed by record \"sample\"");
    // An upgrade: old and new image, either is allowed.
    let other = sample_record(|r| {
        r["measurement_id"] = json!("other image");
        r["measurements"]["mrtd"] = json!({"expected_any": ["ab".repeat(48)]});
    });
    let both = file(json!([other.clone(), sample_record(|_| {})]));
    assert_exit(&tdx(&["--at", TDX_AT, "--measurements", &both]), 0);
    let not = file(json!([other]));
    let text = assert_exit(&tdx(&["--at", TDX_AT, "--measurements", &not]), 1);
    assert_contains(
        &text,
        "measurements: NOT allowed: record \"other image\": MRTD is 91eb2b44",
    );
    // MROWNER is pinned to zero unless named.
    let owner = file(json!([sample_record(|r| {
        r["measurements"]["mrowner"] = json!({"expected_any": ["01".repeat(48)]});
    })]));
    let text = assert_exit(&tdx(&["--at", TDX_AT, "--measurements", &owner]), 1);
    assert_contains(&text, "MROWNER is 0000");
}

#[test]
fn inputs_that_cannot_be_read_exit_65_and_name_the_problem() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = |name: &str, contents: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, contents).expect("write");
        p.to_str().expect("utf-8").to_owned()
    };
    let missing = dir
        .path()
        .join("missing")
        .to_str()
        .expect("utf-8")
        .to_owned();
    let cases: Vec<(std::process::Output, &str)> = vec![
        (
            verify(&missing, &fixture("tdx_quote_collateral.json"), &[]),
            "cannot read the quote",
        ),
        (
            verify(&fixture("tdx_quote"), &path("c.json", "{}"), &[]),
            "is not dcap-qvl's QuoteCollateralV3 JSON",
        ),
        (
            tdx(&[
                "--measurements",
                &path("m.json", "[{\"measurement_id\": \"x\"}]"),
            ]),
            "$[0].measurements: is required",
        ),
        (
            tdx(&["--policy", &path("p.json", "{\"allowedTcbStatus\": []}")]),
            "p.json: the policy file is invalid: $.allowedTcbStatus: unknown field",
        ),
    ];
    for (out, expected) in cases {
        assert_eq!(code(&out), 65, "{}{}", stdout(&out), stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{expected}: {}",
            stderr(&out)
        );
    }
    // Bytes that are no quote are judged: invalid, exit 1.
    let text = assert_exit(
        &verify(
            &path("q", "not a quote"),
            &fixture("tdx_quote_collateral.json"),
            &["--at", TDX_AT],
        ),
        1,
    );
    assert_contains(&text, "INVALID: the quote is not a DCAP quote");
}
