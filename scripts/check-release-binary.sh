#!/usr/bin/env bash
# Checks that a release binary carries no test-only code: the attested binary must not contain
# `attestation::testing`, which forges quote-shaped data. That module is compiled only for unit
# tests (`cfg(test)`; docs/development/tests.md), and it carries a marker string that `#[used]`
# would keep in any binary linked with it: this check guards against that ever changing.
# scripts/build-image.sh runs it on the binary it puts in the image.
#
#   scripts/check-release-binary.sh [BINARY]      (default target/release/enclave)
#
# Exit 0: no marker; 1: the marker is there (the binary has test support); 2: usage.
set -euo pipefail

# Must equal attestation::testing::TEST_SUPPORT_MARKER (a unit test there checks this line).
marker='enclave-test-support:synthetic-tdx-quotes:v1'

binary="${1:-target/release/enclave}"
if [ ! -f "$binary" ]; then
    echo "check-release-binary: no such file: $binary" >&2
    exit 2
fi
if grep -qaF -- "$marker" "$binary"; then
    echo "check-release-binary: $binary contains test support (attestation::testing): attestation::testing must stay cfg(test)" >&2
    exit 1
fi
echo "check-release-binary: $binary has no test support" >&2
