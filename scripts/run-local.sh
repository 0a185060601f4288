#!/usr/bin/env bash
# Runs the whole enclave locally, without root or containers: every absolute path is mapped
# under a root directory (default ./.local/root). Stop it with Ctrl-C.
#
#   scripts/run-local.sh [enclave init options, e.g. --only postgres-init]
#
# CONFIG=file uses another configuration (it must be signed by the development key, or give
# PUBLIC_KEY=file for the key that signed it). ROOT=dir changes the root directory.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${CONFIG:-configuration.example.json}"
public_key="${PUBLIC_KEY:-scripts/dev-keys/configuration.pub}"
root="${ROOT:-.local/root}"

cargo build --release --quiet
bin="$PWD/target/release/enclave"

mkdir -p "$root/etc/enclave" "$root/sp/configurations"
cp "$public_key" "$root/etc/enclave/configuration.pub"
cp "$config" "$root/sp/configurations/configuration.json"

echo "enclave root: $root   (state: $root/run/service, logs: $root/var/log, status: $bin --root $root status)" >&2
exec "$bin" --root "$root" init --services s6-rc.d "$@"
