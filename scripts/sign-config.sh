#!/usr/bin/env bash
# Signs a configuration in place. Usage: [KEY=file] scripts/sign-config.sh [CONFIG]
# Without KEY it uses the INSECURE development key (scripts/dev-keys/), for local use only.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-configuration.example.json}"
key="${KEY:-scripts/dev-keys/INSECURE-DEV-ONLY.configuration.key}"
# Not --quiet: a first build takes minutes and must not look hung.
cargo build --release --locked
target/release/enclave config sign --key "$key" "$config"
