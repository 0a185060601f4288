#!/usr/bin/env bash
# Prints the aggregator's /quotes/batch throughput next to nginx serving the identical body (wrk,
# 64 connections, 10 hot pairs) and its RSS with 100+ tracked pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/ensure.sh
ensure_apt wrk nginx
cargo bench --bench aggregator
