#!/usr/bin/env python3
"""Independent test vectors for src/node/chain (not run by CI).

Every expected byte string in the Rust unit tests of src/node/evm/{signing,aggregator_contract}.rs
was printed by this script, which uses only third-party Python libraries (eth-account, eth-abi,
eth-utils), never the Rust code. Regenerate:

    python3 -m venv /tmp/evm-venv
    /tmp/evm-venv/bin/pip install eth-account eth-abi
    /tmp/evm-venv/bin/python src/node/evm/vectors.py
"""

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address


def h(b: bytes) -> str:
    return b.hex().removeprefix("0x")


def section(title: str) -> None:
    print(f"\n== {title}")


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


# ---------------------------------------------------------------- transactions
KEY = "0x4c0883a69102937d6231471b5dc0e2b3dd68d6a1ce7e1f2a9da8c94a7c3f5b5e"
TO = to_checksum_address("0x2b5ad5c4795c026514f8317c7a215e218dccd6cf")
DATA = bytes.fromhex("c9807539") + bytes(range(64))
account = Account.from_key(KEY)

section("sender")
print("address", account.address)
print("data", h(DATA))

section("legacy EIP-155 (chain 204, nonce 42, 1 wei, 500000 gas)")
legacy = Account.sign_transaction(
    {
        "chainId": 204,
        "nonce": 42,
        "gasPrice": 1,
        "gas": 500_000,
        "to": TO,
        "value": 0,
        "data": DATA,
    },
    KEY,
)
print("raw", h(legacy.raw_transaction))
print("hash", h(legacy.hash))

section("EIP-1559 (chain 204, nonce 42, max fee 2 gwei, tip 0.001 gwei, 500000 gas)")
dynamic = Account.sign_transaction(
    {
        "type": 2,
        "chainId": 204,
        "nonce": 42,
        "maxFeePerGas": 2_000_000_000,
        "maxPriorityFeePerGas": 1_000_000,
        "gas": 500_000,
        "to": TO,
        "value": 0,
        "data": DATA,
        "accessList": [],
    },
    KEY,
)
print("raw", h(dynamic.raw_transaction))
print("hash", h(dynamic.hash))

section("legacy EIP-155 with value (chain 5611, nonce 0, 3 gwei, 21000 gas, 1 wei value, no data)")
transfer = Account.sign_transaction(
    {
        "chainId": 5611,
        "nonce": 0,
        "gasPrice": 3_000_000_000,
        "gas": 21_000,
        "to": TO,
        "value": 1,
        "data": b"",
    },
    KEY,
)
print("raw", h(transfer.raw_transaction))
print("hash", h(transfer.hash))

# ---------------------------------------------------------------- selectors
section("selectors (ocr-and-sources.md A.2.5)")
for sig in [
    "transmit(bytes,bytes32[],bytes32[],bytes32)",
    "latestRoundData()",
    "latestConfigDetails()",
    "latestTransmissionDetails()",
    "setConfig(address[],address[],uint8,uint64,bytes)",
    "setConfig((address[],address[],uint8,uint8[],bytes32[],string,(bytes32,bytes32,bytes16[])))",
    "setConsensusConfig(int64,int64,int64,int64,int64,uint64,int64,uint8,uint64)",
]:
    print(h(selector(sig)), sig)

section("event topics")
for sig in [
    "ConfigSet(uint32,uint64,address[],address[],uint8,uint64,bytes)",
    "RoundRequested(address,bytes16,uint32,uint8)",
]:
    print(h(keccak(text=sig)), sig)

# ---------------------------------------------------------------- calldata
SIGNERS = [to_checksum_address("0x" + f"{i:02x}" * 20) for i in (0x11, 0x12, 0x13, 0x14)]
TRANSMITTERS = [to_checksum_address("0x" + f"{i:02x}" * 20) for i in (0x21, 0x22, 0x23, 0x24)]
ENCODED = bytes.fromhex("00" * 31 + "20") + bytes(range(40))

section("setConfig(address[],address[],uint8,uint64,bytes) calldata")
print(
    h(
        selector("setConfig(address[],address[],uint8,uint64,bytes)")
        + encode(
            ["address[]", "address[]", "uint8", "uint64", "bytes"],
            [SIGNERS, TRANSMITTERS, 1, 1, ENCODED],
        )
    )
)

S = [1, 2, 2, 2]
OFFCHAIN_KEYS = [bytes([0xA0 + i]) * 32 for i in range(4)]
PEER_IDS = "12D3KooWA,12D3KooWB,12D3KooWC,12D3KooWD"
DH = bytes([0xD1]) * 32
SSH = bytes([0x55]) * 32
ENCRYPTIONS = [bytes([0xE0 + i]) * 16 for i in range(4)]

section("SP setConfig(struct) calldata")
print(
    h(
        selector(
            "setConfig((address[],address[],uint8,uint8[],bytes32[],string,(bytes32,bytes32,bytes16[])))"
        )
        + encode(
            ["(address[],address[],uint8,uint8[],bytes32[],string,(bytes32,bytes32,bytes16[]))"],
            [(SIGNERS, TRANSMITTERS, 1, S, OFFCHAIN_KEYS, PEER_IDS, (DH, SSH, ENCRYPTIONS))],
        )
    )
)

NS = 1_000_000_000
CONSENSUS = [35 * NS, 17 * NS, 30 * NS, 12 * NS, 86400 * NS, 5_000_000, 60 * NS, 6, 1]
section("SP setConsensusConfig calldata (deployed defaults)")
print(
    h(
        selector("setConsensusConfig(int64,int64,int64,int64,int64,uint64,int64,uint8,uint64)")
        + encode(
            ["int64", "int64", "int64", "int64", "int64", "uint64", "int64", "uint8", "uint64"],
            CONSENSUS,
        )
    )
)

# ---------------------------------------------------------------- return data and logs
section("latestTransmissionDetails() return data")
print(
    h(
        encode(
            ["bytes16", "uint32", "uint8", "int192", "uint64"],
            [bytes.fromhex("00112233445566778899aabbccddeeff"), 7, 3, -12345678900, 1_700_000_000],
        )
    )
)

section("latestConfigDetails() return data")
print(h(encode(["uint32", "uint32", "bytes16"], [2, 123456, bytes.fromhex("000a0b0c0d0e0f101112131415161718")])))

section("latestRoundData() return data")
print(h(encode(["uint80", "int256", "uint256", "uint256", "uint80"], [17, 6712345678900, 1_700_000_000, 1_700_000_000, 17])))

section("ConfigSet log data")
print(
    h(
        encode(
            ["uint32", "uint64", "address[]", "address[]", "uint8", "uint64", "bytes"],
            [100, 2, SIGNERS, TRANSMITTERS, 1, 1, ENCODED],
        )
    )
)

section("RoundRequested log data (requester indexed)")
print(h(encode(["bytes16", "uint32", "uint8"], [bytes.fromhex("00112233445566778899aabbccddeeff"), 9, 2])))
