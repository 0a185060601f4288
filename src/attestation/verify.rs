//! What `enclave verify-identity` checks: the document against itself (its recorded digests),
//! against a configuration and an expected verifying key, against a TDX quote (with Intel's
//! collateral: its signatures, certificates, CRLs and TCB under a policy, by the one quote
//! verifier [`super::dcap::verify_quote`]; then REPORTDATA, debug mode, recorded digest),
//! against an RTMR3 event log (replay) and against allowed measurements (MRTD, RTMR0–2, the
//! host-chosen registers and the identity's configuration and software). Each check is a line
//! of the report; one failed check fails the verification.

use std::fmt;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::birth::BIRTH_FILE;
use super::dcap::collateral::rfc3339;
use super::dcap::verify_quote;
use super::evidence::check::{check as check_evidence, Trust};
use super::evidence::{self as ev};
use super::identity::{AttestationStatus, IdentityDigests, IdentityDocument, FORMAT};
use super::measurements::{self, IdentityFacts, MeasurementRecord, TdRegisters};
use super::member_key;
pub use super::outcome::{Outcome, QuoteCheck};
use super::quote::TdQuote;
use super::rtmr;
use crate::config::schema::don::DonConfig;
use crate::config::signature::PublicKey;
use crate::config::{json, validate_document, verify_document};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub outcome: Outcome,
    pub message: String,
}

/// Messages quote the document under test, which anyone may have written: one escaped line.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  {}",
            self.outcome,
            crate::logging::Untrusted::bounded(&self.message, 2000)
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, outcome: Outcome, message: impl Into<String>) {
        self.checks.push(Check {
            outcome,
            message: message.into(),
        });
    }

    fn pass_if(&mut self, holds: bool, pass: impl Into<String>, fail: impl Into<String>) {
        if holds {
            self.add(Outcome::Pass, pass);
        } else {
            self.add(Outcome::Fail, fail);
        }
    }

    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .count()
    }

    pub fn passes(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Pass)
            .count()
    }

    pub fn verified(&self) -> bool {
        self.failures() == 0
    }
}

/// What to verify the identity document against.
#[derive(Debug, Default)]
pub struct Evidence<'a> {
    /// The TDX quote's bytes.
    pub quote: Option<&'a [u8]>,
    /// The configuration document (as read from its file).
    pub configuration: Option<&'a Value>,
    /// The verifying key the enclave's image should trust.
    pub public_key: Option<&'a PublicKey>,
    /// The RTMR3 event log's text.
    pub event_log: Option<&'a str>,
    /// Intel's collateral, the time and the policy to verify the quote with.
    pub quote_check: Option<QuoteCheck<'a>>,
    /// The allowed measurements, and where they come from (for the report).
    pub measurements: Option<(&'a [MeasurementRecord], &'a str)>,
    /// Certificates (DER) the verifier trusts: Super Protocol's root CA, the simulated
    /// provider's development CA.
    pub trusted_cas: &'a [Vec<u8>],
    /// Unix seconds at which certificates must be valid (default: now).
    pub at: Option<u64>,
    /// Accept simulated evidence (development runs): without it, simulated evidence fails.
    pub allow_simulated: bool,
    /// A node key without birth evidence fails the verification (else it is a note).
    pub require_birth: bool,
}

impl Evidence<'_> {
    fn trust(&self) -> Trust<'_> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Trust {
            trusted_cas: self.trusted_cas,
            at: i64::try_from(self.at.unwrap_or(now)).unwrap_or(i64::MAX),
            allow_simulated: self.allow_simulated,
            quote_check: self.quote_check,
        }
    }
}

/// Verifies the identity document `text` against `evidence`.
pub fn verify(text: &str, evidence: &Evidence<'_>) -> Report {
    verify_and_read(text, evidence).0
}

/// [`verify`], and the document it read when it could read one (whether or not it verified).
pub fn verify_and_read(text: &str, evidence: &Evidence<'_>) -> (Report, Option<IdentityDocument>) {
    let mut report = Report::default();
    // Strict parsing: with duplicate keys, two readers could see two different identities.
    let raw = match json::parse_strict(text) {
        Ok(v) => v,
        Err(e) => {
            report.add(
                Outcome::Fail,
                format!("the identity document is not valid JSON: {e}"),
            );
            return (report, None);
        }
    };
    let Some(identity_value) = raw.get("identity").filter(|v| v.is_object()) else {
        report.add(Outcome::Fail, "the document has no \"identity\" object");
        return (report, None);
    };
    let digests = match IdentityDigests::of_value(identity_value) {
        Ok(d) => d,
        Err(e) => {
            report.add(
                Outcome::Fail,
                format!("the identity cannot be canonicalised: {e}"),
            );
            return (report, None);
        }
    };
    report.add(
        Outcome::Note,
        format!(
            "identity digests (RFC 8785 canonical JSON of \"identity\"): SHA-512 {} (= REPORTDATA), \
             SHA-384 {} (= RTMR3 event digest)",
            hex::encode(digests.sha512),
            hex::encode(digests.sha384)
        ),
    );
    let document: IdentityDocument = match serde_json::from_value(raw.clone()) {
        Ok(d) => d,
        Err(e) => {
            report.add(
                Outcome::Fail,
                format!("the document does not have the {FORMAT} shape: {e}"),
            );
            return (report, None);
        }
    };
    let identity = &document.identity;
    report.pass_if(
        identity.format == FORMAT,
        format!("format {FORMAT}"),
        format!("format {:?}, this verifier reads {FORMAT}", identity.format),
    );
    report.pass_if(
        document.digests == digests.recorded(),
        "the recorded digests are those of the identity",
        "the recorded digests are not those of the identity: the document was edited",
    );
    report.pass_if(
        !identity.configuration.insecure_key,
        "the configuration was verified with the image's key",
        "the configuration was verified with a key from the command line (--insecure-public-key-file): a development run",
    );
    report.add(
        Outcome::Note,
        format!(
            "boot {} at {}; enclave {} (git {}), image {}; {} nodes",
            identity.boot_id,
            identity.boot_time,
            identity.software.version,
            identity.software.git_revision,
            identity
                .software
                .image_digest
                .as_deref()
                .unwrap_or("not stated"),
            identity.nodes.len()
        ),
    );
    check_configuration(&mut report, &document, &digests, evidence);
    check_provider(&mut report, &document, evidence);
    match (&document.evidence, evidence.quote) {
        (
            Some(other @ (ev::Evidence::SuperProtocol { .. } | ev::Evidence::Simulated { .. })),
            None,
        ) => check_signed(&mut report, &document, &digests, evidence, other),
        (Some(ev::Evidence::Tdx { quote }), None) => match ev::decode("quote", quote) {
            Ok(bytes) => check_quote(&mut report, &document, &digests, evidence, Some(&bytes)),
            Err(e) => report.add(Outcome::Fail, e),
        },
        (_, given) => check_quote(&mut report, &document, &digests, evidence, given),
    }
    check_births(&mut report, &document, evidence);
    if let Some(certificate) = &identity.order_certificate {
        report.add(
            Outcome::Note,
            format!(
                "order certificate SHA-256 {} subject {:?}: compare with the order's report (spctl orders get-report)",
                certificate.sha256_fingerprint, certificate.subject
            ),
        );
    }
    (report, Some(document))
}

fn check_configuration(
    report: &mut Report,
    document: &IdentityDocument,
    digests: &IdentityDigests,
    evidence: &Evidence<'_>,
) {
    let stated = &document.identity.configuration;
    let stated_key = PublicKey::from_base64_spki(&stated.verifying_key);
    match (evidence.public_key, &stated_key) {
        (Some(expected), Ok(stated_key)) => report.pass_if(
            expected.to_spki_der() == stated_key.to_spki_der(),
            "the verifying key is the expected one",
            format!(
                "the verifying key is {}, expected {}",
                stated.verifying_key,
                expected.to_base64_spki()
            ),
        ),
        (_, Err(e)) => report.add(
            Outcome::Fail,
            format!("the identity's verifying key is unusable: {e}"),
        ),
        (None, Ok(_)) => report.add(
            Outcome::Note,
            "the verifying key was not compared with an expected one (give --public-key or --public-key-file)",
        ),
    }
    let Some(configuration) = evidence.configuration else {
        report.add(
            Outcome::Note,
            "the configuration was not checked (give --config FILE)",
        );
        if let Some(member) = &document.identity.member {
            report.add(
                Outcome::Note,
                format!("the identity names DON member {member:?}; its operator's signature was not checked (give --config FILE)"),
            );
        }
        return;
    };
    // The signature is checked with the expected key when given, else with the stated one.
    let key = match (evidence.public_key, stated_key) {
        (Some(key), _) => key.clone(),
        (None, Ok(key)) => key,
        (None, Err(_)) => return,
    };
    match verify_document(configuration, &key) {
        Ok(verified) => {
            report.add(
                Outcome::Pass,
                format!(
                    "the configuration's signature is valid ({})",
                    verified.scheme
                ),
            );
            report.pass_if(
                verified.digest_hex == stated.digest,
                format!("the configuration digest {} matches", stated.digest),
                format!(
                    "the configuration digest is {}, the identity states {}",
                    verified.digest_hex, stated.digest
                ),
            );
            report.pass_if(
                verified.scheme.to_string() == stated.scheme,
                format!("the signature scheme {} matches", stated.scheme),
                format!(
                    "the signature scheme is {}, the identity states {}",
                    verified.scheme, stated.scheme
                ),
            );
        }
        Err(e) => report.add(
            Outcome::Fail,
            format!("the configuration's signature does not verify: {e}"),
        ),
    }
    match validate_document(configuration) {
        Ok(valid) if valid.config.don.is_some() || document.identity.member.is_some() => {
            check_member(report, document, digests, valid.config.don.as_ref());
        }
        Ok(valid) => {
            let expected: Vec<u32> = valid.config.nodes.all();
            let stated_nodes: Vec<u32> = document.identity.nodes.iter().map(|n| n.node).collect();
            report.pass_if(
                expected == stated_nodes,
                format!(
                    "the identity lists the configuration's {} nodes",
                    expected.len()
                ),
                format!(
                    "the identity lists nodes {stated_nodes:?}, the configuration has {expected:?}"
                ),
            );
        }
        Err(e) => report.add(
            Outcome::Fail,
            format!("the configuration is not valid, so the enclave would not have run it: {e}"),
        ),
    }
}

/// In a DON across enclaves: the identity names a member of the configuration, lists exactly
/// that member's nodes, and carries that member's operator signature over its SHA-512.
fn check_member(
    report: &mut Report,
    document: &IdentityDocument,
    digests: &IdentityDigests,
    don: Option<&DonConfig>,
) {
    let identity = &document.identity;
    let (don, name) = match (don, &identity.member) {
        (Some(don), Some(name)) => (don, name),
        (None, Some(name)) => {
            report.add(
                Outcome::Fail,
                format!("the identity names DON member {name:?}, but the configuration has no `don` section"),
            );
            return;
        }
        (_, None) => {
            report.add(
                Outcome::Fail,
                "the configuration describes a DON across enclaves, but the identity names no member",
            );
            return;
        }
    };
    let Some(member) = don.member(name) else {
        report.add(
            Outcome::Fail,
            format!("the identity names member {name:?}, which the configuration's don.members does not list"),
        );
        return;
    };
    let mut expected = member.nodes.clone();
    expected.sort_unstable();
    let stated: Vec<u32> = identity.nodes.iter().map(|n| n.node).collect();
    report.pass_if(
        stated == expected,
        format!("the identity lists member {name:?}'s nodes {expected:?}"),
        format!("the identity lists nodes {stated:?}, member {name:?} runs {expected:?}"),
    );
    let signed = document
        .member_signature
        .as_deref()
        .is_some_and(|s| member_key::verify_identity_signature(member, &digests.sha512, s));
    report.pass_if(
        signed,
        format!("member {name:?}'s operator key signed the identity"),
        format!("the identity is not signed by member {name:?}'s operator key (memberSignature)"),
    );
}

/// The provider the identity states, the one its evidence is from, and whether it is
/// insecure.
fn check_provider(report: &mut Report, document: &IdentityDocument, evidence: &Evidence<'_>) {
    let stated = &document.identity.evidence;
    report.add(
        Outcome::Note,
        format!(
            "evidence provider {:?} (as the identity states it)",
            stated.provider
        ),
    );
    if let Some(found) = &document.evidence {
        report.pass_if(
            found.provider() == stated.provider,
            format!(
                "the evidence is from the stated provider {}",
                found.provider()
            ),
            format!(
                "the evidence is from {}, the identity states {:?}",
                found.provider(),
                stated.provider
            ),
        );
    }
    if stated.insecure || stated.provider == ev::SIMULATED {
        if evidence.allow_simulated {
            report.add(
                Outcome::Note,
                "the identity is INSECURE (simulated provider): accepted because --allow-simulated was given",
            );
        } else {
            report.add(
                Outcome::Fail,
                "the identity is INSECURE (simulated provider): it proves no TEE (--allow-simulated accepts it in development)",
            );
        }
    }
}

/// Evidence other than a TDX quote (an order certificate's signature, simulated evidence) over
/// the identity's SHA-512, then the event log and measurements with what it carries.
fn check_signed(
    report: &mut Report,
    document: &IdentityDocument,
    digests: &IdentityDigests,
    evidence: &Evidence<'_>,
    found: &ev::Evidence,
) {
    let checked = check_evidence(found, &digests.sha512, &evidence.trust(), "the identity");
    for (outcome, message) in checked.lines {
        report.add(outcome, message);
    }
    if let (
        Some(certificate),
        ev::Evidence::SuperProtocol {
            certificate_chain, ..
        },
    ) = (&document.identity.order_certificate, found)
    {
        let leaf = certificate_chain
            .first()
            .and_then(|pem| super::order_certificate::parse(pem.as_bytes()).ok());
        report.pass_if(
            leaf.as_ref().map(|l| &l.sha256_fingerprint) == Some(&certificate.sha256_fingerprint),
            "the signing certificate is the order certificate the identity names",
            "the signing certificate is not the order certificate the identity names",
        );
    }
    let quote = match found {
        ev::Evidence::Simulated { quote, .. } => ev::decode("quote", quote)
            .ok()
            .and_then(|b| TdQuote::parse(&b).ok()),
        _ => None,
    };
    check_event_log(report, document, digests, evidence, quote.as_ref());
    check_measurements(report, document, evidence, checked.registers.as_ref());
}

/// Every node's key birth evidence: about the node's keys, valid evidence over their digest,
/// and (with measurements) from an allowed TD.
fn check_births(report: &mut Report, document: &IdentityDocument, evidence: &Evidence<'_>) {
    let trust = evidence.trust();
    for node in &document.identity.nodes {
        let birth = document.birth.iter().find(|b| b.node == node.node);
        let what = format!("node {}'s key birth", node.node);
        let Some(record) = birth.and_then(|b| b.record.as_ref()) else {
            let reason = birth
                .and_then(|b| b.missing.clone())
                .unwrap_or_else(|| format!("the document carries no {BIRTH_FILE}"));
            let message = format!(
                "node {}: NO BIRTH EVIDENCE ({reason}): nothing shows its keys were made inside a TEE",
                node.node
            );
            if evidence.require_birth {
                report.add(Outcome::Fail, message);
            } else {
                report.add(Outcome::Note, message);
            }
            continue;
        };
        let mut failed = false;
        let mut add = |report: &mut Report, outcome: Outcome, message: String| {
            failed |= outcome == Outcome::Fail;
            report.add(outcome, message);
        };
        if record.keys.public_keys != *node {
            add(
                report,
                Outcome::Fail,
                format!("{what}: its evidence is about other keys than the identity's"),
            );
        }
        if record.sha256 != hex::encode(record.keys.digest()) {
            add(
                report,
                Outcome::Fail,
                format!("{what}: the recorded digest is not that of its keys"),
            );
        }
        let checked = check_evidence(&record.evidence, &record.keys.report_data(), &trust, &what);
        for (outcome, message) in checked.lines {
            // Simulated evidence is refused once for the identity; here it is a note.
            add(report, outcome, message);
        }
        if let (Some((records, source)), Some(registers)) =
            (evidence.measurements, checked.registers.as_ref())
        {
            let outcome = measurements::check(records, Some(registers), None);
            match outcome.matched {
                Some(id) => add(
                    report,
                    Outcome::Pass,
                    format!("{what}: the TD is allowed by measurement record {id:?} ({source})"),
                ),
                None => add(
                    report,
                    Outcome::Fail,
                    format!(
                        "{what}: no allowed measurement record ({source}) matches: {}",
                        outcome.explain()
                    ),
                ),
            }
        }
        if !failed {
            report.add(
                Outcome::Pass,
                format!(
                    "node {}'s keys were born with {} evidence at boot {} ({})",
                    node.node,
                    record.evidence.provider(),
                    record.keys.boot_id,
                    record.keys.born_at
                ),
            );
        }
    }
}

fn check_quote(
    report: &mut Report,
    document: &IdentityDocument,
    digests: &IdentityDigests,
    evidence: &Evidence<'_>,
    quote: Option<&[u8]>,
) {
    let attestation = &document.attestation;
    let Some(bytes) = quote else {
        let message = match attestation.status {
            AttestationStatus::Quoted => {
                "no quote given: the document says a quote exists (give --quote identity.quote)"
                    .to_owned()
            }
            status => format!(
                "no quote: attestation {} ({}); nothing but this document states the identity",
                status.as_str(),
                attestation
                    .reason
                    .as_deref()
                    .unwrap_or("no reason recorded")
            ),
        };
        report.add(Outcome::Note, message);
        check_event_log(report, document, digests, evidence, None);
        check_measurements(report, document, evidence, None);
        return;
    };
    let quote = match TdQuote::parse(bytes) {
        Ok(q) => q,
        Err(e) => {
            report.add(Outcome::Fail, format!("the quote is not a TDX quote: {e}"));
            check_event_log(report, document, digests, evidence, None);
            check_measurements(report, document, evidence, None);
            return;
        }
    };
    report.add(
        Outcome::Pass,
        format!(
            "TDX quote v{} (TEE type {:#x}{}), {} bytes",
            quote.version,
            quote.tee_type,
            quote
                .body_type
                .map(|t| format!(", body type {t}"))
                .unwrap_or_default(),
            bytes.len()
        ),
    );
    report.pass_if(
        quote.report_data == digests.sha512,
        "the quote's REPORTDATA is the identity's SHA-512: the quote binds this identity",
        format!(
            "the quote's REPORTDATA is {}, the identity's SHA-512 is {}: the quote does not bind this identity",
            hex::encode(quote.report_data),
            hex::encode(digests.sha512)
        ),
    );
    report.pass_if(
        !quote.debug(),
        "the TD is not in debug mode",
        "the TD runs in DEBUG mode: the host can read and change its memory",
    );
    let sha256 = hex::encode(Sha256::digest(bytes));
    match &attestation.quote {
        Some(recorded) => report.pass_if(
            recorded.sha256 == sha256,
            "the quote's SHA-256 is the one the document records",
            format!(
                "the quote's SHA-256 is {sha256}, the document records {}",
                recorded.sha256
            ),
        ),
        None => report.add(
            Outcome::Note,
            format!(
                "the document records no quote (status {})",
                attestation.status.as_str()
            ),
        ),
    }
    report.add(
        Outcome::Note,
        format!(
            "measurements to compare with the image's reference values: MRTD {} RTMR0 {} RTMR1 {} RTMR2 {} RTMR3 {} MRCONFIGID {}",
            hex::encode(quote.mr_td),
            hex::encode(quote.rtmr[0]),
            hex::encode(quote.rtmr[1]),
            hex::encode(quote.rtmr[2]),
            hex::encode(quote.rtmr[3]),
            hex::encode(quote.mr_config_id)
        ),
    );
    match &evidence.quote_check {
        Some(check) => check_signatures(report, bytes, check),
        None => report.add(
            Outcome::Note,
            "the quote's signatures and Intel certificate chain are NOT verified here: give \
             --collateral FILE (enclave attestation collateral fetch makes one)",
        ),
    }
    check_event_log(report, document, digests, evidence, Some(&quote));
    let registers = TdRegisters {
        mr_td: quote.mr_td,
        rtmr: quote.rtmr,
        mr_config_id: quote.mr_config_id,
        mr_owner: quote.mr_owner,
        mr_owner_config: quote.mr_owner_config,
    };
    check_measurements(report, document, evidence, Some(&registers));
}

/// The quote's signature chain, collateral and TCB, by the one quote verifier.
fn check_signatures(report: &mut Report, bytes: &[u8], check: &QuoteCheck<'_>) {
    let verified = match verify_quote(bytes, check.collateral, check.at, check.policy) {
        Ok(v) => v,
        Err(e) => {
            report.add(Outcome::Fail, e.to_string());
            return;
        }
    };
    let facts = &verified.facts;
    report.add(
        Outcome::Pass,
        format!(
            "the quote's signatures verify to Intel's SGX root CA (PCK chain and CRLs, QE \
             identity, TCB Info) as of {}; collateral valid until {} ({} expires first)",
            rfc3339(verified.verified_at),
            rfc3339(verified.collateral.valid_until),
            verified.collateral.valid_until_part
        ),
    );
    if let Some(late) = verified.grace_used {
        report.add(
            Outcome::Note,
            format!(
                "the collateral expired {} before {}; accepted within the grace of {}, and the \
                 quote checked as of its expiry",
                humantime::format_duration(std::time::Duration::from_secs(late)),
                rfc3339(verified.at),
                humantime::format_duration(check.policy.collateral_grace)
            ),
        );
    }
    report.add(
        Outcome::Note,
        format!(
            "TCB status {} (advisories: {}); FMSPC {}, PCK CA {}; platform flags: \
             dynamic-platform {}, cached-keys {}, smt {}",
            facts.tcb_status,
            if facts.advisory_ids.is_empty() {
                "none".to_owned()
            } else {
                facts.advisory_ids.join(", ")
            },
            facts.fmspc,
            facts.pck_ca,
            facts.platform_flags.dynamic_platform.as_str(),
            facts.platform_flags.cached_keys.as_str(),
            facts.platform_flags.smt_enabled.as_str(),
        ),
    );
    if verified.accepted() {
        report.add(
            Outcome::Pass,
            format!(
                "the policy accepts the quote (TCB status {})",
                facts.tcb_status
            ),
        );
    }
    for refusal in &verified.refusals {
        report.add(Outcome::Fail, refusal.to_string());
    }
}

/// The TD's registers (when a quote was given) and the identity's facts against the allowed
/// measurements.
fn check_measurements(
    report: &mut Report,
    document: &IdentityDocument,
    evidence: &Evidence<'_>,
    registers: Option<&TdRegisters>,
) {
    let Some((records, source)) = evidence.measurements else {
        report.add(
            Outcome::Note,
            "the measurements were not compared with allowed values (give --measurements FILE, \
             or a --config with attestation.allowedMeasurements)",
        );
        return;
    };
    let software = &document.identity.software;
    let identity = IdentityFacts {
        configuration_digest: document.identity.configuration.digest.clone(),
        binary_sha256: software.binary_sha256.clone(),
        image_digest: software.image_digest.clone(),
    };
    let outcome = measurements::check(records, registers, Some(&identity));
    if !outcome.skipped.is_empty() {
        report.add(
            Outcome::Note,
            format!(
                "{} measurement record(s) of other attestation types not considered",
                outcome.skipped.len()
            ),
        );
    }
    match &outcome.matched {
        Some(id) => {
            let record = records.iter().find(|r| &r.id == id);
            let pinned: Vec<&str> = record
                .map(|r| {
                    r.registers
                        .iter()
                        .filter(|_| registers.is_some())
                        .map(|(reg, _)| reg.name())
                        .chain(r.identity.iter().map(|(f, _)| f.document_path()))
                        .collect()
                })
                .unwrap_or_default();
            if pinned.is_empty() {
                report.add(
                    Outcome::Note,
                    format!(
                        "nothing compared with measurement record {id:?} ({source}): no quote, \
                         and it pins no identity fact"
                    ),
                );
            } else {
                report.add(
                    Outcome::Pass,
                    format!(
                        "allowed by measurement record {id:?} ({source}): {}",
                        pinned.join(", ")
                    ),
                );
            }
        }
        None => report.add(
            Outcome::Fail,
            format!(
                "no allowed measurement record ({source}) matches: {}",
                outcome.explain()
            ),
        ),
    }
    if registers.is_none() {
        report.add(
            Outcome::Note,
            "the registers (MRTD, RTMR0-2, …) were not compared: no readable quote",
        );
    }
}

fn check_event_log(
    report: &mut Report,
    document: &IdentityDocument,
    digests: &IdentityDigests,
    evidence: &Evidence<'_>,
    quote: Option<&TdQuote>,
) {
    let Some(text) = evidence.event_log else {
        return;
    };
    let events = match rtmr::read_events(text) {
        Ok(events) => events,
        Err(e) => {
            report.add(
                Outcome::Fail,
                format!("the RTMR3 event log is unreadable: {e}"),
            );
            return;
        }
    };
    if let Some(start) = events.first().and_then(|e| e.rtmr_before.as_deref()) {
        if start.trim_start_matches('0').is_empty() {
            report.add(
                Outcome::Note,
                "the RTMR3 event log starts from a zero register",
            );
        } else {
            report.add(
                Outcome::Note,
                format!(
                    "the RTMR3 event log starts from {start}, not zero: RTMR3 was extended before                      this log began (by the platform, or an earlier run in the same TD), and this                      log does not say with what"
                ),
            );
        }
    }
    let digest = hex::encode(digests.sha384);
    report.pass_if(
        events
            .iter()
            .any(|e| e.digest == digest && e.boot_id == document.identity.boot_id),
        "the RTMR3 event log records this identity's SHA-384",
        "the RTMR3 event log has no event with this identity's SHA-384 and boot id",
    );
    match rtmr::replay(&events) {
        Ok(value) => {
            report.add(
                Outcome::Pass,
                format!(
                    "the RTMR3 event log replays ({} events) to {}",
                    events.len(),
                    hex::encode(value)
                ),
            );
            if let Some(quote) = quote {
                report.pass_if(
                    quote.rtmr[3] == value,
                    "the quote's RTMR3 equals the replayed event log",
                    format!(
                        "the quote's RTMR3 is {}, the event log replays to {}",
                        hex::encode(quote.rtmr[3]),
                        hex::encode(value)
                    ),
                );
            }
        }
        Err(e) => report.add(
            Outcome::Fail,
            format!("the RTMR3 event log does not replay: {e}"),
        ),
    }
}
