//! A TDX quote's layout written out (v4, or v5 with a TD report 1.0/1.5 body) from chosen
//! fields: the inverse of [`super::quote`]'s reader. Nothing Intel signed: the signature section
//! holds whatever the caller puts there.
//!
//! Two users: the `simulated` evidence provider (`evidence`), which wraps such a quote in a
//! development CA's signature so multi-enclave runs work without TDX — enabled only by the
//! configuration, only on dev chains, and marked insecure everywhere — and the tests, through
//! `attestation::testing`.

use super::quote::{
    Measurement, BODY_TD_REPORT10, BODY_TD_REPORT15, HEADER_LEN, MEASUREMENT_LEN, REPORT_DATA_LEN,
    TD_REPORT10_LEN, TD_REPORT15_LEN, TEE_TYPE_TDX,
};

/// What a synthetic quote says.
#[derive(Debug, Clone)]
pub struct QuoteSpec {
    pub version: u16,
    /// v5 only: [`BODY_TD_REPORT10`] or [`BODY_TD_REPORT15`].
    pub body_type: u16,
    pub tee_type: u32,
    pub td_attributes: [u8; 8],
    pub mr_td: Measurement,
    pub rtmr3: Measurement,
    pub report_data: [u8; REPORT_DATA_LEN],
    pub signature_data: Vec<u8>,
}

impl Default for QuoteSpec {
    fn default() -> Self {
        Self {
            version: 4,
            body_type: BODY_TD_REPORT10,
            tee_type: TEE_TYPE_TDX,
            td_attributes: [0; 8],
            mr_td: [0x7d; MEASUREMENT_LEN],
            rtmr3: [0; MEASUREMENT_LEN],
            report_data: [0; REPORT_DATA_LEN],
            signature_data: vec![0xee; 128],
        }
    }
}

/// The bytes of a quote as `spec` describes it, laid out as a TDX quote v4/v5.
pub fn synthetic_quote(spec: &QuoteSpec) -> Vec<u8> {
    let mut header = vec![0u8; HEADER_LEN];
    header[0..2].copy_from_slice(&spec.version.to_le_bytes());
    header[2..4].copy_from_slice(&2u16.to_le_bytes()); // ECDSA-256 with P-256
    header[4..8].copy_from_slice(&spec.tee_type.to_le_bytes());
    // Intel's QE vendor id.
    header[12..28].copy_from_slice(&[
        0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06,
        0x07,
    ]);
    let body_len = if spec.version == 5 && spec.body_type == BODY_TD_REPORT15 {
        TD_REPORT15_LEN
    } else {
        TD_REPORT10_LEN
    };
    let mut body = vec![0u8; body_len];
    body[120..128].copy_from_slice(&spec.td_attributes);
    body[136..184].copy_from_slice(&spec.mr_td);
    body[472..520].copy_from_slice(&spec.rtmr3);
    body[520..584].copy_from_slice(&spec.report_data);
    let mut quote = header;
    if spec.version == 5 {
        quote.extend_from_slice(&spec.body_type.to_le_bytes());
        quote.extend_from_slice(&(body_len as u32).to_le_bytes());
    }
    quote.extend_from_slice(&body);
    quote.extend_from_slice(&(spec.signature_data.len() as u32).to_le_bytes());
    quote.extend_from_slice(&spec.signature_data);
    quote
}
