//! Admission of a peer to a DON across enclaves (docs/design/don-across-tees.md): everything
//! `enclave verify-identity` checks of the peer's identity document must pass — the evidence over
//! the identity, allowed measurements, key birth evidence, the same signed configuration, and the
//! member's operator signature ([`super::member_key`]) — and the key the peer holds on the
//! connection must be one of the nodes that document lists.

use std::fmt;

use super::identity::NodeIdentity;
use super::measurements::MeasurementRecord;
use super::verify::{self, Outcome, QuoteCheck};
use crate::config::signature::PublicKey;
use crate::keys::peer_id::PeerId;

/// What a peer is admitted against: this enclave's own signed configuration and what it trusts.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The signed configuration document this enclave runs (same digest required).
    pub configuration: &'a serde_json::Value,
    /// The key the configuration is verified with (the image's).
    pub public_key: &'a PublicKey,
    /// `attestation.allowedMeasurements`.
    pub measurements: &'a [MeasurementRecord],
    /// The simulated provider's development CA or Super Protocol's root (DER).
    pub trusted_cas: &'a [Vec<u8>],
    /// Intel's collateral and policy, for TDX quotes.
    pub quote_check: Option<QuoteCheck<'a>>,
    /// Simulated evidence (dev chains only).
    pub allow_simulated: bool,
    /// Unix seconds at which certificates must be valid (`None`: now).
    pub at: Option<u64>,
}

/// A member whose identity document was admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmittedMember {
    pub member: String,
    /// Every node of the member, as its identity lists them.
    pub nodes: Vec<NodeIdentity>,
    pub boot_id: String,
}

/// An admitted peer on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub member: AdmittedMember,
    /// The node the peer's connection key is.
    pub node: NodeIdentity,
}

/// Why a peer was refused. [`Refusal::reason`] is a bounded label for metrics; the `Display`
/// form says what failed (the checks' own messages, which escape what the peer wrote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The identity does not verify: its evidence, measurements, key births, configuration or
    /// member signature (the failed checks' messages).
    Evidence(Vec<String>),
    /// The connection's key is none of the nodes the identity lists.
    KeyNotInIdentity,
    /// The identity names no member (a single-enclave identity).
    NoMember,
}

impl Refusal {
    /// One of a few fixed words.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Evidence(failed) => classify(failed),
            Refusal::KeyNotInIdentity => "key_not_in_identity",
            Refusal::NoMember => "not_a_member",
        }
    }
}

/// The refusal's metric label from the first failed check.
fn classify(failed: &[String]) -> &'static str {
    let first = failed.first().map(String::as_str).unwrap_or_default();
    let has = |word: &str| first.contains(word);
    if has("configuration digest") || has("configuration's signature") || has("verifying key") {
        "other_configuration"
    } else if has("does not list") || has("names no member") || has("no `don` section") {
        "not_a_member"
    } else if has("member") && has("runs") {
        "member_nodes"
    } else if has("member") {
        "member_signature"
    } else if has("measurement") || has("RTMR") || has("MRTD") || has("allowed") {
        "measurement_not_allowed"
    } else if has("debug") || has("DEBUG") {
        "debug_td"
    } else if has("INSECURE") || has("simulated") {
        "simulated_not_allowed"
    } else if has("collateral") || has("TCB") {
        "collateral"
    } else if has("birth") || has("BIRTH") {
        "key_birth"
    } else {
        "evidence"
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Evidence(failed) => {
                write!(f, "its identity does not verify: {}", failed.join("; "))
            }
            Refusal::KeyNotInIdentity => {
                write!(
                    f,
                    "its connection key is none of the nodes its identity lists"
                )
            }
            Refusal::NoMember => write!(f, "its identity names no member of the DON"),
        }
    }
}

/// Decides whether the peer holding `peer` on a connection, presenting the identity document
/// `text`, is admitted under `policy`.
pub fn admit(text: &str, peer: &PeerId, policy: &Policy<'_>) -> Result<Admitted, Refusal> {
    let member = admit_document(text, policy)?;
    let peer = peer.to_string();
    let node = member
        .nodes
        .iter()
        .find(|n| n.peer_id == peer)
        .cloned()
        .ok_or(Refusal::KeyNotInIdentity)?;
    Ok(Admitted { member, node })
}

/// Decides whether the identity document `text` admits its member under `policy` (the key a
/// peer holds is then checked on each connection: [`admit`]).
pub fn admit_document(text: &str, policy: &Policy<'_>) -> Result<AdmittedMember, Refusal> {
    let (report, document) = verify::verify_and_read(
        text,
        &verify::Evidence {
            configuration: Some(policy.configuration),
            public_key: Some(policy.public_key),
            measurements: Some((policy.measurements, "attestation.allowedMeasurements")),
            trusted_cas: policy.trusted_cas,
            quote_check: policy.quote_check,
            allow_simulated: policy.allow_simulated,
            at: policy.at,
            require_birth: true,
            ..verify::Evidence::default()
        },
    );
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| c.to_string())
        .collect();
    if !failed.is_empty() {
        return Err(Refusal::Evidence(failed));
    }
    // It verified, so it was read.
    let Some(document) = document else {
        return Err(Refusal::Evidence(vec![
            "the document was not read".to_owned()
        ]));
    };
    let identity = document.identity;
    let member = identity.member.ok_or(Refusal::NoMember)?;
    Ok(AdmittedMember {
        member,
        nodes: identity.nodes,
        boot_id: identity.boot_id,
    })
}

#[cfg(test)]
mod tests;
