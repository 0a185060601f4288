#!/usr/bin/env bash
# The offline demo in one command: the whole enclave against local stand-ins for five exchanges
# (their real formats; prices that move; one that lies), the EVM dev chain with the feeds'
# contracts, which the enclave configures itself, and — when installable — a Pushgateway and
# Prometheus receiving the telemetry. Reports land on the chain within a minute of the services
# being up. Ctrl-C stops everything it started. Nothing leaves the machine.
#
#   scripts/demo.sh [--keep]
#
# The first run installs what is missing (Debian: postgresql, prometheus, prometheus-pushgateway,
# python3-venv; the dev chain's Python packages) and builds target/release/enclave (about
# 6 minutes on 2 cores); later runs start in seconds. ENCLAVE_BIN=file uses that binary instead
# of building; DEMO_INSTALL=0 installs nothing (Prometheus is then used only if present).
# What runs and how to stop one price source: scripts/demo/demo.py, scripts/demo/exchanges.py.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/ensure.sh

if [ "${DEMO_INSTALL:-1}" != 0 ]; then
    ensure_apt postgresql
    # Optional: without them the demo runs, with telemetry only on each service's /metrics.
    if ! ensure_apt prometheus prometheus-pushgateway; then
        echo "demo: could not install prometheus and prometheus-pushgateway; running without them" >&2
    fi
    scripts/devchain/ensure.sh
fi

if [ -n "${ENCLAVE_BIN:-}" ]; then
    bin="$ENCLAVE_BIN"
else
    # Not --quiet: the first build takes minutes and must not look hung.
    echo "demo: building target/release/enclave (the first build takes about 6 minutes on 2 cores)" >&2
    cargo build --release --locked
    bin="target/release/enclave"
fi

exec python3 scripts/demo/demo.py --bin "$bin" "$@"
