//! The Intel TDX quote structure, read far enough to check what a quote binds: the header and
//! the TD report body (Intel TDX DCAP Quoting Library API, appendix "Quote Format"; the same
//! layout as dcap-qvl's `Quote`).
//!
//! ```text
//! v4: header (48) | TD report 1.0 body (584)                         | u32 signature data length | signature data
//! v5: header (48) | body type u16, body size u32 | TD report 1.0 (584), 1.5 (648) or 1.5ex (885) body | u32 length | signature data
//! ```
//!
//! All integers are little-endian. The TD report body is the same in 1.0 and 1.5 up to
//! REPORTDATA, its last 64 bytes in 1.0; 1.5 appends TEE_TCB_SVN2 and MRSERVICETD, 1.5ex (body
//! type 4) more after that. This module does not verify the quote's signature or Intel's
//! certificate chain: that needs Intel's collateral ([`super::dcap`] does it).

use std::fmt;

/// Bytes of the quote header.
pub const HEADER_LEN: usize = 48;
/// `tee_type` of an Intel TDX quote (0 is SGX).
pub const TEE_TYPE_TDX: u32 = 0x81;
/// Bytes of a TD report 1.0 body.
pub const TD_REPORT10_LEN: usize = 584;
/// Bytes of a TD report 1.5 body.
pub const TD_REPORT15_LEN: usize = 648;
/// Bytes of a TD report 1.5ex body (1.5 followed by the TD's id, initial TCB and service TDs).
pub const TD_REPORT15_EX_LEN: usize = 885;
/// v5 only: the body descriptor (type u16, size u32) between header and body.
pub const BODY_DESCRIPTOR_LEN: usize = 6;
/// v5 body types.
pub const BODY_TD_REPORT10: u16 = 2;
pub const BODY_TD_REPORT15: u16 = 3;
pub const BODY_TD_REPORT15_EX: u16 = 4;
/// Bytes of REPORTDATA: what the TD asked the quote to carry.
pub const REPORT_DATA_LEN: usize = 64;
// One SHA-384 measurement register (MRTD, RTMR0..3, ...): defined beside the allowed-measurement
// records in `config`, which reads them from the configuration.
pub use crate::config::measurements::{Measurement, MEASUREMENT_LEN};
/// The DEBUG bit of TDATTRIBUTES: a debug TD's memory and registers are open to the host.
pub const TD_ATTRIBUTES_DEBUG: u8 = 0x01;

// Offsets within the TD report body.
const TD_ATTRIBUTES: usize = 120;
const MR_TD: usize = 136;
const MR_CONFIG_ID: usize = 184;
const MR_OWNER: usize = 232;
const MR_OWNER_CONFIG: usize = 280;
const RTMR0: usize = 328;
const REPORT_DATA: usize = 520;

/// Why bytes are not a TDX quote this module can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("the quote is {found} bytes, too short for {what} ({needed} bytes)")]
    TooShort {
        what: &'static str,
        needed: usize,
        found: usize,
    },
    #[error("quote version {0} is not supported (TDX quotes are version 4 or 5)")]
    UnsupportedVersion(u16),
    #[error("the quote's TEE type is {0:#x}, not Intel TDX ({TEE_TYPE_TDX:#x})")]
    NotTdx(u32),
    #[error("quote v5 body type {0} is not a TD report (2 = TD report 1.0, 3 = TD report 1.5, 4 = TD report 1.5ex)")]
    UnsupportedBodyType(u16),
    #[error("quote v5 body type {body_type} declares {declared} bytes, expected {expected}")]
    BodySize {
        body_type: u16,
        declared: u32,
        expected: usize,
    },
}

/// What a TDX quote says about the TD, as read from its body.
#[derive(Clone, PartialEq, Eq)]
pub struct TdQuote {
    pub version: u16,
    pub attestation_key_type: u16,
    pub tee_type: u32,
    /// v5 only.
    pub body_type: Option<u16>,
    pub td_attributes: [u8; 8],
    pub mr_td: Measurement,
    pub mr_config_id: Measurement,
    pub mr_owner: Measurement,
    pub mr_owner_config: Measurement,
    pub rtmr: [Measurement; 4],
    pub report_data: [u8; REPORT_DATA_LEN],
    /// Bytes of the signature data after the signed part (not verified here).
    pub signature_data_len: usize,
}

impl fmt::Debug for TdQuote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TdQuote")
            .field("version", &self.version)
            .field("tee_type", &format_args!("{:#x}", self.tee_type))
            .field("body_type", &self.body_type)
            .field("td_attributes", &hex::encode(self.td_attributes))
            .field("mr_td", &hex::encode(self.mr_td))
            .field("rtmr3", &hex::encode(self.rtmr[3]))
            .field("report_data", &hex::encode(self.report_data))
            .finish_non_exhaustive()
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

fn need(bytes: &[u8], needed: usize, what: &'static str) -> Result<(), QuoteError> {
    if bytes.len() < needed {
        return Err(QuoteError::TooShort {
            what,
            needed,
            found: bytes.len(),
        });
    }
    Ok(())
}

impl TdQuote {
    /// Reads a v4 or v5 TDX quote. Every length is checked before it is used; nothing here
    /// panics on hostile input.
    pub fn parse(bytes: &[u8]) -> Result<Self, QuoteError> {
        need(bytes, HEADER_LEN, "the header")?;
        let version = u16_at(bytes, 0);
        let attestation_key_type = u16_at(bytes, 2);
        let tee_type = u32_at(bytes, 4);
        if !(4..=5).contains(&version) {
            return Err(QuoteError::UnsupportedVersion(version));
        }
        if tee_type != TEE_TYPE_TDX {
            return Err(QuoteError::NotTdx(tee_type));
        }
        let (body_at, body_len, body_type) = if version == 4 {
            (HEADER_LEN, TD_REPORT10_LEN, None)
        } else {
            need(
                bytes,
                HEADER_LEN + BODY_DESCRIPTOR_LEN,
                "the body descriptor",
            )?;
            let body_type = u16_at(bytes, HEADER_LEN);
            let declared = u32_at(bytes, HEADER_LEN + 2);
            let expected = match body_type {
                BODY_TD_REPORT10 => TD_REPORT10_LEN,
                BODY_TD_REPORT15 => TD_REPORT15_LEN,
                BODY_TD_REPORT15_EX => TD_REPORT15_EX_LEN,
                other => return Err(QuoteError::UnsupportedBodyType(other)),
            };
            if declared as usize != expected {
                return Err(QuoteError::BodySize {
                    body_type,
                    declared,
                    expected,
                });
            }
            (HEADER_LEN + BODY_DESCRIPTOR_LEN, expected, Some(body_type))
        };
        let signed_len = body_at + body_len;
        need(bytes, signed_len, "the TD report body")?;
        need(bytes, signed_len + 4, "the signature data length")?;
        let signature_data_len = u32_at(bytes, signed_len) as usize;
        need(
            bytes,
            signed_len + 4 + signature_data_len,
            "the declared signature data",
        )?;
        let body = &bytes[body_at..signed_len];
        let mut rtmr = [[0u8; MEASUREMENT_LEN]; 4];
        for (i, register) in rtmr.iter_mut().enumerate() {
            *register = array_at(body, RTMR0 + i * MEASUREMENT_LEN);
        }
        Ok(Self {
            version,
            attestation_key_type,
            tee_type,
            body_type,
            td_attributes: array_at(body, TD_ATTRIBUTES),
            mr_td: array_at(body, MR_TD),
            mr_config_id: array_at(body, MR_CONFIG_ID),
            mr_owner: array_at(body, MR_OWNER),
            mr_owner_config: array_at(body, MR_OWNER_CONFIG),
            rtmr,
            report_data: array_at(body, REPORT_DATA),
            signature_data_len,
        })
    }

    /// Whether the TD runs in debug mode (its memory is open to the host: nothing it says can
    /// be trusted).
    pub fn debug(&self) -> bool {
        self.td_attributes[0] & TD_ATTRIBUTES_DEBUG != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::testing::{synthetic_quote, QuoteSpec};

    fn spec() -> QuoteSpec {
        QuoteSpec {
            report_data: [0x5a; REPORT_DATA_LEN],
            rtmr3: [0x33; MEASUREMENT_LEN],
            ..QuoteSpec::default()
        }
    }

    #[test]
    fn a_v4_quote_yields_report_data_and_registers_at_their_offsets() {
        let bytes = synthetic_quote(&spec());
        assert_eq!(
            bytes.len(),
            HEADER_LEN + TD_REPORT10_LEN + 4 + spec().signature_data.len()
        );
        // REPORTDATA is the last 64 bytes of the 584-byte body after the 48-byte header.
        assert_eq!(
            &bytes[HEADER_LEN + TD_REPORT10_LEN - 64..HEADER_LEN + TD_REPORT10_LEN],
            &[0x5a; 64]
        );
        let quote = TdQuote::parse(&bytes).expect("parses");
        assert_eq!(quote.version, 4);
        assert_eq!(quote.tee_type, TEE_TYPE_TDX);
        assert_eq!(quote.body_type, None);
        assert_eq!(quote.report_data, [0x5a; 64]);
        assert_eq!(quote.rtmr[3], [0x33; 48]);
        assert_eq!(quote.mr_td, spec().mr_td);
        assert!(!quote.debug());
    }

    #[test]
    fn v5_quotes_with_either_td_report_body_parse() {
        for body_type in [BODY_TD_REPORT10, BODY_TD_REPORT15] {
            let bytes = synthetic_quote(&QuoteSpec {
                version: 5,
                body_type,
                ..spec()
            });
            let quote = TdQuote::parse(&bytes).expect("parses");
            assert_eq!(quote.version, 5);
            assert_eq!(quote.body_type, Some(body_type));
            assert_eq!(quote.report_data, [0x5a; 64]);
            assert_eq!(quote.rtmr[3], [0x33; 48]);
        }
    }

    #[test]
    fn a_td_report_1_5ex_quote_is_read_like_the_others() {
        // dcap-qvl's sample: quote v5, body type 4 (885 bytes), dstack's MRCONFIGID.
        let bytes = include_bytes!("../../tests/fixtures/dcap/tdx_quote_td15ex");
        let quote = TdQuote::parse(bytes).expect("parses");
        assert_eq!(quote.body_type, Some(BODY_TD_REPORT15_EX));
        assert_eq!(quote.mr_config_id[0], 0x01);
        assert_eq!(
            &bytes[HEADER_LEN + BODY_DESCRIPTOR_LEN + 520..][..64],
            &quote.report_data
        );
        assert!(!quote.debug());
    }

    #[test]
    fn the_debug_attribute_is_read() {
        let bytes = synthetic_quote(&QuoteSpec {
            td_attributes: [TD_ATTRIBUTES_DEBUG, 0, 0, 0, 0, 0, 0, 0],
            ..spec()
        });
        assert!(TdQuote::parse(&bytes).expect("parses").debug());
    }

    #[test]
    fn wrong_version_tee_type_body_or_length_are_named() {
        let good = synthetic_quote(&spec());
        let mut v3 = good.clone();
        v3[0] = 3;
        assert_eq!(TdQuote::parse(&v3), Err(QuoteError::UnsupportedVersion(3)));
        let mut sgx = good.clone();
        sgx[4] = 0;
        assert_eq!(TdQuote::parse(&sgx), Err(QuoteError::NotTdx(0)));
        let v5 = synthetic_quote(&QuoteSpec {
            version: 5,
            ..spec()
        });
        let mut sgx_body = v5.clone();
        sgx_body[HEADER_LEN] = 1;
        assert_eq!(
            TdQuote::parse(&sgx_body),
            Err(QuoteError::UnsupportedBodyType(1))
        );
        let mut bad_size = v5.clone();
        bad_size[HEADER_LEN + 2] = 0;
        assert!(matches!(
            TdQuote::parse(&bad_size),
            Err(QuoteError::BodySize { .. })
        ));
        for cut in [0, 10, HEADER_LEN, HEADER_LEN + 100, good.len() - 1] {
            assert!(
                matches!(
                    TdQuote::parse(&good[..cut]),
                    Err(QuoteError::TooShort { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let good = synthetic_quote(&spec());
        for i in 0..good.len() {
            let mut bytes = good.clone();
            bytes[i] ^= 0xff;
            let _ = TdQuote::parse(&bytes);
            let _ = TdQuote::parse(&bytes[..i]);
        }
    }
}
