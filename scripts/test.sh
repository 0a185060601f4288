#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit and integration tests.
# Installs what the tests need first (idempotently), so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/ensure.sh

ensure_rust_component rustfmt clippy
# Real parts the tests run: the PostgreSQL server (tests start their own clusters), the
# metric receivers (Pushgateway, VictoriaMetrics with vmauth), promtool, and python3 for the
# dashboard checks.
ensure_apt postgresql prometheus prometheus-pushgateway victoria-metrics python3 jq
# The EVM dev chain (py-evm, Vyper) and its compiled OffchainAggregator, in .local/devchain-venv.
scripts/devchain/ensure.sh

echo "== dashboards and alert rules" >&2
# Cheap, no server: rule syntax, rule unit tests, the generated dashboards being current, and
# their consistency (datasource variable, instance filters, units, metric names that exist).
# scripts/check-dashboards.sh runs every panel query against a live enclave (not here: slow).
promtool check rules enclave/prometheus/alerts.yml
promtool test rules enclave/prometheus/alerts_test.yml
python3 scripts/build-dashboards.py --check
python3 scripts/lib/lint_observability.py

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets --locked -- -D warnings

echo "== container image for the end-to-end tests (tests/e2e)" >&2
# With a Docker engine: build the image as an operator would (scripts/build-image.sh, trusting
# the development key) and let tests/e2e run it. Without one, those tests print why they skip.
if ! command -v docker >/dev/null 2>&1; then
    echo "SKIPPED end-to-end tests (tests/e2e): docker is not installed" >&2
elif ! docker info >/dev/null 2>&1; then
    echo "SKIPPED end-to-end tests (tests/e2e): the Docker engine does not answer (docker info)" >&2
else
    image_log="$(mktemp)"
    if ! IMAGE=enclave-e2e scripts/build-image.sh >"$image_log" 2>&1; then
        tail -n 60 "$image_log" >&2
        echo "scripts/build-image.sh failed (full log: $image_log)" >&2
        exit 1
    fi
    grep -E '^(image|size|base):' "$image_log" >&2
    rm -f "$image_log"
    export ENCLAVE_E2E_IMAGE=enclave-e2e:latest
fi

echo "== cargo test" >&2
# Unit and integration tests; benchmarks are run by scripts/bench-*.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# --no-fail-fast: one failing test binary must not hide the results of the others.
status=0
cargo test --locked --no-fail-fast --lib --bins --tests 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
