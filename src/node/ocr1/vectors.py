#!/usr/bin/env python3
"""Independent test vectors for src/node/ocr1 (not run by CI).

Every expected byte string embedded in the Rust unit tests of src/node/ocr1/*.rs was printed by
this script, which uses only third-party Python libraries (eth-abi, eth-keys, eth-hash,
pycryptodome, PyNaCl) and transcriptions of the libocr Go code, never the Rust code. Regenerate:

    python3 -m venv /tmp/ocr1-venv
    /tmp/ocr1-venv/bin/pip install eth-abi eth-keys 'eth-hash[pycryptodome]' pycryptodome pynacl
    /tmp/ocr1-venv/bin/python src/node/ocr1/vectors.py
"""

from decimal import Decimal, ROUND_DOWN, getcontext
from fractions import Fraction

import nacl.signing
from Crypto.Cipher import AES
from Crypto.Util import Counter
from eth_abi import encode
from eth_hash.auto import keccak
from eth_keys import keys

INT192_MAX = 2**191 - 1
INT192_MIN = -(2**191)


def h(b: bytes) -> str:
    return b.hex()


def section(title: str) -> None:
    print(f"\n== {title}")


# ---------------------------------------------------------------- shared inputs
DIGEST = bytes.fromhex("00112233445566778899aabbccddeeff")
EPOCH, ROUND = 0x01020304, 5

# libocr report_context.go DomainSeparationTag: 11 zero bytes ‖ digest ‖ epoch u32 BE ‖ round u8.
RAW_CTX = b"\x00" * 11 + DIGEST + EPOCH.to_bytes(4, "big") + bytes([ROUND])

section("report context")
print("raw_report_context", h(RAW_CTX))

# ---------------------------------------------------------------- int192 wire encoding
section("int192 24-byte big-endian two's complement")
for v in [0, 1, -1, 255, -256, INT192_MAX, INT192_MIN, 6712345678900, -6712345678900]:
    print(v, h((v % 2**192).to_bytes(24, "big")))

section("scale_price (price x 10^decimals, truncated toward zero)")
getcontext().prec = 200
for price, decimals in [
    ("67123.456789", 8),
    ("1", 0),
    ("0.000000019", 8),
    ("79228162514264337593543950335", 18),  # Decimal::MAX mantissa, scale 0
    ("7.9228162514264337593543950335", 36),  # Decimal::MAX mantissa, scale 28
    ("79228162514264337593543950335", 36),  # 7.9e64 > int192 max
    ("3138550867693340381917.894711", 36),  # largest 28-digit price that fits at 36 decimals
    ("3138550867693340381917.894712", 36),  # one unit above: overflows
    ("0.000000009", 8),  # truncates to zero
]:
    scaled = (Decimal(price) * (Decimal(10) ** decimals)).to_integral_value(rounding=ROUND_DOWN)
    fits = INT192_MIN <= int(scaled) <= INT192_MAX
    print(price, decimals, int(scaled), "fits" if fits else "OVERFLOW")

# ---------------------------------------------------------------- report
section("report abi.encode(bytes32, bytes32, int192[])")
observations = [(-5, 3), (100, 0), (100, 7), (INT192_MAX, 1)]  # (value, observer), sorted by value
raw_observers = bytes(o for _, o in observations).ljust(32, b"\x00")
report = encode(["bytes32", "bytes32", "int192[]"], [RAW_CTX, raw_observers, [v for v, _ in observations]])
print("report", h(report))
print("report len", len(report))
print("keccak(report)", h(keccak(report)))

# ---------------------------------------------------------------- on-chain signatures
section("secp256k1 signatures over keccak256(report) (eth-keys, RFC 6979, low-S, v in {0,1})")
sigs = []
for d in (1, 2):
    sk = keys.PrivateKey(d.to_bytes(32, "big"))
    sig = sk.sign_msg_hash(keccak(report))
    sigs.append(sig.to_bytes())
    print(f"key {d} address", sk.public_key.to_checksum_address())
    print(f"key {d} sig", h(sig.to_bytes()))
    assert sig.recover_public_key_from_msg_hash(keccak(report)) == sk.public_key

section("transmit(bytes,bytes32[],bytes32[],bytes32) calldata")
selector = keccak(b"transmit(bytes,bytes32[],bytes32[],bytes32)")[:4]
rs = [s[:32] for s in sigs]
ss = [s[32:64] for s in sigs]
raw_vs = bytes(s[64] for s in sigs).ljust(32, b"\x00")
calldata = selector + encode(["bytes", "bytes32[]", "bytes32[]", "bytes32"], [report, rs, ss, raw_vs])
print("selector", h(selector))
print("rawVs", h(raw_vs))
print("calldata", h(calldata))
print("calldata len", len(calldata), "= 4 + 7*32 + len(report) + 32*len(rs) + 32*len(ss) =",
      4 + 7 * 32 + len(report) + 32 * len(rs) + 32 * len(ss))

# ---------------------------------------------------------------- observation signature
section("ed25519 observation signature (libocr observation.go signedObservationWireMessage)")
ed = nacl.signing.SigningKey(bytes([1]) * 32)
value = 6712345678900
msg = RAW_CTX + value.to_bytes(24, "big", signed=True)
print("ed25519 public key", h(bytes(ed.verify_key)))
print("observation message", h(msg))
print("observation signature", h(ed.sign(msg).signature))
neg_msg = RAW_CTX + (-1).to_bytes(24, "big", signed=True)
print("observation signature (value -1)", h(ed.sign(neg_msg).signature))

# ---------------------------------------------------------------- leader selection
section("leader selection (libocr shared_config.go LeaderSelectionKey, pacemaker.go Leader)")
shared_secret = bytes(range(16))
lsk = keccak(shared_secret + b"chainlink offchain reporting v1 leader selection key")[:16]
tok = keccak(shared_secret + b"chainlink offchain reporting v1 transmission order key")[:16]
print("leader selection key", h(lsk))
print("transmission order key", h(tok))
for n in (4, 7, 31):
    leaders = [
        int.from_bytes(keccak(lsk + e.to_bytes(8, "little")), "big") % n
        for e in (0, 1, 2, 3, 4, 5, 100, 2**32 - 1)
    ]
    print(f"leaders n={n} epochs [0,1,2,3,4,5,100,2^32-1]", leaders)

# ---------------------------------------------------------------- deviation
section("Deviates(old, new, alphaPPB): |new-old|/|old| >= alpha/1e9 (libocr observation.go)")


def deviates(old: int, new: int, alpha: int) -> bool:
    if old == 0:
        return new != 0
    return abs(Fraction(new - old, old)) >= Fraction(alpha, 10**9)


for old, new, alpha in [
    (0, 0, 5_000_000),
    (0, 1, 5_000_000),
    (0, -1, 0),
    (1000, 1005, 5_000_000),  # exactly 0.5%
    (1000, 995, 5_000_000),  # exactly 0.5% down
    (1000, 1004, 5_000_000),
    (1_000_000_000, 1_004_999_999, 5_000_000),
    (1_000_000_000, 1_005_000_000, 5_000_000),
    (-1000, -1005, 5_000_000),
    (-1000, 1000, 5_000_000),
    (5, 5, 0),  # alpha 0: any value, even equal, deviates (|0| >= 0)
    (INT192_MIN, INT192_MAX, 2**64 - 1),
    (INT192_MAX, INT192_MIN, 2**64 - 1),
    (1, INT192_MAX, 2**64 - 1),
    (3, 4, 333_333_334),
    (3, 4, 333_333_333),
]:
    print(old, new, alpha, deviates(old, new, alpha))

# ---------------------------------------------------------------- config digest
section("offchain config (setConfigEncodedComponents, libocr encode.go/abiencode.go)")
SECOND = 10**9
offchain = (
    35 * SECOND,  # deltaProgress
    17 * SECOND,  # deltaResend
    30 * SECOND,  # deltaRound
    12 * SECOND,  # deltaGrace
    86400 * SECOND,  # deltaC
    5_000_000,  # alphaPPB
    60 * SECOND,  # deltaStage
    6,  # rMax
    [1, 2, 2, 2],  # s
    [bytes([i]) * 32 for i in (0xA1, 0xA2, 0xA3, 0xA4)],  # offchainPublicKeys
    ",".join(
        [
            "12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "12D3KooWCccccccccccccccccccccccccccccccccccccccccccc",
            "12D3KooWDddddddddddddddddddddddddddddddddddddddddddd",
        ]
    ),
    (bytes([0xD1]) * 32, keccak(shared_secret), [bytes([0xE0 + i]) * 16 for i in range(4)]),
)
OFFCHAIN_TYPE = "(int64,int64,int64,int64,int64,uint64,int64,uint8,uint8[],bytes32[],string,(bytes32,bytes32,bytes16[]))"
encoded = encode([OFFCHAIN_TYPE], [offchain])
print("encoded", h(encoded))
print("encoded len", len(encoded))

section("config digest bytes16(keccak256(abi.encode(address,uint64,address[],address[],uint8,uint64,bytes)))")
contract = "0x" + "c0" * 20
signers = ["0x" + f"{0x10 + i:02x}" * 20 for i in range(4)]
transmitters = ["0x" + f"{0x20 + i:02x}" * 20 for i in range(4)]
digest_input = encode(
    ["address", "uint64", "address[]", "address[]", "uint8", "uint64", "bytes"],
    [contract, 7, signers, transmitters, 1, 1, encoded],
)
print("config digest", h(keccak(digest_input)[:16]))
empty_input = encode(
    ["address", "uint64", "address[]", "address[]", "uint8", "uint64", "bytes"],
    ["0x" + "00" * 20, 0, [], [], 0, 0, b""],
)
print("config digest (all empty)", h(keccak(empty_input)[:16]))

# ---------------------------------------------------------------- permutation
section("permutation (libocr permutation.go + Go math/rand Shuffle/int31n, AES-128-CTR zero IV)")


class CryptoRandSource:
    """cryptoRandSource: Int63 = LE u64 of the next 8 keystream bytes, top bit cleared."""

    def __init__(self, key: bytes):
        self.cipher = AES.new(key, AES.MODE_CTR, counter=Counter.new(128, initial_value=0))

    def int63(self) -> int:
        return int.from_bytes(self.cipher.encrypt(b"\x00" * 8), "little") & (2**63 - 1)

    def uint32(self) -> int:
        return self.int63() >> 31

    def int31n(self, n: int) -> int:  # Go's unexported (*Rand).int31n (Lemire)
        v = self.uint32()
        prod = v * n
        low = prod & 0xFFFFFFFF
        if low < n:
            thresh = (2**32 - n) % n
            while low < thresh:
                v = self.uint32()
                prod = v * n
                low = prod & 0xFFFFFFFF
        return prod >> 32


def permutation(n: int, key: bytes) -> list:
    result = list(range(n))
    src = CryptoRandSource(key)
    for i in range(n - 1, 0, -1):  # Shuffle: n always < 2^31 - 1 here
        j = src.int31n(i + 1)
        result[i], result[j] = result[j], result[i]
    return result


for n, key in [(4, bytes(16)), (4, bytes(range(16))), (7, bytes(range(16))), (31, bytes(range(16))), (1, bytes(16))]:
    print(f"permutation n={n} key={h(key)}", permutation(n, key))

section("transmission delay stage (libocr transmission.go transmitDelay)")
for epoch, rnd in [(1, 1), (7, 3)]:
    key = keccak(tok + DIGEST + epoch.to_bytes(8, "little") + rnd.to_bytes(8, "little"))[:16]
    pi = permutation(4, key)
    schedule = [1, 2, 2, 2]
    stages = []
    for oracle in range(4):
        total, stage = 0, None
        for i, s in enumerate(schedule):
            total += s
            if pi[oracle] < total:
                stage = i
                break
        stages.append(stage)
    print(f"epoch={epoch} round={rnd} key={h(key)} pi={pi} stages(s=[1,2,2,2])={stages}")
