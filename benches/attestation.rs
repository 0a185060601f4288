//! Quote verification cost: time per quote of the verifier every command uses
//! (`enclave::attestation::dcap::verify_quote`: dcap-qvl's checks, the collateral's window and
//! the policy) and of dcap-qvl's own `verify` alone, on the real Intel-signed samples of
//! tests/fixtures/dcap. Run with `scripts/bench-attestation.sh` (release build).

use std::hint::black_box;
use std::time::{Duration, Instant};

use enclave::attestation::dcap::{collateral, verify_quote, QuotePolicy};

const ROUNDS: usize = 2000;

struct Sample {
    name: &'static str,
    quote: &'static [u8],
    collateral: &'static [u8],
    at: u64,
}

const SAMPLES: [Sample; 2] = [
    Sample {
        name: "TDX v4, TD 1.0 (tdx_quote)",
        quote: include_bytes!("../tests/fixtures/dcap/tdx_quote"),
        collateral: include_bytes!("../tests/fixtures/dcap/tdx_quote_collateral.json"),
        at: 1_751_328_000, // 2025-07-01T00:00:00Z
    },
    Sample {
        name: "TDX v5, TD 1.5ex (tdx_quote_td15ex)",
        quote: include_bytes!("../tests/fixtures/dcap/tdx_quote_td15ex"),
        collateral: include_bytes!("../tests/fixtures/dcap/tdx_quote_td15ex_collateral.json"),
        at: 1_792_800_000, // 2026-10-24
    },
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn measure(mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..50 {
        f();
    }
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn report(what: &str, times: &[Duration]) {
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "  {what:<42} mean {:>7.3} ms  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} quotes/s on one core)",
        mean.as_secs_f64() * 1e3,
        percentile(times, 0.5).as_secs_f64() * 1e3,
        percentile(times, 0.99).as_secs_f64() * 1e3,
        (1.0 / mean.as_secs_f64()) as u64
    );
}

fn main() {
    println!("quote verification, {ROUNDS} rounds each:");
    for sample in &SAMPLES {
        let collateral = collateral::parse(sample.collateral).expect("sample collateral");
        let policy = QuotePolicy::default();
        let verified =
            verify_quote(sample.quote, &collateral, sample.at, &policy).expect("sample verifies");
        assert!(verified.accepted(), "{:?}", verified.refusals);
        println!("{}:", sample.name);
        report(
            "enclave verify_quote (all checks + policy)",
            &measure(|| {
                black_box(verify_quote(
                    black_box(sample.quote),
                    &collateral,
                    sample.at,
                    &policy,
                ))
                .ok();
            }),
        );
        report(
            "dcap_qvl::verify::verify alone",
            &measure(|| {
                black_box(dcap_qvl::verify::verify(
                    black_box(sample.quote),
                    &collateral,
                    sample.at,
                ))
                .ok();
            }),
        );
        let parsed = dcap_qvl::quote::Quote::parse(sample.quote).expect("quote");
        report(
            "collateral window (dates of every part)",
            &measure(|| {
                black_box(collateral::window(&parsed, black_box(&collateral))).ok();
            }),
        );
        report(
            "collateral file parse (JSON)",
            &measure(|| {
                black_box(collateral::parse(black_box(sample.collateral))).ok();
            }),
        );
    }
}
