//! What a verified quote must also satisfy to be accepted: the decisions dcap-qvl leaves to its
//! caller (it applies no TCB policy and reports the platform flags), as one plain function,
//! [`evaluate`], over the facts of a verified quote.
//!
//! - TCB status: `UpToDate` is accepted; any other status only when named
//!   (`--allow-tcb-status`, `allowedTcbStatuses`). `Revoked` never.
//! - Advisories: accepted unless named (`--reject-advisory`, `rejectAdvisories`).
//! - Platform flags (dynamic platform, cached keys, SMT; the public clouds set all three):
//!   reported and accepted unless refused by name (`--refuse-platform-flag`,
//!   `refusePlatformFlags`).
//! - A debug TD: always refused (the host can read and change its memory).
//! - Expired collateral: refused, unless a grace is given (`--collateral-grace`,
//!   `collateralGraceSeconds`); the verifier then checks the quote as of the moment the
//!   collateral expired and says so.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use dcap_qvl::TcbStatus;
use serde::Serialize;
use serde_json::Value;

pub use super::facts::PlatformFlag;
use super::facts::{FlagState, QuoteFacts};
use crate::config::json;
use crate::config::reader::{Fields, Problem, Report};

/// Grace beyond which expired collateral says nothing about the platform's current TCB.
pub const MAX_COLLATERAL_GRACE: Duration = Duration::from_secs(365 * 24 * 3600);
/// A policy file is a few lines.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// Every status a policy can name (all but `UpToDate`, always accepted, and `Revoked`, never).
pub const NAMEABLE_STATUSES: [TcbStatus; 7] = [
    TcbStatus::SWHardeningNeeded,
    TcbStatus::ConfigurationNeeded,
    TcbStatus::ConfigurationAndSWHardeningNeeded,
    TcbStatus::OutOfDate,
    TcbStatus::OutOfDateConfigurationNeeded,
    TcbStatus::TDRelaunchAdvised,
    TcbStatus::TDRelaunchAdvisedConfigurationNeeded,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("Revoked can never be accepted")]
    Revoked,
    #[error("UpToDate is always accepted; name only the other statuses")]
    UpToDate,
    #[error("unknown TCB status {0:?}; one of {names}", names = status_names())]
    UnknownStatus(String),
    #[error("unknown platform flag {0:?}; one of dynamic-platform, cached-keys, smt")]
    UnknownFlag(String),
    #[error("advisory {0:?} is not an Intel advisory id such as INTEL-SA-00615")]
    Advisory(String),
}

fn status_names() -> String {
    NAMEABLE_STATUSES
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A TCB status by its name (dcap-qvl's and Intel's: `SWHardeningNeeded`, `OutOfDate`, …).
pub fn tcb_status(name: &str) -> Result<TcbStatus, NameError> {
    if name == "Revoked" {
        return Err(NameError::Revoked);
    }
    if name == "UpToDate" {
        return Err(NameError::UpToDate);
    }
    NAMEABLE_STATUSES
        .into_iter()
        .find(|s| s.to_string() == name)
        .ok_or_else(|| NameError::UnknownStatus(bounded(name)))
}

pub fn platform_flag(name: &str) -> Result<PlatformFlag, NameError> {
    PlatformFlag::ALL
        .into_iter()
        .find(|f| f.name() == name)
        .ok_or_else(|| NameError::UnknownFlag(bounded(name)))
}

/// Intel advisory ids are `INTEL-SA-` and digits; stored uppercase.
pub fn advisory(id: &str) -> Result<String, NameError> {
    let upper = id.to_ascii_uppercase();
    let ok = upper
        .strip_prefix("INTEL-SA-")
        .is_some_and(|n| !n.is_empty() && n.len() <= 8 && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(upper)
    } else {
        Err(NameError::Advisory(bounded(id)))
    }
}

/// Input echoed in an error, cut short: enough to find the typo.
fn bounded(text: &str) -> String {
    text.chars().take(64).collect()
}

/// What a quote must satisfy beyond its signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotePolicy {
    /// Statuses accepted besides `UpToDate`.
    #[serde(serialize_with = "status_list")]
    pub allowed_tcb_statuses: BTreeSet<String>,
    pub rejected_advisories: BTreeSet<String>,
    pub refused_platform_flags: BTreeSet<PlatformFlag>,
    /// How long after the collateral expired it is still used (zero: not at all).
    #[serde(rename = "collateralGraceSeconds", serialize_with = "seconds")]
    pub collateral_grace: Duration,
}

fn status_list<S: serde::Serializer>(set: &BTreeSet<String>, s: S) -> Result<S::Ok, S::Error> {
    let mut all: Vec<&str> = vec!["UpToDate"];
    all.extend(set.iter().map(String::as_str));
    all.serialize(s)
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    d.as_secs().serialize(s)
}

impl Default for QuotePolicy {
    /// `UpToDate` only, every advisory and platform flag accepted, no grace.
    fn default() -> Self {
        Self {
            allowed_tcb_statuses: BTreeSet::new(),
            rejected_advisories: BTreeSet::new(),
            refused_platform_flags: BTreeSet::new(),
            collateral_grace: Duration::ZERO,
        }
    }
}

impl QuotePolicy {
    pub fn allow_status(&mut self, status: TcbStatus) {
        self.allowed_tcb_statuses.insert(status.to_string());
    }

    pub fn accepts_status(&self, status: TcbStatus) -> bool {
        status == TcbStatus::UpToDate || self.allowed_tcb_statuses.contains(&status.to_string())
    }

    /// Reads a policy object (a policy file, paths in errors from `path`).
    pub fn read(r: &mut Report, path: &str, value: &Value) -> Self {
        let mut policy = Self::default();
        let Some(mut f) = Fields::of(r, path, value) else {
            return policy;
        };
        let names = |r: &mut Report, f: &mut Fields<'_>, key: &str| -> Vec<(String, String)> {
            f.array(r, key)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(path, v)| match v {
                    Value::String(s) => Some((path, s.clone())),
                    _ => {
                        r.error(path, "must be a string");
                        None
                    }
                })
                .collect()
        };
        for (path, name) in names(r, &mut f, "allowedTcbStatuses") {
            match tcb_status(&name) {
                Ok(status) => policy.allow_status(status),
                // Listing UpToDate is harmless.
                Err(NameError::UpToDate) => {}
                Err(e) => r.error(path, e.to_string()),
            }
        }
        for (path, name) in names(r, &mut f, "rejectAdvisories") {
            match advisory(&name) {
                Ok(id) => {
                    policy.rejected_advisories.insert(id);
                }
                Err(e) => r.error(path, e.to_string()),
            }
        }
        for (path, name) in names(r, &mut f, "refusePlatformFlags") {
            match platform_flag(&name) {
                Ok(flag) => {
                    policy.refused_platform_flags.insert(flag);
                }
                Err(e) => r.error(path, e.to_string()),
            }
        }
        if let Some(secs) = f.integer(
            r,
            "collateralGraceSeconds",
            0,
            MAX_COLLATERAL_GRACE.as_secs(),
        ) {
            policy.collateral_grace = Duration::from_secs(secs);
        }
        f.finish(r, &[]);
        policy
    }

    /// Reads a policy file's bytes.
    pub fn parse_file(bytes: &[u8]) -> Result<Self, PolicyFileError> {
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(PolicyFileError::TooLarge(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| PolicyFileError::NotText)?;
        let value = json::parse_strict(text).map_err(|e| PolicyFileError::Json(e.to_string()))?;
        let mut r = Report::default();
        let policy = Self::read(&mut r, "$", &value);
        if r.is_ok() {
            Ok(policy)
        } else {
            Err(PolicyFileError::Invalid(r.problems))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("the policy file is {0} bytes, more than {MAX_POLICY_BYTES}")]
    TooLarge(usize),
    #[error("the policy file is not UTF-8 text")]
    NotText,
    #[error("the policy file is not valid JSON: {0}")]
    Json(String),
    #[error("the policy file is invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
}

/// One reason the policy refuses a verified quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Refusal {
    /// The quote is not from a TD (an SGX enclave's quote).
    NotTdx,
    /// The TD runs in debug mode.
    DebugTd,
    TcbStatus {
        status: String,
    },
    Advisory {
        id: String,
    },
    PlatformFlag {
        flag: PlatformFlag,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotTdx => f.write_str("the quote is not a TDX quote (an SGX enclave's)"),
            Self::DebugTd => f.write_str(
                "the TD runs in DEBUG mode: the host can read and change its memory (always refused)",
            ),
            Self::TcbStatus { status } if status == "Revoked" => {
                f.write_str("TCB status Revoked: never accepted")
            }
            Self::TcbStatus { status } => write!(
                f,
                "TCB status {status} is not accepted by the policy (accept it with --allow-tcb-status {status})"
            ),
            Self::Advisory { id } => write!(f, "advisory {id} is rejected by the policy"),
            Self::PlatformFlag { flag } => {
                write!(f, "platform flag {flag} is set and the policy refuses it")
            }
        }
    }
}

/// Everything the policy refuses in a verified quote (empty: accepted).
pub fn evaluate(facts: &QuoteFacts, policy: &QuotePolicy) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    match &facts.td {
        None => refusals.push(Refusal::NotTdx),
        Some(td) if td.debug => refusals.push(Refusal::DebugTd),
        Some(_) => {}
    }
    if !policy.accepts_status(facts.tcb_status) {
        refusals.push(Refusal::TcbStatus {
            status: facts.tcb_status.to_string(),
        });
    }
    for id in &facts.advisory_ids {
        if policy
            .rejected_advisories
            .contains(&id.to_ascii_uppercase())
        {
            refusals.push(Refusal::Advisory { id: id.clone() });
        }
    }
    for flag in PlatformFlag::ALL {
        if facts.platform_flags.get(flag) == FlagState::True
            && policy.refused_platform_flags.contains(&flag)
        {
            refusals.push(Refusal::PlatformFlag { flag });
        }
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::super::verifier::{PlatformFlags, TdFacts};
    use super::*;
    use serde_json::json;

    fn facts(status: TcbStatus) -> QuoteFacts {
        QuoteFacts {
            quote_version: 4,
            tee: "tdx",
            report_type: "TD10",
            tcb_status: status,
            advisory_ids: vec!["INTEL-SA-00615".into()],
            platform_tcb_status: status,
            platform_tcb_date: "2024-03-13T00:00:00Z".into(),
            qe_tcb_status: TcbStatus::UpToDate,
            tcb_evaluation_data_number: 17,
            fmspc: "B0C06F000000".into(),
            pck_ca: "platform",
            platform_flags: PlatformFlags {
                dynamic_platform: FlagState::True,
                cached_keys: FlagState::True,
                smt_enabled: FlagState::False,
            },
            td: Some(TdFacts::zeroed()),
        }
    }

    #[test]
    fn tcb_statuses_other_than_up_to_date_are_accepted_only_when_named() {
        use TcbStatus::*;
        let mut lenient = QuotePolicy::default();
        lenient.allow_status(SWHardeningNeeded);
        lenient.allow_status(OutOfDate);
        // (status, policy, accepted)
        let table = [
            (UpToDate, QuotePolicy::default(), true),
            (SWHardeningNeeded, QuotePolicy::default(), false),
            (
                ConfigurationAndSWHardeningNeeded,
                QuotePolicy::default(),
                false,
            ),
            (OutOfDate, QuotePolicy::default(), false),
            (TDRelaunchAdvised, QuotePolicy::default(), false),
            (Revoked, QuotePolicy::default(), false),
            (UpToDate, lenient.clone(), true),
            (SWHardeningNeeded, lenient.clone(), true),
            (OutOfDate, lenient.clone(), true),
            (OutOfDateConfigurationNeeded, lenient.clone(), false),
            (Revoked, lenient.clone(), false),
        ];
        for (status, policy, accepted) in table {
            let refusals = evaluate(&facts(status), &policy);
            assert_eq!(refusals.is_empty(), accepted, "{status}: {refusals:?}");
            if !accepted {
                assert_eq!(
                    refusals,
                    [Refusal::TcbStatus {
                        status: status.to_string()
                    }]
                );
            }
        }
    }

    #[test]
    fn a_debug_td_is_refused_whatever_the_policy() {
        let mut debug = facts(TcbStatus::UpToDate);
        debug.td.as_mut().expect("td").debug = true;
        let mut lenient = QuotePolicy::default();
        for status in NAMEABLE_STATUSES {
            lenient.allow_status(status);
        }
        lenient.collateral_grace = MAX_COLLATERAL_GRACE;
        for policy in [QuotePolicy::default(), lenient] {
            assert_eq!(evaluate(&debug, &policy), [Refusal::DebugTd]);
        }
        let mut sgx = facts(TcbStatus::UpToDate);
        sgx.td = None;
        assert_eq!(evaluate(&sgx, &QuotePolicy::default()), [Refusal::NotTdx]);
    }

    #[test]
    fn platform_flags_are_accepted_unless_refused_by_name() {
        let f = facts(TcbStatus::UpToDate);
        assert!(evaluate(&f, &QuotePolicy::default()).is_empty());
        let policy = QuotePolicy {
            refused_platform_flags: PlatformFlag::ALL.into_iter().collect(),
            ..QuotePolicy::default()
        };
        // SMT is False in these facts; the other two are True.
        assert_eq!(
            evaluate(&f, &policy),
            [
                Refusal::PlatformFlag {
                    flag: PlatformFlag::DynamicPlatform
                },
                Refusal::PlatformFlag {
                    flag: PlatformFlag::CachedKeys
                }
            ]
        );
        // A Processor CA certificate has no flags: nothing to refuse.
        let mut processor = f.clone();
        processor.platform_flags = PlatformFlags {
            dynamic_platform: FlagState::Undefined,
            cached_keys: FlagState::Undefined,
            smt_enabled: FlagState::Undefined,
        };
        assert!(evaluate(&processor, &policy).is_empty());
    }

    #[test]
    fn advisories_are_accepted_unless_rejected_by_name() {
        let f = facts(TcbStatus::UpToDate);
        let mut policy = QuotePolicy::default();
        policy
            .rejected_advisories
            .insert(advisory("intel-sa-00615").expect("id"));
        assert_eq!(
            evaluate(&f, &policy),
            [Refusal::Advisory {
                id: "INTEL-SA-00615".into()
            }]
        );
        policy.rejected_advisories = [advisory("INTEL-SA-00334").expect("id")].into();
        assert!(evaluate(&f, &policy).is_empty());
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            tcb_status("OutOfDate").expect("known"),
            TcbStatus::OutOfDate
        );
        assert_eq!(tcb_status("Revoked"), Err(NameError::Revoked));
        assert_eq!(tcb_status("UpToDate"), Err(NameError::UpToDate));
        assert!(matches!(
            tcb_status("outofdate"),
            Err(NameError::UnknownStatus(_))
        ));
        assert_eq!(platform_flag("smt").expect("known"), PlatformFlag::Smt);
        assert!(platform_flag("SMT").is_err());
        assert!(advisory("INTEL-SA-").is_err());
        assert!(advisory("CVE-2024-1").is_err());
    }

    #[test]
    fn a_policy_file_is_read_with_every_problem_named() {
        let good = json!({
            "allowedTcbStatuses": ["UpToDate", "SWHardeningNeeded"],
            "rejectAdvisories": ["INTEL-SA-00334"],
            "refusePlatformFlags": ["smt"],
            "collateralGraceSeconds": 86400
        });
        let policy = QuotePolicy::parse_file(good.to_string().as_bytes()).expect("valid");
        assert!(policy.accepts_status(TcbStatus::SWHardeningNeeded));
        assert!(!policy.accepts_status(TcbStatus::OutOfDate));
        assert_eq!(policy.collateral_grace, Duration::from_secs(86400));
        assert_eq!(
            serde_json::to_value(&policy).expect("json")["allowedTcbStatuses"],
            json!(["UpToDate", "SWHardeningNeeded"])
        );
        let bad = json!({
            "allowedTcbStatuses": ["Revoked", 3],
            "refusePlatformFlags": ["hyperthreading"],
            "collateralGraceSeconds": 400_000_000u64,
            "graceSeconds": 1
        });
        let Err(PolicyFileError::Invalid(problems)) =
            QuotePolicy::parse_file(bad.to_string().as_bytes())
        else {
            panic!("invalid");
        };
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "$.allowedTcbStatuses[1]: must be a string",
                "$.allowedTcbStatuses[0]: Revoked can never be accepted",
                "$.refusePlatformFlags[0]: unknown platform flag \"hyperthreading\"; one of dynamic-platform, cached-keys, smt",
                "$.collateralGraceSeconds: must be between 0 and 31536000",
                "$.graceSeconds: unknown field",
            ]
        );
    }
}
