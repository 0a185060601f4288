//! Verifying evidence over given report data, for `enclave verify-identity`: each finding is a
//! line of the report. A TDX quote is checked as a quote (TDX, REPORTDATA, debug, and with
//! collateral Intel's signatures under the policy); an order-certificate signature with its
//! chain up to a certificate the verifier trusts; simulated evidence with the development CA the
//! verifier names, and then refused unless simulated evidence is explicitly allowed.

use super::signing::{self, verify_chain, verify_signature};
use super::{decode, simulated_digest, Evidence, ReportData};
use crate::attestation::dcap::verify_quote;
use crate::attestation::measurements::TdRegisters;
use crate::attestation::outcome::{Outcome, QuoteCheck};
use crate::attestation::quote::TdQuote;

/// What the verifier trusts.
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    /// Certificates (DER) given with `--trusted-ca`: Super Protocol's root, or the simulated
    /// provider's development CA.
    pub trusted_cas: &'a [Vec<u8>],
    /// Unix seconds: when certificates must be valid.
    pub at: i64,
    /// Simulated evidence passes only when this is set (development runs).
    pub allow_simulated: bool,
    /// Intel's collateral and the policy, for TDX quotes.
    pub quote_check: Option<QuoteCheck<'a>>,
}

/// The findings, and the TD's registers when the evidence carries a quote.
#[derive(Debug, Default)]
pub struct Checked {
    pub lines: Vec<(Outcome, String)>,
    pub registers: Option<TdRegisters>,
}

impl Checked {
    fn add(&mut self, outcome: Outcome, message: impl Into<String>) {
        self.lines.push((outcome, message.into()));
    }

    fn pass_if(&mut self, holds: bool, pass: impl Into<String>, fail: impl Into<String>) {
        if holds {
            self.add(Outcome::Pass, pass);
        } else {
            self.add(Outcome::Fail, fail);
        }
    }

    pub fn failed(&self) -> bool {
        self.lines.iter().any(|(o, _)| *o == Outcome::Fail)
    }
}

/// Checks `evidence` over `report_data`; `what` names the statement in every line ("the
/// identity", "node 2's key birth").
pub fn check(
    evidence: &Evidence,
    report_data: &ReportData,
    trust: &Trust<'_>,
    what: &str,
) -> Checked {
    let mut out = Checked::default();
    match evidence {
        Evidence::Tdx { quote } => match decode("quote", quote) {
            Ok(bytes) => check_quote(&mut out, &bytes, report_data, trust, what, true),
            Err(e) => out.add(Outcome::Fail, format!("{what}: {e}")),
        },
        Evidence::SuperProtocol {
            signature,
            certificate_chain,
            ..
        } => check_order_signature(
            &mut out,
            signature,
            certificate_chain,
            report_data,
            trust,
            what,
        ),
        Evidence::Simulated {
            quote,
            signature,
            certificate,
            ..
        } => check_simulated(
            &mut out,
            quote,
            signature,
            certificate,
            report_data,
            trust,
            what,
        ),
    }
    out
}

fn check_quote(
    out: &mut Checked,
    bytes: &[u8],
    report_data: &ReportData,
    trust: &Trust<'_>,
    what: &str,
    with_signatures: bool,
) {
    let quote = match TdQuote::parse(bytes) {
        Ok(q) => q,
        Err(e) => {
            out.add(
                Outcome::Fail,
                format!("{what}: the quote is not a TDX quote: {e}"),
            );
            return;
        }
    };
    out.pass_if(
        quote.report_data == *report_data,
        format!("{what}: the quote's REPORTDATA binds it"),
        format!(
            "{what}: the quote's REPORTDATA is {}, expected {}",
            hex::encode(quote.report_data),
            hex::encode(report_data)
        ),
    );
    out.pass_if(
        !quote.debug(),
        format!("{what}: the TD is not in debug mode"),
        format!("{what}: the TD runs in DEBUG mode"),
    );
    if with_signatures {
        match &trust.quote_check {
            Some(check) => match verify_quote(bytes, check.collateral, check.at, check.policy) {
                Ok(verified) if verified.accepted() => out.add(
                    Outcome::Pass,
                    format!(
                        "{what}: the quote's signatures verify to Intel's root and the policy \
                         accepts it (TCB status {})",
                        verified.facts.tcb_status
                    ),
                ),
                Ok(verified) => {
                    for refusal in &verified.refusals {
                        out.add(Outcome::Fail, format!("{what}: {refusal}"));
                    }
                }
                Err(e) => out.add(Outcome::Fail, format!("{what}: {e}")),
            },
            None => out.add(
                Outcome::Note,
                format!("{what}: the quote's signatures are NOT verified (give --collateral FILE)"),
            ),
        }
    }
    out.registers = Some(registers(&quote));
}

pub fn registers(quote: &TdQuote) -> TdRegisters {
    TdRegisters {
        mr_td: quote.mr_td,
        rtmr: quote.rtmr,
        mr_config_id: quote.mr_config_id,
        mr_owner: quote.mr_owner,
        mr_owner_config: quote.mr_owner_config,
    }
}

fn check_order_signature(
    out: &mut Checked,
    signature: &str,
    chain: &[String],
    report_data: &ReportData,
    trust: &Trust<'_>,
    what: &str,
) {
    let mut ders = Vec::new();
    for (i, pem) in chain.iter().enumerate() {
        match signing::certificates(pem.as_bytes()) {
            Ok(mut certs) => ders.append(&mut certs),
            Err(e) => {
                out.add(
                    Outcome::Fail,
                    format!("{what}: certificate {} of the chain: {e}", i + 1),
                );
                return;
            }
        }
    }
    let Some(leaf) = ders.first() else {
        out.add(
            Outcome::Fail,
            format!("{what}: the certificate chain is empty"),
        );
        return;
    };
    if trust.trusted_cas.is_empty() {
        out.add(
            Outcome::Fail,
            format!(
                "{what}: the order certificate chain is not anchored: give --trusted-ca FILE \
                 (Super Protocol's root CA certificate)"
            ),
        );
    } else {
        match verify_chain(&ders, trust.trusted_cas, trust.at) {
            Ok(anchor) => out.add(
                Outcome::Pass,
                format!("{what}: the order certificate chain verifies to the trusted {anchor}"),
            ),
            Err(e) => out.add(Outcome::Fail, format!("{what}: {e}")),
        }
    }
    match decode("signature", signature).and_then(|sig| verify_signature(leaf, report_data, &sig)) {
        Ok(()) => out.add(
            Outcome::Pass,
            format!("{what}: signed with the order certificate's key"),
        ),
        Err(e) => out.add(Outcome::Fail, format!("{what}: {e}")),
    }
}

fn check_simulated(
    out: &mut Checked,
    quote: &str,
    signature: &str,
    certificate: &str,
    report_data: &ReportData,
    trust: &Trust<'_>,
    what: &str,
) {
    let quote = match decode("quote", quote) {
        Ok(q) => q,
        Err(e) => {
            out.add(Outcome::Fail, format!("{what}: {e}"));
            return;
        }
    };
    match signing::certificates(certificate.as_bytes()) {
        Ok(certs) => {
            let ca = &certs[0];
            out.pass_if(
                trust.trusted_cas.contains(ca),
                format!("{what}: the simulated evidence's CA is the trusted development CA"),
                format!("{what}: the simulated evidence's CA is not one given with --trusted-ca"),
            );
            match decode("signature", signature)
                .and_then(|sig| verify_signature(ca, &simulated_digest(&quote), &sig))
            {
                Ok(()) => out.add(
                    Outcome::Pass,
                    format!("{what}: the development CA signed the simulated quote"),
                ),
                Err(e) => out.add(Outcome::Fail, format!("{what}: {e}")),
            }
        }
        Err(e) => out.add(
            Outcome::Fail,
            format!("{what}: the simulated evidence's certificate: {e}"),
        ),
    }
    check_quote(out, &quote, report_data, trust, what, false);
    if trust.allow_simulated {
        out.add(
            Outcome::Note,
            format!(
                "{what}: SIMULATED evidence (no TEE), accepted because --allow-simulated was given"
            ),
        );
    } else {
        out.add(
            Outcome::Fail,
            format!(
                "{what}: SIMULATED evidence: it proves no TEE (a development run; \
                 --allow-simulated accepts it)"
            ),
        );
    }
}
