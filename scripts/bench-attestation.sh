#!/usr/bin/env bash
# Prints the time per quote of the offline quote verifier (release build) on the real samples.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench attestation
