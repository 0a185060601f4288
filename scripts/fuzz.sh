#!/usr/bin/env bash
# Fuzzes configuration parsing, validation and signature verification (not part of test.sh).
# Usage: scripts/fuzz.sh [SECONDS]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
mkdir -p fuzz/corpus/config
cp configuration.example.json fuzz/corpus/config/example.json
cp tests/fixtures/reference-solution.json fuzz/corpus/config/reference.json
# cargo-fuzz needs nightly-only sanitizer flags; the machine has one stable toolchain.
RUSTC_BOOTSTRAP=1 cargo fuzz run config fuzz/corpus/config -- -max_total_time="$seconds" -max_len=65536
