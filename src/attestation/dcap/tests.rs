//! The verifier against the real Intel-signed quotes and collateral that dcap-qvl 0.7.1 ships in
//! `sample/` (tests/fixtures/dcap/SOURCE.md has their origin and validity windows).

use std::time::Duration;

use dcap_qvl::TcbStatus;

use super::collateral::{self, Window};
use super::policy::{advisory, PlatformFlag, QuotePolicy, Refusal};
use super::verifier::{verify_quote, FlagState, Rejected, Verified};
use crate::attestation::measurements;
use crate::attestation::quote::TdQuote;

struct Sample {
    quote: &'static [u8],
    collateral: &'static [u8],
    /// First and last second (Unix, inclusive) at which the collateral verifies the quote.
    from: u64,
    until: u64,
}

/// The sample `tests/fixtures/dcap/<name>` with its collateral `<name>_collateral.json`, valid
/// from `from` to `until`.
macro_rules! sample {
    ($name:literal, $from:expr, $until:expr) => {
        Sample {
            quote: include_bytes!(concat!("../../../tests/fixtures/dcap/", $name)),
            collateral: include_bytes!(concat!(
                "../../../tests/fixtures/dcap/",
                $name,
                "_collateral.json"
            )),
            from: $from,
            until: $until,
        }
    };
}

// 2025-06-19T10:32:27Z (QE Identity issued) .. 2025-07-19T10:00:34Z (PCK CRL's nextUpdate - 1 s).
const TDX: Sample = sample!("tdx_quote", 1_750_329_147, 1_752_919_234);

// 2026-10-08T00:09:46Z (TCB Info issued) .. 2026-11-06T23:45:11Z (QE Identity's nextUpdate).
const TD15EX: Sample = sample!("tdx_quote_td15ex", 1_791_418_186, 1_794_008_711);

// 2025-06-19T10:56:11Z (TCB Info issued) .. 2025-07-19T10:01:18Z (QE Identity's nextUpdate).
const SGX: Sample = sample!("sgx_quote", 1_750_330_571, 1_752_919_278);

// 2026-02-18T10:58:51Z (TCB Info issued) .. 2026-03-20T10:01:14Z: the collateral's window,
// in which the quote never verifies (its TCB matches no level).
const OUTDATED: Sample = sample!("tdx_quote_outdated", 1_771_412_331, 1_774_003_274);

fn collateral_of(sample: &Sample) -> dcap_qvl::QuoteCollateralV3 {
    collateral::parse(sample.collateral).expect("sample collateral")
}

fn verify(sample: &Sample, at: u64, policy: &QuotePolicy) -> Result<Verified, Rejected> {
    verify_quote(sample.quote, &collateral_of(sample), at, policy)
}

#[test]
fn each_sample_td_quote_verifies_at_both_ends_of_its_window() {
    for (sample, report_type, version) in [(&TDX, "TD10", 4), (&TD15EX, "TD15Ex", 5)] {
        for at in [sample.from, (sample.from + sample.until) / 2, sample.until] {
            let verified = verify(sample, at, &QuotePolicy::default())
                .unwrap_or_else(|e| panic!("{report_type} at {at}: {e}"));
            assert!(verified.accepted(), "{:?}", verified.refusals);
            let facts = &verified.facts;
            assert_eq!(facts.tcb_status, TcbStatus::UpToDate);
            assert!(facts.advisory_ids.is_empty());
            assert_eq!(facts.report_type, report_type);
            assert_eq!(facts.quote_version, version);
            assert_eq!(facts.tee, "tdx");
            assert_eq!(facts.fmspc, "B0C06F000000");
            assert_eq!(verified.verified_at, at);
            assert_eq!(verified.grace_used, None);
            assert_eq!(verified.collateral.valid_until, sample.until);
        }
    }
}

#[test]
fn outside_its_window_a_quote_is_rejected() {
    for sample in [&TDX, &TD15EX, &SGX] {
        match verify(sample, sample.from - 1, &QuotePolicy::default()) {
            Err(Rejected::Invalid(e)) => assert!(e.contains("issue date is in the future"), "{e}"),
            other => panic!("before its window: {other:?}"),
        }
        let late = verify(sample, sample.until + 1, &QuotePolicy::default())
            .expect_err("after its window");
        let Rejected::CollateralExpired { window, at, .. } = &late else {
            panic!("{late:?}");
        };
        assert_eq!((window.valid_until, *at), (sample.until, sample.until + 1));
        let message = late.to_string();
        assert!(
            message.contains("1s before the verification time"),
            "{message}"
        );
        assert!(message.contains("--collateral-grace"), "{message}");
    }
    let message = verify(&TDX, TDX.until + 1, &QuotePolicy::default())
        .expect_err("late")
        .to_string();
    assert!(
        message.starts_with("the collateral expired at 2025-07-19T10:00:34Z (PCK CRL first)"),
        "{message}"
    );
}

#[test]
fn a_grace_accepts_expired_collateral_only_when_asked_and_only_that_long() {
    let day = 86_400;
    let at = TDX.until + day;
    assert!(matches!(
        verify(&TDX, at, &QuotePolicy::default()),
        Err(Rejected::CollateralExpired { .. })
    ));
    let two_days = QuotePolicy {
        collateral_grace: Duration::from_secs(2 * day),
        ..QuotePolicy::default()
    };
    let verified = verify(&TDX, at, &two_days).expect("within the grace");
    assert!(verified.accepted());
    assert_eq!(verified.grace_used, Some(day));
    assert_eq!(verified.verified_at, TDX.until);
    assert_eq!(verified.at, at);
    let an_hour = QuotePolicy {
        collateral_grace: Duration::from_secs(3600),
        ..QuotePolicy::default()
    };
    let message = verify(&TDX, at, &an_hour).expect_err("beyond").to_string();
    assert!(message.contains("the grace of 1h is shorter"), "{message}");
    // A grace never makes collateral valid before it was issued.
    assert!(matches!(
        verify(&TDX, TDX.from - 1, &two_days),
        Err(Rejected::Invalid(_))
    ));
}

/// Flips a bit of each byte of `range` (the lowest or the highest, alternately) and expects
/// every result to be rejected.
fn assert_every_flip_rejected(sample: &Sample, name: &str, range: std::ops::Range<usize>) {
    let collateral = collateral_of(sample);
    let at = sample.from;
    let mut quote = sample.quote.to_vec();
    for i in range {
        let bit = if i % 2 == 0 { 0x01u8 } else { 0x80 };
        quote[i] ^= bit;
        let result = verify_quote(&quote, &collateral, at, &QuotePolicy::default());
        assert!(
            matches!(result, Err(Rejected::Invalid(_) | Rejected::Unreadable(_))),
            "{name}: byte {i} ^ {bit:#04x} was accepted: {result:?}"
        );
        quote[i] ^= bit;
    }
}

#[test]
fn every_flipped_byte_of_header_body_and_signature_is_rejected() {
    for (sample, name) in [(&TDX, "v4 TD 1.0"), (&TD15EX, "v5 TD 1.5ex")] {
        let parsed = dcap_qvl::quote::Quote::parse(sample.quote).expect("quote");
        let signed = parsed.signed_length();
        // header (48) | [v5: body type, size] body | u32 signature data length |
        // ECDSA signature (64) | attestation key (64) | certification data type (2), size (4) |
        // QE report (384) | QE report signature (64) | QE auth data length (2) + data (32) | …
        assert_every_flip_rejected(sample, name, 0..48);
        assert_every_flip_rejected(sample, name, 48..signed);
        // The u32 after the body only frames the signature data; it is covered by no signature,
        // and dcap-qvl tolerates a length one byte off (the PEM chain's trailing bytes absorb
        // it), so it is not part of this test.
        let signature = signed + 4;
        assert_every_flip_rejected(sample, name, signature..signature + 64);
        let key = signature + 64;
        assert_every_flip_rejected(sample, name, key..key + 64);
        let qe_report = key + 64 + 6;
        assert_every_flip_rejected(sample, name, qe_report..qe_report + 384 + 64 + 2 + 32);
        // Quote and collateral unchanged still verify: nothing above passed by accident.
        assert!(verify(sample, sample.from, &QuotePolicy::default()).is_ok());
    }
}

#[test]
fn a_debug_td_is_rejected() {
    // TDATTRIBUTES is at offset 120 of the TD report body; its first byte's bit 0 is DEBUG. Set,
    // the signature no longer holds, so the verifier rejects it before any policy (the policy's
    // own refusal of a debug TD is tested on parsed facts in policy.rs).
    let mut quote = TDX.quote.to_vec();
    quote[48 + 120] |= 0x01;
    assert!(TdQuote::parse(&quote).expect("layout").debug());
    let result = verify_quote(
        &quote,
        &collateral_of(&TDX),
        TDX.from,
        &QuotePolicy::default(),
    );
    assert!(matches!(result, Err(Rejected::Invalid(_))), "{result:?}");
}

#[test]
fn platform_flags_are_reported_and_refused_only_by_name() {
    let verified = verify(&TDX, TDX.from, &QuotePolicy::default()).expect("verifies");
    let flags = verified.facts.platform_flags;
    assert_eq!(
        (flags.dynamic_platform, flags.cached_keys, flags.smt_enabled),
        (FlagState::True, FlagState::True, FlagState::True)
    );
    assert_eq!(verified.facts.pck_ca, "platform");
    assert!(verified.accepted());
    let mut no_smt = QuotePolicy::default();
    no_smt.refused_platform_flags.insert(PlatformFlag::Smt);
    assert_eq!(
        verify(&TDX, TDX.from, &no_smt).expect("verifies").refusals,
        [Refusal::PlatformFlag {
            flag: PlatformFlag::Smt
        }]
    );
}

#[test]
fn the_tcb_status_policy_applies_to_a_real_quote() {
    // The SGX sample's platform is ConfigurationAndSWHardeningNeeded with two advisories; it is
    // an enclave's quote, not a TD's, which the policy refuses too.
    let verified = verify(&SGX, SGX.from, &QuotePolicy::default()).expect("verifies");
    assert_eq!(
        verified.facts.tcb_status,
        TcbStatus::ConfigurationAndSWHardeningNeeded
    );
    assert_eq!(
        verified.facts.advisory_ids,
        ["INTEL-SA-00289", "INTEL-SA-00615"]
    );
    assert_eq!(verified.facts.pck_ca, "processor");
    assert_eq!(
        verified.facts.platform_flags.smt_enabled,
        FlagState::Undefined
    );
    let status = Refusal::TcbStatus {
        status: "ConfigurationAndSWHardeningNeeded".into(),
    };
    assert_eq!(verified.refusals, [Refusal::NotTdx, status.clone()]);
    let mut lenient = QuotePolicy::default();
    lenient.allow_status(TcbStatus::ConfigurationAndSWHardeningNeeded);
    assert_eq!(
        verify(&SGX, SGX.from, &lenient).expect("verifies").refusals,
        [Refusal::NotTdx]
    );
    let mut other = QuotePolicy::default();
    other.allow_status(TcbStatus::SWHardeningNeeded);
    other
        .rejected_advisories
        .insert(advisory("INTEL-SA-00615").expect("id"));
    assert_eq!(
        verify(&SGX, SGX.from, &other).expect("verifies").refusals,
        [
            Refusal::NotTdx,
            status,
            Refusal::Advisory {
                id: "INTEL-SA-00615".into()
            }
        ]
    );
}

#[test]
fn a_quote_whose_tcb_matches_no_level_of_its_collateral_is_rejected() {
    for at in [OUTDATED.from, OUTDATED.until] {
        match verify(&OUTDATED, at, &QuotePolicy::default()) {
            Err(Rejected::Invalid(e)) => assert!(e.contains("No matching TCB level"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_facts_are_the_quotes_registers() {
    let verified = verify(&TDX, TDX.from, &QuotePolicy::default()).expect("verifies");
    let td = verified.facts.td.as_ref().expect("a TD");
    let parsed = TdQuote::parse(TDX.quote).expect("layout");
    assert_eq!(td.mr_td, parsed.mr_td);
    assert_eq!([td.rtmr0, td.rtmr1, td.rtmr2, td.rtmr3], parsed.rtmr);
    assert_eq!(td.report_data, parsed.report_data);
    assert_eq!(td.td_attributes, parsed.td_attributes);
    assert_eq!(hex::encode(td.td_attributes), "0000001000000000");
    assert!(hex::encode(td.mr_td).starts_with("91eb2b44"));
    assert!(!td.debug);
}

#[test]
fn host_chosen_registers_are_pinned_to_zero_unless_allowed() {
    let verified = verify(&TD15EX, TD15EX.from, &QuotePolicy::default()).expect("verifies");
    let registers = verified.facts.td.as_ref().expect("a TD").registers();
    // dstack's MrConfig V1: 0x01 ‖ compose hash.
    assert_eq!(registers.mr_config_id[0], 0x01);
    let record = |config_id: Option<&[u8]>| {
        let hex48 = |m: &[u8; 48]| hex::encode(m);
        let mut value = serde_json::json!({
            "measurement_id": "td15ex",
            "measurements": {
                "mrtd": {"expected_any": [hex48(&registers.mr_td)]},
                "rtmr0": {"expected_any": [hex48(&registers.rtmr[0])]},
                "rtmr1": {"expected_any": [hex48(&registers.rtmr[1])]},
                "rtmr2": {"expected_any": [hex48(&registers.rtmr[2])]},
            }
        });
        if let Some(id) = config_id {
            value["measurements"]["mrconfigid"] =
                serde_json::json!({"expected_any": [hex::encode(id)]});
        }
        measurements::parse_file(serde_json::json!([value]).to_string().as_bytes()).expect("valid")
    };
    let outcome = measurements::check(&record(None), Some(&registers), None);
    assert!(!outcome.allowed());
    assert!(
        outcome.explain().contains("MRCONFIGID is 01"),
        "{}",
        outcome.explain()
    );
    let outcome = measurements::check(
        &record(Some(&registers.mr_config_id)),
        Some(&registers),
        None,
    );
    assert!(outcome.allowed(), "{}", outcome.explain());
}

#[test]
fn a_collateral_with_another_machines_pck_chain_still_verifies_the_quote() {
    // The TD 1.5ex sample's collateral carries its machine's PCK chain; put the other sample
    // machine's chain in instead (same FMSPC and CA, another machine).
    let other = dcap_qvl::quote::Quote::parse(TDX.quote).expect("quote");
    let other_chain = String::from_utf8_lossy(other.raw_cert_chain().expect("chain"))
        .trim_end_matches('\0')
        .to_owned();
    let mut shared = collateral_of(&TD15EX);
    let own = shared.pck_certificate_chain.clone().expect("a chain");
    assert_ne!(
        collateral::pem_certificates("own", &own).expect("pem")[0],
        collateral::pem_certificates("other", &other_chain).expect("pem")[0]
    );
    shared.pck_certificate_chain = Some(other_chain);
    // dcap-qvl prefers the collateral's chain, which is not this quote's.
    assert!(dcap_qvl::verify::verify(TD15EX.quote, &shared, TD15EX.from).is_err());
    let verified = verify_quote(TD15EX.quote, &shared, TD15EX.from, &QuotePolicy::default())
        .expect("the quote's own chain is used");
    assert!(verified.accepted());
    assert!(verified.collateral_pck_chain_ignored);
    // The shareable form has no chain at all, and verifies too.
    let verified = verify_quote(
        TD15EX.quote,
        &collateral::shareable(&shared),
        TD15EX.from,
        &QuotePolicy::default(),
    )
    .expect("verifies");
    assert!(!verified.collateral_pck_chain_ignored);
}

#[test]
fn what_is_not_a_quote_or_not_its_collateral_is_named() {
    assert!(matches!(
        verify_quote(
            b"not a quote",
            &collateral_of(&TDX),
            TDX.from,
            &QuotePolicy::default()
        ),
        Err(Rejected::Unreadable(_))
    ));
    // Another platform model's collateral (the outdated sample's FMSPC is 90C06F000000).
    let mut mixed = collateral_of(&OUTDATED);
    mixed.pck_certificate_chain = None;
    let result = verify_quote(TDX.quote, &mixed, OUTDATED.from, &QuotePolicy::default());
    assert!(
        matches!(result, Err(Rejected::Invalid(ref e)) if e.contains("Fmspc mismatch")),
        "{result:?}"
    );
}

#[test]
fn the_collateral_window_is_the_one_dcap_qvl_enforces() {
    for sample in [&TDX, &TD15EX, &SGX] {
        let quote = dcap_qvl::quote::Quote::parse(sample.quote).expect("quote");
        let window: Window = collateral::window(&quote, &collateral_of(sample)).expect("window");
        assert_eq!(
            (window.valid_from, window.valid_until),
            (sample.from, sample.until)
        );
    }
}
