#!/usr/bin/env bash
# Runs the whole enclave locally, without containers: every absolute path is mapped under a root
# directory. Stop it with Ctrl-C.
#
#   scripts/run-local.sh [enclave init options, e.g. --only postgres-init]
#
# The root is /var/tmp/enclave-local-<uid>-<hash of this clone's path> unless ROOT=dir names
# another: outside the clone, because a clone often sits in a home directory of mode 0700, and
# when run as root the enclave runs PostgreSQL as the `postgres` account, which must be able to
# reach its data directory. Everything the enclave writes there is private (umask 077); only the
# directories on the way to PostgreSQL's own are searchable (0711) when run as root.
#
# CONFIG=file uses another configuration (it must be signed by the development key, or give
# PUBLIC_KEY=file for the key that signed it). ENCLAVE_BIN=file runs that binary instead of
# building target/release/enclave.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${CONFIG:-configuration.example.json}"
public_key="${PUBLIC_KEY:-scripts/dev-keys/configuration.pub}"

say() { echo "run-local: $*" >&2; }

# Directories on the way to PostgreSQL's data must be searchable by the postgres account when
# the enclave drops to it (run as root); otherwise nobody but us needs them.
traverse=0700
[ "$(id -u)" -eq 0 ] && traverse=0711

if [ -n "${ROOT:-}" ]; then
    root="$(realpath -m -- "$ROOT")"
else
    root="/var/tmp/enclave-local-$(id -u)-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)"
    if [ ! -e "$root" ] && [ ! -L "$root" ]; then
        mkdir -m "$traverse" -- "$root"
    fi
    # /var/tmp is world-writable: use the directory only if it is ours and nobody else can write
    # to it (not a symlink or a directory someone else planted).
    if [ -L "$root" ] || [ ! -d "$root" ] || [ "$(stat -c %u -- "$root")" != "$(id -u)" ] \
        || [ $((8#$(stat -c %a -- "$root") & 8#022)) -ne 0 ]; then
        say "$root is not a directory of yours that only you can write to; remove it or set ROOT=dir"
        exit 1
    fi
fi

# Run as root, the enclave starts PostgreSQL as `postgres`; say now, in one line, if that account
# cannot reach the root (a ROOT inside a 0700 home directory), before anything is built or made.
# Directories still to be made are made searchable below.
if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 && command -v runuser >/dev/null; then
    blocked=""
    dir="$root/sp/postgresql"
    while :; do
        if [ -e "$dir" ] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
            blocked="$dir"
        fi
        [ "$dir" = / ] && break
        dir="$(dirname -- "$dir")"
    done
    if [ -n "$blocked" ]; then
        say "the postgres account (PostgreSQL never runs as root) cannot reach $root: $blocked (mode $(stat -c %a -- "$blocked")) does not let it through; unset ROOT for the default under /var/tmp or pick a ROOT outside it, rather than opening up $blocked"
        exit 1
    fi
fi

# Private by default; the enclave sets the modes it needs itself (0700 data directory, 0600 keys).
mkdir -p -- "$(dirname -- "$root")"
umask 077
for dir in "$root" "$root/sp" "$root/sp/postgresql" "$root/run"; do
    [ -d "$dir" ] || mkdir -m "$traverse" -- "$dir"
done

if [ -n "${ENCLAVE_BIN:-}" ]; then
    bin="$(realpath -- "$ENCLAVE_BIN")"
else
    # Not --quiet: the first build takes minutes and must not look hung.
    say "building target/release/enclave (the first build takes about 6 minutes on 2 cores)"
    cargo build --release --locked
    bin="$PWD/target/release/enclave"
fi

mkdir -p "$root/etc/enclave" "$root/sp/configurations"
cp "$public_key" "$root/etc/enclave/configuration.pub"
cp "$config" "$root/sp/configurations/configuration.json"

say "enclave root: $root   (state: $root/run/service, logs: $root/var/log, status: $bin --root $root status)"
exec "$bin" --root "$root" init --services s6-rc.d "$@"
