//! What a verified quote says, in the form this project prints and its policy judges: the
//! facts of the quote, its TD report and its platform's flags. Plain data: the verifier
//! produces it, the policy reads it.

use std::fmt;

use dcap_qvl::quote::Report;
use dcap_qvl::{PckCertFlag, QuoteClaims, TcbStatus};
use serde::Serialize;

use crate::attestation::measurements::TdRegisters;
use crate::attestation::quote::{Measurement, TD_ATTRIBUTES_DEBUG};

/// The platform flags of a Platform CA's PCK certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlatformFlag {
    /// The platform can be extended with more packages (multi-package platforms).
    DynamicPlatform,
    /// The platform's root keys are cached by Intel's registration service.
    CachedKeys,
    /// Simultaneous multithreading (hyperthreading) is on.
    Smt,
}

impl PlatformFlag {
    pub const ALL: [PlatformFlag; 3] = [Self::DynamicPlatform, Self::CachedKeys, Self::Smt];

    pub fn name(self) -> &'static str {
        match self {
            Self::DynamicPlatform => "dynamic-platform",
            Self::CachedKeys => "cached-keys",
            Self::Smt => "smt",
        }
    }
}

impl fmt::Display for PlatformFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A PCK certificate's platform flag: set, not set, or absent (Processor CA certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagState {
    True,
    False,
    Undefined,
}

impl FlagState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "true",
            Self::False => "false",
            Self::Undefined => "undefined",
        }
    }
}

impl From<PckCertFlag> for FlagState {
    fn from(flag: PckCertFlag) -> Self {
        match flag {
            PckCertFlag::True => Self::True,
            PckCertFlag::False => Self::False,
            PckCertFlag::Undefined => Self::Undefined,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformFlags {
    pub dynamic_platform: FlagState,
    pub cached_keys: FlagState,
    pub smt_enabled: FlagState,
}

impl PlatformFlags {
    pub fn get(&self, flag: PlatformFlag) -> FlagState {
        match flag {
            PlatformFlag::DynamicPlatform => self.dynamic_platform,
            PlatformFlag::CachedKeys => self.cached_keys,
            PlatformFlag::Smt => self.smt_enabled,
        }
    }
}

/// What a TD's report says (hex in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TdFacts {
    #[serde(with = "hex::serde")]
    pub td_attributes: [u8; 8],
    pub debug: bool,
    #[serde(with = "hex::serde")]
    pub xfam: [u8; 8],
    #[serde(with = "hex::serde")]
    pub mr_seam: Measurement,
    #[serde(with = "hex::serde")]
    pub tee_tcb_svn: [u8; 16],
    #[serde(with = "hex::serde")]
    pub mr_td: Measurement,
    #[serde(with = "hex::serde")]
    pub mr_config_id: Measurement,
    #[serde(with = "hex::serde")]
    pub mr_owner: Measurement,
    #[serde(with = "hex::serde")]
    pub mr_owner_config: Measurement,
    #[serde(with = "hex::serde")]
    pub rtmr0: Measurement,
    #[serde(with = "hex::serde")]
    pub rtmr1: Measurement,
    #[serde(with = "hex::serde")]
    pub rtmr2: Measurement,
    #[serde(with = "hex::serde")]
    pub rtmr3: Measurement,
    #[serde(with = "hex::serde")]
    pub report_data: [u8; 64],
}

impl TdFacts {
    pub(super) fn of(report: &dcap_qvl::quote::TDReport10) -> Self {
        Self {
            td_attributes: report.td_attributes,
            debug: report.td_attributes[0] & TD_ATTRIBUTES_DEBUG != 0,
            xfam: report.xfam,
            mr_seam: report.mr_seam,
            tee_tcb_svn: report.tee_tcb_svn,
            mr_td: report.mr_td,
            mr_config_id: report.mr_config_id,
            mr_owner: report.mr_owner,
            mr_owner_config: report.mr_owner_config,
            rtmr0: report.rt_mr0,
            rtmr1: report.rt_mr1,
            rtmr2: report.rt_mr2,
            rtmr3: report.rt_mr3,
            report_data: report.report_data,
        }
    }

    /// All registers zero, attributes SEPT_VE_DISABLE only (tests of the policy functions).
    pub fn zeroed() -> Self {
        Self {
            td_attributes: [0, 0, 0, 0x10, 0, 0, 0, 0],
            debug: false,
            xfam: [0; 8],
            mr_seam: [0; 48],
            tee_tcb_svn: [0; 16],
            mr_td: [0; 48],
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
            rtmr0: [0; 48],
            rtmr1: [0; 48],
            rtmr2: [0; 48],
            rtmr3: [0; 48],
            report_data: [0; 64],
        }
    }

    pub fn registers(&self) -> TdRegisters {
        TdRegisters {
            mr_td: self.mr_td,
            rtmr: [self.rtmr0, self.rtmr1, self.rtmr2, self.rtmr3],
            mr_config_id: self.mr_config_id,
            mr_owner: self.mr_owner,
            mr_owner_config: self.mr_owner_config,
        }
    }
}

/// What a verified quote says: the claims dcap-qvl establishes, in the form this project prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteFacts {
    pub quote_version: u16,
    /// `tdx` or `sgx`.
    pub tee: &'static str,
    /// `TD10`, `TD15`, `TD15Ex` or `SGX`.
    pub report_type: &'static str,
    /// The converged status (platform, TDX module and QE).
    pub tcb_status: TcbStatus,
    /// Intel advisories of the platform, TDX module and QE TCB levels.
    pub advisory_ids: Vec<String>,
    pub platform_tcb_status: TcbStatus,
    pub platform_tcb_date: String,
    pub qe_tcb_status: TcbStatus,
    pub tcb_evaluation_data_number: u32,
    /// The platform model (uppercase hex), which the TCB Info is for.
    pub fmspc: String,
    /// `platform` or `processor`: which PCK CA issued the PCK certificate.
    pub pck_ca: &'static str,
    pub platform_flags: PlatformFlags,
    /// `None` for an SGX quote.
    pub td: Option<TdFacts>,
}

impl QuoteFacts {
    pub(super) fn of(claims: &QuoteClaims, pck_ca: &'static str) -> Self {
        let (report_type, td) = match &claims.report {
            Report::SgxEnclave(_) => ("SGX", None),
            Report::TD10(r) => ("TD10", Some(TdFacts::of(r))),
            Report::TD15(r) => ("TD15", Some(TdFacts::of(&r.base))),
            Report::TD15Ex(r) => ("TD15Ex", Some(TdFacts::of(&r.base.base))),
        };
        let pck = &claims.platform.pck;
        Self {
            quote_version: claims.header.version,
            tee: if claims.header.is_sgx() { "sgx" } else { "tdx" },
            report_type,
            tcb_status: claims.tcb.status,
            advisory_ids: claims.tcb.advisory_ids.clone(),
            platform_tcb_status: claims.platform.tcb_level.tcb_status,
            platform_tcb_date: claims.platform.tcb_level.tcb_date.clone(),
            qe_tcb_status: claims.qe.tcb_level.tcb_status,
            tcb_evaluation_data_number: claims.tcb.eval_data_number,
            fmspc: hex::encode_upper(pck.fmspc),
            pck_ca,
            platform_flags: PlatformFlags {
                dynamic_platform: pck.dynamic_platform.into(),
                cached_keys: pck.cached_keys.into(),
                smt_enabled: pck.smt_enabled.into(),
            },
            td,
        }
    }
}
