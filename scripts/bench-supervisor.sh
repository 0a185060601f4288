#!/usr/bin/env bash
# Prints the supervisor's figures: boot time of 20 trivial longruns, RSS, restart latency.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench supervisor
