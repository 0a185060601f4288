#!/usr/bin/env bash
# Prints the time per quote of the offline quote verifier (release build) on the real samples,
# then the boot time with evidence off and on (benches/attestation_boot.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench attestation
cargo bench --bench attestation_boot
