//! Test support: synthetic TDX quotes with the real layout, for the unit and integration tests
//! of the quote reader, the configfs-tsm flow and `enclave verify-identity`. A synthetic quote
//! has no valid signature; nothing in the enclave produces one outside tests.
//!
//! Compiled only for unit tests and with the `test-support` feature (the integration tests'
//! self dev-dependency turns it on); a release build never has it, and
//! `scripts/check-release-binary.sh` refuses a binary that carries [`TEST_SUPPORT_MARKER`].

use super::quote::{
    Measurement, BODY_TD_REPORT10, BODY_TD_REPORT15, HEADER_LEN, MEASUREMENT_LEN, REPORT_DATA_LEN,
    TD_REPORT10_LEN, TD_REPORT15_LEN, TEE_TYPE_TDX,
};

/// Text that only a build containing this module carries: `#[used]` keeps it in every binary
/// linked with it although nothing reads it, so a search of the binary's bytes finds it whether
/// or not the forging functions themselves were linked. `scripts/check-release-binary.sh`
/// searches the release binary for it.
#[used]
pub static TEST_SUPPORT_MARKER: [u8; 44] = *b"enclave-test-support:synthetic-tdx-quotes:v1";

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

#[cfg(test)]
mod tests {
    use super::TEST_SUPPORT_MARKER;

    #[test]
    fn the_release_binary_check_searches_for_this_modules_marker() {
        let script = include_str!("../../scripts/check-release-binary.sh");
        let marker = std::str::from_utf8(&TEST_SUPPORT_MARKER).expect("the marker is text");
        assert!(
            script.contains(&format!("marker='{marker}'")),
            "scripts/check-release-binary.sh must search for {marker:?}"
        );
    }
}
