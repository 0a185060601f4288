#!/usr/bin/env bash
# Prints the DON's throughput under load: 1 bootstrap + 4 oracles, 300 feeds reporting every
# round at ΔRound 1 s; rounds per second, round latency p50/p99, CPU and RSS per node.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/ensure.sh
ensure_apt postgresql
cargo bench --bench consensus
