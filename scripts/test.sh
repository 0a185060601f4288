#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit and integration tests.
# Installs what the tests need first (idempotently), so it works on a fresh machine.
#
# What waits on the network or on dpkg rather than on the CPU — the dev chain's Python packages
# and, with Docker, the image's base and PostgreSQL layers — runs in the background while cargo
# compiles; each is waited for just before the step that needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/ensure.sh

started=$SECONDS
phase() { echo "== $* (at $((SECONDS - started)) s)" >&2; }

# Docker is used when its engine answers: the image for the end-to-end tests (tests/e2e).
docker_skip=""
if ! command -v docker >/dev/null 2>&1; then
    docker_skip="docker is not installed"
elif ! docker info >/dev/null 2>&1; then
    docker_skip="the Docker engine does not answer (docker info)"
fi

phase "tools"
ensure_rust_component rustfmt clippy
# Real parts the tests run: the PostgreSQL server (tests start their own clusters), the
# metric receivers (Pushgateway, VictoriaMetrics with vmauth), promtool, and python3 for the
# dashboard checks; python3-venv for the dev chain. Installed here, before the background jobs
# start, so that no two of them wait for dpkg's lock. debootstrap: scripts/build-image.sh makes
# the base image with it when no registry is reachable.
packages=(postgresql prometheus prometheus-pushgateway victoria-metrics python3 python3-venv jq)
[ -n "$docker_skip" ] || packages+=(debootstrap debian-archive-keyring)
ensure_apt "${packages[@]}"

# The background jobs' and the tests' output, kept after the run.
logs=target/test-logs
rm -rf "$logs"
mkdir -p "$logs"
# Each background job leads a process group of its own (setsid), so that leaving early (a
# failed step) ends it with everything it started.
jobs_started=()
stop_jobs() {
    local job
    for job in "${jobs_started[@]}"; do
        kill -TERM -- "-$job" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop_jobs EXIT
# The EVM dev chain (py-evm, Vyper) and its compiled OffchainAggregator, in .local/devchain-venv.
setsid scripts/devchain/ensure.sh >"$logs/devchain.log" 2>&1 &
devchain_job=$!
jobs_started+=("$devchain_job")
if [ -z "$docker_skip" ]; then
    IMAGE=enclave-e2e setsid scripts/build-image.sh --runtime-only >"$logs/image-runtime.log" 2>&1 &
    runtime_job=$!
    jobs_started+=("$runtime_job")
fi

# await JOB NAME LOG — waits for a background job; on failure shows the end of its log and stops.
await() {
    if ! wait "$1"; then
        tail -n 60 "$3" >&2
        echo "$2 failed (full log: $3)" >&2
        exit 1
    fi
}

phase "dashboards and alert rules"
# Cheap, no server: rule syntax, rule unit tests, the generated dashboards being current, and
# their consistency (datasource variable, instance filters, units, metric names that exist).
# scripts/check-dashboards.sh runs every panel query against a live enclave (not here: slow).
promtool check rules enclave/prometheus/alerts.yml
promtool test rules enclave/prometheus/alerts_test.yml
python3 scripts/build-dashboards.py --check
python3 scripts/lib/lint_observability.py

phase "cargo fmt --check"
cargo fmt --all -- --check

phase "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

phase "cargo test --no-run"
# Unit and integration tests; benchmarks are run by scripts/bench-*. The test binaries compile
# while the dev chain and the image's first stage may still be installing.
cargo test --locked --no-run --lib --bins --tests

# The image for the end-to-end tests gets the debug binary the integration tests run: test-only
# code is `cfg(test)` or in the enclave-testkit dev-dependency, so it has none, which
# scripts/build-image.sh checks as it checks a release binary (tests/attestation/release_binary.rs).
# A debug build, where the release build would cost eight more minutes on two cores; the release
# image itself is `scripts/build-image.sh` and `scripts/smoke-image.sh`. Copied aside so that a
# later build cannot change what the image was built from.
if [ -z "$docker_skip" ]; then
    mkdir -p target/e2e-image
    cp target/debug/enclave target/e2e-image/enclave
fi

# Two lanes of test binaries at once: the tests mostly wait (on chains, consensus rounds,
# restarts and deadlines) rather than compute — run one binary after another they kept less
# than half a core busy — so the binaries run in two lanes of about equal length, each binary's
# own tests two at a time as before. Every integration test target is a folder of tests/ with a
# main.rs, or a file tests/<name>.rs; a new one joins the second lane by itself. The first lane
# needs no container image, so it starts before the image is built; the second (it has the
# end-to-end tests) after. The consensus tests (`node`) stay in the second lane, after the
# end-to-end tests: run beside the five-enclave DON they missed their deadlines on 2 cores (the
# lanes are then uneven: about 260 s and 540 s).
lane_a=(--lib --test chain --test platform)
lane_b=(--bins)
for target in tests/*/main.rs tests/*.rs; do
    [ -e "$target" ] || continue
    name="${target#tests/}"
    name="${name%/main.rs}"
    name="${name%.rs}"
    case "$name" in chain | platform) ;; *) lane_b+=(--test "$name") ;; esac
done

phase "cargo test: first lane (${lane_a[*]})"
# The chain tests need the dev chain when they run.
await "$devchain_job" "scripts/devchain/ensure.sh" "$logs/devchain.log"
# --no-fail-fast: one failing test binary must not hide the results of the others. In a process
# group of its own, like the background jobs, so that leaving early ends it too.
setsid cargo test --locked --no-fail-fast "${lane_a[@]}" >"$logs/test-lane-a.log" 2>&1 &
lane_a_job=$!
jobs_started+=("$lane_a_job")

phase "container image for the end-to-end tests (tests/e2e)"
# With a Docker engine: build the image with scripts/build-image.sh (trusting the development
# key) and let tests/e2e run it. Without one, those tests print why they skip.
if [ -n "$docker_skip" ]; then
    echo "SKIPPED end-to-end tests (tests/e2e): $docker_skip" >&2
else
    await "$runtime_job" "scripts/build-image.sh --runtime-only" "$logs/image-runtime.log"
    if ! ENCLAVE_BINARY=target/e2e-image/enclave IMAGE=enclave-e2e scripts/build-image.sh >"$logs/image.log" 2>&1; then
        tail -n 60 "$logs/image.log" >&2
        echo "scripts/build-image.sh failed (full log: $logs/image.log)" >&2
        exit 1
    fi
    grep -E '^(image|size|base):' "$logs/image.log" >&2
    export ENCLAVE_E2E_IMAGE=enclave-e2e:latest
fi

phase "cargo test: second lane (${lane_b[*]})"
status=0
cargo test --locked --no-fail-fast "${lane_b[@]}" >"$logs/test-lane-b.log" 2>&1 || status=$?
phase "cargo test: second lane done, waiting for the first"
wait "$lane_a_job" || status=$?
cat "$logs/test-lane-a.log" "$logs/test-lane-b.log" >"$logs/test.log"
cat "$logs/test.log"
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$logs/test.log"
phase "done"
exit "$status"
