"""Compiled OffchainAggregator.vy (bytecode + ABI), cached next to the venv.

Compiling takes about a second, so the result is kept in a JSON file keyed by the source's hash
and the compiler version: ensure.sh builds it once, devchain.py and the tests only read it, and
an edited contract is recompiled on first use instead of running stale bytecode.

Run as a script to (re)build the cache: `python artifact.py`.
"""

import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "OffchainAggregator.vy"
# The real contracts, as compiled upstream (contracts/upstream/SOURCE.md says from where).
UPSTREAM = HERE / "contracts" / "upstream"
UPSTREAM_CONTRACTS = (
    "AccessControlledOffchainAggregator",
    "SimpleWriteAccessController",
    "LinkToken",
)
EVM_VERSION = "cancun"

# Vyper cannot overload functions, so the Super Protocol setConfig(struct) is served by the
# contract's fallback; this is its ABI entry, added so ABI-driven clients can encode the call.
SP_SET_CONFIG_ABI = {
    "type": "function",
    "name": "setConfig",
    "stateMutability": "nonpayable",
    "inputs": [
        {
            "name": "_config",
            "type": "tuple",
            "components": [
                {"name": "signers", "type": "address[]"},
                {"name": "transmitters", "type": "address[]"},
                {"name": "threshold", "type": "uint8"},
                {"name": "s", "type": "uint8[]"},
                {"name": "offchainPublicKeys", "type": "bytes32[]"},
                {"name": "peerIDs", "type": "string"},
                {
                    "name": "sharedSecretEncryptions",
                    "type": "tuple",
                    "components": [
                        {"name": "diffieHellmanPoint", "type": "bytes32"},
                        {"name": "sharedSecretHash", "type": "bytes32"},
                        {"name": "encryptions", "type": "bytes16[]"},
                    ],
                },
            ],
        }
    ],
    "outputs": [],
}


def cache_path() -> Path:
    """Where the compiled artifact lives: inside the dev-chain venv (never committed)."""
    venv = os.environ.get("DEVCHAIN_VENV") or sys.prefix
    return Path(venv) / "artifacts" / "OffchainAggregator.json"


def _fingerprint(source: str) -> str:
    # The installed version from the package metadata: importing vyper takes a second.
    version = importlib.metadata.version("vyper")
    return hashlib.sha256(f"{version}\n{EVM_VERSION}\n{source}".encode()).hexdigest()


def compile_aggregator() -> dict:
    """Compiles the contract; returns {"abi", "bytecode", "fingerprint"}."""
    import vyper
    from vyper.compiler.settings import Settings

    source = SOURCE.read_text()
    out = vyper.compile_code(
        source,
        output_formats=["abi", "bytecode"],
        settings=Settings(evm_version=EVM_VERSION),
    )
    return {
        "abi": out["abi"] + [SP_SET_CONFIG_ABI],
        "bytecode": out["bytecode"],
        "fingerprint": _fingerprint(source),
    }


def _cached() -> dict | None:
    try:
        cached = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return None
    if cached.get("fingerprint") != _fingerprint(SOURCE.read_text()):
        return None
    return cached


def load_aggregator() -> dict:
    """The cached artifact, rebuilt first when missing or older than the source."""
    cached = _cached()
    if cached is not None:
        return cached
    path = cache_path()
    artifact = compile_aggregator()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(artifact))
    tmp.replace(path)  # atomic: concurrent test processes never read half a file
    return artifact


def load_upstream(name: str) -> dict:
    """An upstream contract's {"abi", "bytecode"} (committed fixtures, never compiled here)."""
    if name not in UPSTREAM_CONTRACTS:
        raise ValueError(f"no upstream contract {name!r}")
    return json.loads((UPSTREAM / f"{name}.json").read_text())


if __name__ == "__main__":
    if _cached() is None:
        built = load_aggregator()
        print(
            f"devchain: compiled OffchainAggregator.vy ({len(built['bytecode']) // 2 - 1} bytes)"
            f" -> {cache_path()}",
            file=sys.stderr,
        )
