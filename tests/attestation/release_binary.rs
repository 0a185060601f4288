//! The attested binary carries no test-only code, and the check that says so can fail:
//! `scripts/check-release-binary.sh` (run by scripts/build-image.sh on the binary it puts in the
//! image) accepts the binary these tests run — the very one scripts/test.sh puts in the
//! end-to-end image: test-only code is `cfg(test)` or in the `enclave-testkit` dev-dependency, so
//! a test build's binary has none — and refuses the same bytes once they carry
//! `attestation::testing`'s marker.

use std::path::Path;
use std::process::{Command, Output};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-release-binary.sh")
}

fn check(binary: &Path) -> Output {
    Command::new(script())
        .arg(binary)
        .output()
        .expect("scripts/check-release-binary.sh runs")
}

/// The marker the script searches for (`marker='…'`; a unit test of `attestation::testing`
/// checks that it is that module's).
fn marker() -> String {
    let text = std::fs::read_to_string(script()).expect("read the script");
    text.lines()
        .find_map(|l| l.strip_prefix("marker='")?.strip_suffix('\''))
        .expect("the script names its marker")
        .to_owned()
}

#[test]
fn the_release_check_accepts_the_binary_the_tests_run_and_refuses_it_with_the_test_support_marker()
{
    let test_build = Path::new(env!("CARGO_BIN_EXE_enclave"));
    let accepted = check(test_build);
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "the binary of a test build has no test support: {}",
        String::from_utf8_lossy(&accepted.stderr)
    );

    // The same bytes with the marker inside (as `#[used]` would put it): refused.
    let mut bytes = std::fs::read(test_build).expect("read the test build's binary");
    let middle = bytes.len() / 2;
    bytes.splice(middle..middle, marker().into_bytes());
    let dir = tempfile::tempdir().expect("tmp");
    let marked = dir.path().join("enclave");
    std::fs::write(&marked, &bytes).expect("write");
    let refused = check(&marked);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a binary with test support must be refused: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("contains test support"));
}
