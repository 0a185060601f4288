#!/usr/bin/env bash
# Prints the process-metrics exporter's sampling cost (CPU per sample, share of a core).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench process_metrics
