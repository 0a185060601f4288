#!/usr/bin/env bash
# Makes the dev chain's Python environment ready: a venv at .local/devchain-venv (or
# $DEVCHAIN_VENV) with scripts/devchain/requirements.txt installed and OffchainAggregator.vy
# compiled. Idempotent and quick when nothing changed: pip runs only when the requirements'
# hash differs from the stamp of the last successful install. Safe to run from several test
# processes at once (flock). Prints nothing on the fast path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${DEVCHAIN_VENV:-$repo/.local/devchain-venv}"
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

python="${DEVCHAIN_PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "devchain: $python not found (Python 3.11 or newer is needed)" >&2
    exit 1
fi
# Debian splits venv/ensurepip out of python3: install it when that is what is missing.
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1 && command -v dpkg-query >/dev/null; then
    . "$repo/scripts/lib/ensure.sh"
    ensure_apt python3-venv
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    if [ ! -x "$venv/bin/python" ]; then
        echo "devchain: creating $venv" >&2
        "$python" -m venv "$venv" >&2 || {
            echo "devchain: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
            exit 1
        }
    fi
    echo "devchain: installing $requirements" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-virtualenv -r "$requirements" >&2
    echo "$want" >"$stamp"
fi

# Compiles the contract when the cached bytecode is missing or older than the source.
DEVCHAIN_VENV="$venv" "$venv/bin/python" "$here/artifact.py"
