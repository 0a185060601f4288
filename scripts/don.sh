#!/usr/bin/env bash
# A DON across enclaves on this machine, in one command: builds the image, then starts one
# bootstrap enclave and four oracle enclaves, each its own container with its own PostgreSQL
# and volumes, on a private Docker network; they admit each other by (simulated) attestation
# and report local price sources to the EVM dev chain. Ctrl-C stops and removes everything.
#
#   scripts/don.sh [--keep] [--recheck-ms MS] [--heartbeat-ms MS]
#
# The first run installs what is missing (the dev chain's Python packages; debootstrap for the
# base image when no registry is reachable) and builds the release binary and the image (about
# 10 minutes on 2 cores). IMAGE=name:tag runs that image instead of building one (it must trust
# the development configuration key, as scripts/build-image.sh's default does).
# What happens, and how the members are told apart: scripts/don/don.py, scripts/don/compose.yml,
# docs/design/don-across-tees.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/say.sh
. scripts/lib/say.sh

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon"
command -v docker-compose >/dev/null || die "docker-compose is not installed (Debian: apt-get install docker-compose)"
command -v openssl >/dev/null || die "openssl is not installed"
scripts/devchain/ensure.sh

if [ -n "${IMAGE:-}" ]; then
    image="$IMAGE"
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image does not exist"
else
    image="enclave:latest"
    scripts/build-image.sh
fi
exec python3 scripts/don/don.py --image "$image" "$@"
