#!/usr/bin/env bash
# Checks every Grafana panel query (enclave/grafana/dashboards) and the alert rules
# (enclave/prometheus/alerts.yml) against a real Prometheus fed by a real local enclave:
# a Pushgateway, Prometheus, the EVM dev chain and `enclave init` with every service, on loopback with free ports
# and a temporary directory, for about two minutes. Fails on any panel query that errors or
# returns nothing (unless its panel says "may be empty"), any variable without values, any rule
# that fails to evaluate, and any alert that is (or is not) active against the scenario.
#
#   scripts/check-dashboards.sh [--settle SECONDS] [--keep] [--hold]
#   scripts/check-dashboards.sh --prometheus http://127.0.0.1:9090   # panels only, against yours
#
# Not part of scripts/test.sh (it runs a whole enclave); scripts/test.sh runs the cheap checks.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/ensure.sh

ensure_apt postgresql prometheus prometheus-pushgateway python3
scripts/devchain/ensure.sh
python3 scripts/build-dashboards.py --check
if [[ " $* " != *" --prometheus"* ]]; then
    cargo build --release --locked
fi
exec python3 scripts/lib/check_dashboards.py "$@"
