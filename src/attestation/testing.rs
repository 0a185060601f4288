//! Test support: synthetic TDX quotes with the real layout (written by
//! [`super::quote_builder`]), for the unit and integration tests of the quote reader, the
//! configfs-tsm flow and `enclave verify-identity`. A synthetic quote has no valid signature;
//! outside tests only the `simulated` provider makes one, and it says so (insecure).
//!
//! Compiled only for unit tests (`cfg(test)`); no binary has it, and
//! `scripts/check-release-binary.sh` refuses one that carries [`TEST_SUPPORT_MARKER`] should
//! this module ever be compiled into one. (Integration tests make synthetic quotes with
//! [`super::quote_builder`], which the `simulated` provider uses too.)

pub use super::quote_builder::{synthetic_quote, QuoteSpec};

/// Text that only a build containing this module carries: `#[used]` keeps it in every binary
/// linked with it although nothing reads it, so a search of the binary's bytes finds it whether
/// or not the forging functions themselves were linked. `scripts/check-release-binary.sh`
/// searches the release binary for it.
#[used]
pub static TEST_SUPPORT_MARKER: [u8; 44] = *b"enclave-test-support:synthetic-tdx-quotes:v1";

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
