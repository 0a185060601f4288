//! The attested binary carries no test-only code, and the check that says so can fail:
//! `scripts/check-release-binary.sh` (run by scripts/build-image.sh on the binary it puts in the image)
//! refuses the binary these tests run — built with the `test-support` feature through the
//! self dev-dependency — and accepts the same bytes once the marker is gone.

use std::path::Path;
use std::process::{Command, Output};

use enclave::attestation::testing::TEST_SUPPORT_MARKER;

fn check(binary: &Path) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-release-binary.sh"))
        .arg(binary)
        .output()
        .expect("scripts/check-release-binary.sh runs")
}

#[test]
fn the_release_check_refuses_a_binary_built_with_test_support_and_accepts_it_without_the_marker() {
    let test_build = Path::new(env!("CARGO_BIN_EXE_enclave"));
    let refused = check(test_build);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a binary with test support must be refused: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("contains test support"));

    // The same bytes with every copy of the marker overwritten: only the marker decides.
    let mut bytes = std::fs::read(test_build).expect("read the test build's binary");
    let mut found = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..]
        .windows(TEST_SUPPORT_MARKER.len())
        .position(|w| w == TEST_SUPPORT_MARKER)
    {
        let start = at + offset;
        bytes[start..start + TEST_SUPPORT_MARKER.len()].fill(b'x');
        found += 1;
        at = start + TEST_SUPPORT_MARKER.len();
    }
    assert!(found > 0, "the test build carries the marker");
    let dir = tempfile::tempdir().expect("tmp");
    let scrubbed = dir.path().join("enclave");
    std::fs::write(&scrubbed, &bytes).expect("write");
    let accepted = check(&scrubbed);
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
}
