#!/usr/bin/env bash
# Runs the enclave locally under a root directory (default ./.local-root).
# Until the supervisor lands, this builds the binary and checks and verifies the example
# configuration with the development key, which is what booting would do first.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${CONFIG:-configuration.example.json}"
cargo build --release --quiet
bin=target/release/enclave
"$bin" config check --public-key-file scripts/dev-keys/configuration.pub "$config"
"$bin" config verify --public-key-file scripts/dev-keys/configuration.pub "$config"
