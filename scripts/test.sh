#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit and integration tests.
# Installs what the tests need first (idempotently), so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/ensure.sh

ensure_rust_component rustfmt clippy
# Real parts the tests run: the PostgreSQL server (tests start their own clusters), and
# promtool from the prometheus package to check metric output.
ensure_apt postgresql prometheus

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets --locked -- -D warnings

echo "== cargo test" >&2
cargo test --all-targets --locked
