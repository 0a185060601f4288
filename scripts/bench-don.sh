#!/usr/bin/env bash
# A DON across enclaves, measured: what admitting a member costs (benches/don_admission.rs: one
# member's identity judged as every other member judges it), then, when Docker answers, the
# round latency of five enclave containers against the same five nodes in one container
# (scripts/don/bench_rounds.py; IMAGE, default enclave:latest, from scripts/build-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench don_admission
image="${IMAGE:-enclave:latest}"
if docker image inspect "$image" >/dev/null 2>&1; then
    scripts/devchain/ensure.sh
    python3 scripts/don/bench_rounds.py --image "$image" --seconds "${SECONDS_AFTER:-120}"
else
    echo "bench-don: no image $image (scripts/build-image.sh): round latency not measured" >&2
fi
