#!/usr/bin/env python3
"""Tests of OffchainAggregator.vy against the OCR1 facts (ocr-and-sources.md A.2.1-A.2.5), and
of the same expectations against the real upstream AccessControlledOffchainAggregator 4.0.0
(libocr's compiled bytecode, contracts/upstream/).

Why: the enclave's oracles are tested against this contract; if it accepted what the real
OffchainAggregator refuses (or the other way round), those tests would prove nothing. So every
report here is a real OCR1 report signed the way libocr signs (secp256k1 over keccak256(report),
v in {0,1}), sent in a real signed transaction through the dev chain's own RPC methods, and
every check of transmit() is hit with one crafted bad input and its exact revert string. The
upstream class runs every test that applies to it unchanged, so a difference between the model
and the real contract fails here; it adds what only the real contract has (payees, billing).

Runs with the dev chain's venv and no test framework:
    .local/devchain-venv/bin/python scripts/devchain/test_contract.py
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eth_abi import decode, encode  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_keys import keys  # noqa: E402
from eth_utils import keccak, to_checksum_address  # noqa: E402

import artifact  # noqa: E402
from devchain import DevChain, RpcError  # noqa: E402

F = 1  # faulty oracles tolerated; 4 oracles as deployed by Super Protocol
INT192_MAX = 2**191 - 1

# Selectors and event topics as the fact sheet lists them (A.2.1-A.2.5).
SELECTORS = {
    "transmit(bytes,bytes32[],bytes32[],bytes32)": "c9807539",
    "setConfig(address[],address[],uint8,uint64,bytes)": "585aa7de",
    "setConfig((address[],address[],uint8,uint8[],bytes32[],string,"
    "(bytes32,bytes32,bytes16[])))": "67dd81f0",
    "setConsensusConfig(int64,int64,int64,int64,int64,uint64,int64,uint8,uint64)": "67222871",
    "latestTransmissionDetails()": "e5fe4577",
    "latestRoundData()": "feaf968c",
    "latestConfigDetails()": "81ff7048",
    "latestAnswer()": "50d25bcd",
    "latestTimestamp()": "8205bf6a",
    "latestRound()": "668a0f02",
    "transmitters()": "81411834",
    "decimals()": "313ce567",
    "description()": "7284e416",
    "typeAndVersion()": "181f5a77",
    "requestNewRound()": "98e5b12a",
    "getRoundData(uint80)": "9a6fc8f5",
    "version()": "54fd4d50",
    "owner()": "8da5cb5b",
}
TOPICS = {
    "NewTransmission": "0xf6a97944f31ea060dfde0566e4167c1a1082551e64b60ecb14d599a9d023d451",
    "AnswerUpdated": "0x0559884fd3a460db3073b7fc896cc77986f16e378210ded43186175bf646fc5f",
    "NewRound": "0x0109fc6f55cf40689f02fbaad7af7fe7bbac8a3d2186600afc7d3e10cac60271",
    "RoundRequested": "0x3ea16a923ff4b1df6526e854c9e3a995c43385d70e73359e10623c74f0b52037",
    "ConfigSet": "0x25d719d88a4512dd76c7442b910a83360845505894eb444ef299409e180f8fb9",
}
CONSENSUS_TUPLE = (
    "(int64,int64,int64,int64,int64,uint64,int64,uint8,uint8[],bytes32[],string,"
    "(bytes32,bytes32,bytes16[]))"
)
# The feed both contract models are deployed as.
BTC_USD = {"decimals": 8, "description": "BTC / USD", "minAnswer": "1", "maxAnswer": str(10**12)}
SP_CONFIG_TUPLE = "(address[],address[],uint8,uint8[],bytes32[],string,(bytes32,bytes32,bytes16[]))"


def selector(signature):
    return keccak(text=signature)[:4]


def call_data(signature, types=(), values=()):
    return selector(signature) + encode(list(types), list(values))


def error_data(reason):
    return selector("Error(string)") + encode(["string"], [reason])


def oracle_key(i):
    """Deterministic on-chain signing keys, unrelated to the chain's funded accounts."""
    return keys.PrivateKey(keccak(text=f"ocr signer {i}"))


def make_report(digest, epoch, rnd, observations, observers=None):
    """libocr's OCR1 report: abi.encode(bytes32 context, bytes32 observers, int192[] obs)."""
    if observers is None:
        observers = list(range(len(observations)))
    context = b"\0" * 11 + digest + epoch.to_bytes(4, "big") + bytes([rnd])
    raw_observers = bytes(observers).ljust(32, b"\0")
    return encode(["bytes32", "bytes32", "int192[]"], [context, raw_observers, observations])


def sign_report(report, signer_keys):
    """(rs, ss, rawVs) as libocr's collateSignatures builds them from crypto.Sign output."""
    digest = keccak(report)
    rs, ss, vs = [], [], []
    for key in signer_keys:
        signature = key.sign_msg_hash(digest)
        rs.append(signature.r.to_bytes(32, "big"))
        ss.append(signature.s.to_bytes(32, "big"))
        vs.append(signature.v)  # 0 or 1
    return rs, ss, bytes(vs).ljust(32, b"\0")


def transmit_data(report, rs, ss, raw_vs):
    return call_data(
        "transmit(bytes,bytes32[],bytes32[],bytes32)",
        ["bytes", "bytes32[]", "bytes32[]", "bytes32"],
        [report, rs, ss, raw_vs],
    )


class Harness:
    """The dev chain driven through its JSON-RPC methods (in-process, no HTTP)."""

    def __init__(self):
        self.chain = DevChain(chain_id=1337)
        info = self.chain.ready_info()
        self.owner = info["owner"]["privateKey"]
        self.accounts = [a["privateKey"] for a in info["accounts"]]

    def rpc(self, method, *params):
        return self.chain.handle(method, list(params))

    def send(self, key, to, data, gas=None):
        """Signs and sends an EIP-1559 transaction (to=None creates); returns its receipt.

        The gas limit is eth_estimateGas's, or 3M for a transaction that would revert (so that
        it is mined and fails on chain)."""
        sender = Account.from_key(key).address
        if gas is None:
            request = {"from": sender, "data": data if isinstance(data, str) else "0x" + data.hex()}
            if to is not None:
                request["to"] = to
            try:
                gas = int(self.rpc("eth_estimateGas", request), 16)
            except RpcError:
                gas = 3_000_000
        base_fee = int(self.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
        tx = {
            "type": 2,
            "chainId": 1337,
            "nonce": int(self.rpc("eth_getTransactionCount", sender, "pending"), 16),
            "to": to,
            "data": data,
            "value": 0,
            "gas": gas,
            "maxFeePerGas": 2 * base_fee + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        if to is None:
            del tx["to"]  # contract creation
        raw = Account.sign_transaction(tx, key).raw_transaction
        tx_hash = self.rpc("eth_sendRawTransaction", "0x" + bytes(raw).hex())
        return self.rpc("eth_getTransactionReceipt", tx_hash)

    def call(self, to, data, sender=None):
        request = {"to": to, "data": "0x" + data.hex()}
        if sender:
            request["from"] = sender
        return bytes.fromhex(self.rpc("eth_call", request, "latest")[2:])


class AggregatorTest(unittest.TestCase):
    """One fresh aggregator (min 1, max 10^12, 8 decimals) per test, configured for 4 oracles."""

    @classmethod
    def setUpClass(cls):
        cls.h = Harness()

    # What differs between the model and the real contract (the upstream class overrides them).
    TYPE_AND_VERSION = "OffchainAggregator 4.0.0 (enclave tests)"
    SUPER_PROTOCOL = True

    def abi(self):
        return artifact.load_aggregator()["abi"]

    def deploy(self):
        return self.h.rpc("dev_deployAggregator", dict(BTC_USD))

    def setUp(self):
        h = self.h
        self.address = self.deploy()
        self.signers = [oracle_key(i) for i in range(4)]
        self.transmitter_keys = h.accounts[:4]
        self.transmitters = [Account.from_key(k).address for k in self.transmitter_keys]
        self.outsider = h.accounts[9]

    # --- helpers ------------------------------------------------------------------------------

    def view(self, signature, out_types, sender=None):
        output = self.h.call(self.address, selector(signature), sender)
        return decode(out_types, output)

    def set_config(self, signers=None, transmitters=None, threshold=F, version=1, encoded=b"x"):
        signers = (
            signers
            if signers is not None
            else [k.public_key.to_checksum_address() for k in self.signers]
        )
        transmitters = transmitters if transmitters is not None else self.transmitters
        data = call_data(
            "setConfig(address[],address[],uint8,uint64,bytes)",
            ["address[]", "address[]", "uint8", "uint64", "bytes"],
            [signers, transmitters, threshold, version, encoded],
        )
        receipt = self.h.send(self.h.owner, self.address, data)
        self.assertEqual(receipt["status"], "0x1", "setConfig failed")
        return receipt

    def digest(self):
        return self.view("latestConfigDetails()", ["uint32", "uint32", "bytes16"])[2]

    def transmit(self, report, signer_keys=None, transmitter=0):
        rs, ss, raw_vs = sign_report(report, signer_keys or self.signers[: F + 1])
        return self.h.send(
            self.transmitter_keys[transmitter], self.address, transmit_data(report, rs, ss, raw_vs)
        )

    def assert_reverts(self, reason, data, sender=None):
        """eth_call answers a revert as geth does: code 3, the reason, the raw revert data."""
        with self.assertRaises(RpcError) as caught:
            self.h.call(self.address, data, sender)
        error = caught.exception
        self.assertEqual(error.code, 3, error.message)
        if reason is None:
            self.assertEqual(error.message, "execution reverted")
            self.assertEqual(error.data, "0x")
        else:
            self.assertEqual(error.message, f"execution reverted: {reason}")
            self.assertEqual(error.data, "0x" + error_data(reason).hex())

    def assert_observer_index_past_31_fails(self, report):
        self.assert_transmit_reverts(None, report)

    def assert_transmit_reverts(
        self, reason, report, signer_keys=None, transmitter=0, rs_ss_vs=None
    ):
        rs, ss, raw_vs = rs_ss_vs or sign_report(report, signer_keys or self.signers[: F + 1])
        self.assert_reverts(
            reason,
            transmit_data(report, rs, ss, raw_vs),
            self.transmitters[transmitter] if transmitter is not None else None,
        )

    # --- interface ----------------------------------------------------------------------------

    def test_selectors_and_topics_match_the_fact_sheet(self):
        for signature, expected in SELECTORS.items():
            self.assertEqual(selector(signature).hex(), expected, signature)
        abi = self.abi()
        for item in abi:
            if item["type"] == "event" and (self.SUPER_PROTOCOL or item["name"] in TOPICS):
                types = ",".join(i["type"] for i in item["inputs"])
                topic = "0x" + keccak(text=f"{item['name']}({types})").hex()
                self.assertEqual(topic, TOPICS[item["name"]], item["name"])
        abi_functions = {
            item["name"] + "(" + ",".join(_abi_type(i) for i in item["inputs"]) + ")"
            for item in abi
            if item["type"] == "function"
        }
        expected = {
            signature
            for signature in SELECTORS
            if self.SUPER_PROTOCOL
            or not signature.startswith(("setConfig((", "setConsensusConfig("))
        }
        self.assertLessEqual(expected, abi_functions)

    def test_reads_before_any_report(self):
        self.assertEqual(self.view("typeAndVersion()", ["string"])[0], self.TYPE_AND_VERSION)
        self.assertEqual(self.view("decimals()", ["uint8"])[0], 8)
        self.assertEqual(self.view("description()", ["string"])[0], "BTC / USD")
        self.assertEqual(self.view("version()", ["uint256"])[0], 4)
        self.assertEqual(
            self.view("owner()", ["address"])[0].lower(),
            Account.from_key(self.h.owner).address.lower(),
        )
        # latestRoundData never reverts: zeros before the first report.
        self.assertEqual(
            self.view("latestRoundData()", ["uint80", "int256", "uint256", "uint256", "uint80"]),
            (0, 0, 0, 0, 0),
        )
        self.assertEqual(self.view("latestAnswer()", ["int256"])[0], 0)
        self.assertEqual(self.view("latestRound()", ["uint256"])[0], 0)
        self.assertEqual(
            self.view("latestConfigDetails()", ["uint32", "uint32", "bytes16"]), (0, 0, b"\0" * 16)
        )
        self.assertEqual(self.view("transmitters()", ["address[]"])[0], ())

    # --- configuration ------------------------------------------------------------------------

    def test_set_config_digest_and_event(self):
        receipt = self.set_config(encoded=b"encoded config")
        count, block, digest = self.view("latestConfigDetails()", ["uint32", "uint32", "bytes16"])
        self.assertEqual(count, 1)
        self.assertEqual(block, int(receipt["blockNumber"], 16))
        signers = [k.public_key.to_checksum_address() for k in self.signers]
        expected = keccak(
            encode(
                ["address", "uint64", "address[]", "address[]", "uint8", "uint64", "bytes"],
                [self.address, 1, signers, self.transmitters, F, 1, b"encoded config"],
            )
        )[:16]
        self.assertEqual(digest, expected)
        (log,) = receipt["logs"]
        self.assertEqual(log["topics"], [TOPICS["ConfigSet"]])
        fields = decode(
            ["uint32", "uint64", "address[]", "address[]", "uint8", "uint64", "bytes"],
            bytes.fromhex(log["data"][2:]),
        )
        self.assertEqual(fields[0], 0)  # no previous config
        self.assertEqual(fields[1], 1)
        self.assertEqual([a.lower() for a in fields[2]], [a.lower() for a in signers])
        self.assertEqual([a.lower() for a in fields[3]], [a.lower() for a in self.transmitters])
        self.assertEqual(fields[4:], (F, 1, b"encoded config"))
        self.assertEqual(
            [a.lower() for a in self.view("transmitters()", ["address[]"])[0]],
            [a.lower() for a in self.transmitters],
        )
        # A second config: count 2, previous block reported, new digest.
        receipt2 = self.set_config(encoded=b"other")
        count2, _, digest2 = self.view("latestConfigDetails()", ["uint32", "uint32", "bytes16"])
        self.assertEqual(count2, 2)
        self.assertNotEqual(digest2, digest)
        previous = decode(["uint32"], bytes.fromhex(receipt2["logs"][0]["data"][2:66]))[0]
        self.assertEqual(previous, block)

    def test_set_config_checks(self):
        signers = [k.public_key.to_checksum_address() for k in self.signers]

        def data(signers_, transmitters_, threshold):
            return call_data(
                "setConfig(address[],address[],uint8,uint64,bytes)",
                ["address[]", "address[]", "uint8", "uint64", "bytes"],
                [signers_, transmitters_, threshold, 1, b""],
            )

        owner = Account.from_key(self.h.owner).address
        self.assert_reverts(
            "Only callable by owner", data(signers, self.transmitters, 1), self.transmitters[0]
        )
        self.assert_reverts(
            "threshold must be positive", data(signers, self.transmitters, 0), owner
        )
        self.assert_reverts(
            "faulty-oracle threshold too high", data(signers, self.transmitters, 2), owner
        )
        self.assert_reverts(
            "oracle addresses out of registration", data(signers, self.transmitters[:3], 1), owner
        )
        many = [to_checksum_address(keccak(text=str(i))[:20]) for i in range(32)]
        self.assert_reverts("too many signers", data(many, many, 1), owner)
        self.assert_reverts(
            "repeated signer address", data([signers[0]] * 4, self.transmitters, 1), owner
        )
        self.assert_reverts(
            "repeated transmitter address", data(signers, [self.transmitters[0]] * 4, 1), owner
        )
        # An address may not be both a signer and a transmitter (one role per oracle address).
        self.assert_reverts(
            "repeated transmitter address",
            data(signers, [signers[0]] + self.transmitters[1:], 1),
            owner,
        )

    def test_super_protocol_set_config(self):
        if not self.SUPER_PROTOCOL:
            self.skipTest("the Super Protocol setConfig is not in the upstream contract")
        h = self.h
        owner = Account.from_key(h.owner).address

        def set_consensus(params):
            return h.send(
                h.owner,
                self.address,
                call_data(
                    "setConsensusConfig(int64,int64,int64,int64,int64,uint64,int64,uint8,uint64)",
                    ["int64"] * 5 + ["uint64", "int64", "uint8", "uint64"],
                    params,
                ),
            )

        # Consensus parameters as deployed (ns), then the struct config.
        params = [
            35 * 10**9,
            17 * 10**9,
            30 * 10**9,
            12 * 10**9,
            86400 * 10**9,
            5_000_000,
            60 * 10**9,
            6,
            1,
        ]
        receipt = set_consensus(params)
        self.assertEqual(receipt["status"], "0x1")
        self.assertEqual(receipt["logs"], [], "no config yet: nothing re-applied")
        signers = [k.public_key.to_checksum_address() for k in self.signers]
        s = [1, 2, 2, 2]
        offchain = [keccak(text=f"offchain {i}") for i in range(4)]
        peers = ",".join(f"12D3KooWPeer{i}" for i in range(4))
        secret = (
            keccak(text="dh"),
            keccak(text="hash"),
            [keccak(text=f"enc {i}")[:16] for i in range(4)],
        )
        config = (signers, self.transmitters, F, s, offchain, peers, secret)
        data = call_data(f"setConfig({SP_CONFIG_TUPLE})", [SP_CONFIG_TUPLE], [config])
        self.assertEqual(data[:4].hex(), "67dd81f0")
        self.assert_reverts("Only callable by owner", data, self.transmitters[0])
        receipt = h.send(h.owner, self.address, data)
        self.assertEqual(receipt["status"], "0x1")
        encoded = encode([CONSENSUS_TUPLE], [tuple(params[:8]) + (s, offchain, peers, secret)])
        (log,) = receipt["logs"]
        self.assertEqual(log["topics"], [TOPICS["ConfigSet"]])
        fields = decode(
            ["uint32", "uint64", "address[]", "address[]", "uint8", "uint64", "bytes"],
            bytes.fromhex(log["data"][2:]),
        )
        self.assertEqual(fields[1], 1)
        self.assertEqual(fields[4:], (F, 1, encoded))
        expected = keccak(
            encode(
                ["address", "uint64", "address[]", "address[]", "uint8", "uint64", "bytes"],
                [self.address, 1, signers, self.transmitters, F, 1, encoded],
            )
        )[:16]
        self.assertEqual(self.digest(), expected)
        # The oracle side decodes `encoded` back into the libocr tuple.
        self.assertEqual(decode([CONSENSUS_TUPLE], encoded)[0][10], peers)
        # Reports are accepted under that config.
        self.assertEqual(self.transmit(make_report(expected, 1, 1, [5, 6, 7]))["status"], "0x1")

        # New consensus parameters re-apply the stored config: count 2, new digest, epoch reset.
        params[2] = 20 * 10**9
        params[8] = 2
        receipt = set_consensus(params)
        (log,) = receipt["logs"]
        fields = decode(
            ["uint32", "uint64", "address[]", "address[]", "uint8", "uint64", "bytes"],
            bytes.fromhex(log["data"][2:]),
        )
        encoded2 = encode([CONSENSUS_TUPLE], [tuple(params[:8]) + (s, offchain, peers, secret)])
        self.assertEqual(fields[1], 2)
        self.assertEqual(fields[5:], (2, encoded2))
        digest2 = self.digest()
        self.assertNotEqual(digest2, expected)
        self.assertEqual(self.transmit(make_report(digest2, 1, 1, [5, 6, 7]))["status"], "0x1")
        # Unknown selectors revert without data, as a Solidity contract's would.
        self.assert_reverts(None, bytes.fromhex("deadbeef"), owner)

    def test_super_protocol_set_config_largest(self):
        """31 oracles and a 2048-character peer list fit the contract's calldata bound."""
        if not self.SUPER_PROTOCOL:
            self.skipTest("the Super Protocol setConfig is not in the upstream contract")
        h = self.h
        signer_keys = [oracle_key(100 + i) for i in range(31)]
        signers = [k.public_key.to_checksum_address() for k in signer_keys]
        transmitters = [to_checksum_address(keccak(text=f"t{i}")[:20]) for i in range(31)]
        config = (
            signers,
            transmitters,
            10,
            [2] * 31,
            [keccak(text=str(i)) for i in range(31)],
            "p" * 2048,
            (b"\1" * 32, b"\2" * 32, [b"\3" * 16] * 31),
        )
        data = call_data(f"setConfig({SP_CONFIG_TUPLE})", [SP_CONFIG_TUPLE], [config])
        self.assertEqual((len(data) - 4) // 32, 236)
        receipt = h.send(h.owner, self.address, data)
        self.assertEqual(receipt["status"], "0x1")
        self.assertEqual(self.view("latestConfigDetails()", ["uint32", "uint32", "bytes16"])[0], 1)

    # --- transmit: success --------------------------------------------------------------------

    def test_transmit_accepted_and_read_back(self):
        self.set_config()
        digest = self.digest()
        observations = [100, 200, 300]
        report = make_report(digest, 1, 2, observations, observers=[2, 0, 3])
        receipt = self.transmit(report, transmitter=1)
        self.assertEqual(receipt["status"], "0x1")
        block = self.h.rpc("eth_getBlockByNumber", receipt["blockNumber"], False)
        timestamp = int(block["timestamp"], 16)
        self.assertEqual(
            self.view("latestRoundData()", ["uint80", "int256", "uint256", "uint256", "uint80"]),
            (1, 200, timestamp, timestamp, 1),
        )
        self.assertEqual(self.view("latestAnswer()", ["int256"])[0], 200)
        self.assertEqual(self.view("latestTimestamp()", ["uint256"])[0], timestamp)
        self.assertEqual(self.view("latestRound()", ["uint256"])[0], 1)
        self.assertEqual(
            decode(
                ["uint80", "int256", "uint256", "uint256", "uint80"],
                self.h.call(self.address, call_data("getRoundData(uint80)", ["uint80"], [1])),
            ),
            (1, 200, timestamp, timestamp, 1),
        )
        # latestTransmissionDetails: from an EOA only (eth_call with `from`).
        details = self.view(
            "latestTransmissionDetails()",
            ["bytes16", "uint32", "uint8", "int192", "uint64"],
            sender=self.transmitters[0],
        )
        self.assertEqual(details, (digest, 1, 2, 200, timestamp))

        new_transmission, new_round, answer_updated = receipt["logs"]
        self.assertEqual(
            new_transmission["topics"],
            [TOPICS["NewTransmission"], "0x" + (1).to_bytes(32, "big").hex()],
        )
        answer, transmitter, obs, observers, context = decode(
            ["int192", "address", "int192[]", "bytes", "bytes32"],
            bytes.fromhex(new_transmission["data"][2:]),
        )
        self.assertEqual(answer, 200)
        self.assertEqual(transmitter.lower(), self.transmitters[1].lower())
        self.assertEqual(list(obs), observations)
        self.assertEqual(observers, bytes([2, 0, 3]))
        self.assertEqual(context, report[:32])
        self.assertEqual(
            new_round["topics"],
            [TOPICS["NewRound"], "0x" + (1).to_bytes(32, "big").hex(), "0x" + "00" * 32],
        )
        self.assertEqual(decode(["uint256"], bytes.fromhex(new_round["data"][2:]))[0], timestamp)
        self.assertEqual(
            answer_updated["topics"],
            [
                TOPICS["AnswerUpdated"],
                "0x" + (200).to_bytes(32, "big").hex(),
                "0x" + (1).to_bytes(32, "big").hex(),
            ],
        )
        # Logs are findable by address and topic, as an oracle's contract tracker looks for them.
        logs = self.h.rpc(
            "eth_getLogs",
            {
                "address": self.address,
                "fromBlock": "0x0",
                "toBlock": "latest",
                "topics": [TOPICS["NewTransmission"]],
            },
        )
        self.assertEqual([log["transactionHash"] for log in logs], [receipt["transactionHash"]])

        # A later round of the same epoch; an even number of observations: median = obs[k/2].
        report = make_report(digest, 1, 3, [-5, 10, 20, 30], observers=[0, 1, 2, 3])
        self.assert_transmit_reverts(
            "median is out of min-max range", make_report(digest, 1, 3, [-5, -4, 0])
        )
        self.assertEqual(self.transmit(report, signer_keys=self.signers[1:4])["status"], "0x1")
        self.assertEqual(self.view("latestAnswer()", ["int256"])[0], 20)
        self.assertEqual(self.view("latestRound()", ["uint256"])[0], 2)

    def test_request_new_round(self):
        self.set_config()
        self.assertEqual(
            self.transmit(make_report(self.digest(), 3, 4, [1, 2, 3]))["status"], "0x1"
        )
        data = selector("requestNewRound()")
        self.assert_reverts("Only owner&requester can call", data, self.transmitters[0])
        receipt = self.h.send(self.h.owner, self.address, data)
        (log,) = receipt["logs"]
        owner = Account.from_key(self.h.owner).address
        self.assertEqual(
            log["topics"],
            [TOPICS["RoundRequested"], "0x" + bytes.fromhex(owner[2:]).rjust(32, b"\0").hex()],
        )
        self.assertEqual(
            decode(["bytes16", "uint32", "uint8"], bytes.fromhex(log["data"][2:])),
            (self.digest(), 3, 4),
        )
        self.assertEqual(decode(["uint80"], self.h.call(self.address, data, owner))[0], 2)

    def test_new_config_resets_epoch_and_round(self):
        self.set_config()
        self.assertEqual(
            self.transmit(make_report(self.digest(), 9, 9, [1, 2, 3]))["status"], "0x1"
        )
        old_digest = self.digest()
        self.set_config(encoded=b"second")
        self.assert_transmit_reverts(
            "configDigest mismatch", make_report(old_digest, 10, 1, [1, 2, 3])
        )
        self.assertEqual(
            self.transmit(make_report(self.digest(), 1, 1, [1, 2, 3]))["status"], "0x1"
        )
        self.assertEqual(self.view("latestRound()", ["uint256"])[0], 2)

    def test_all_31_oracles(self):
        signer_keys = [oracle_key(200 + i) for i in range(31)]
        transmitter = self.transmitters[0]
        others = [to_checksum_address(keccak(text=f"x{i}")[:20]) for i in range(30)]
        self.set_config(
            signers=[k.public_key.to_checksum_address() for k in signer_keys],
            transmitters=[transmitter] + others,
            threshold=10,
        )
        observations = list(range(1000, 1031))
        receipt = self.transmit(
            make_report(self.digest(), 1, 1, observations, observers=list(range(30, -1, -1))),
            signer_keys=signer_keys[:11],
        )
        self.assertEqual(receipt["status"], "0x1")
        self.assertEqual(self.view("latestAnswer()", ["int256"])[0], 1015)

    # --- transmit: every check, in order ------------------------------------------------------

    def test_every_transmit_check(self):
        self.set_config()
        digest = self.digest()
        good = make_report(digest, 5, 1, [10, 20, 30])
        self.assertEqual(self.transmit(good)["status"], "0x1")
        next_good = make_report(digest, 5, 2, [10, 20, 30])
        rs, ss, raw_vs = sign_report(next_good, self.signers[:2])
        valid = transmit_data(next_good, rs, ss, raw_vs)

        # Exact calldata length: trailing bytes are refused.
        self.assert_reverts("transmit message too long", valid + b"\0" * 32, self.transmitters[0])
        self.assert_reverts("transmit message too long", valid + b"\0", self.transmitters[0])
        self.assert_transmit_reverts(
            "configDigest mismatch", make_report(b"\x11" * 16, 5, 2, [1, 2, 3])
        )
        # Epoch and round must strictly increase.
        self.assert_transmit_reverts("stale report", good)
        self.assert_transmit_reverts("stale report", make_report(digest, 4, 9, [10, 20, 30]))
        # More than f signatures.
        self.assert_transmit_reverts(
            "not enough signatures", next_good, signer_keys=self.signers[:1]
        )
        # At most 31 signatures (checked before any is verified).
        fake = [b"\1" * 32] * 32
        self.assert_transmit_reverts(
            "too many signatures", next_good, rs_ss_vs=(fake, fake, b"\0" * 32)
        )
        self.assert_transmit_reverts(
            "signatures out of registration", next_good, rs_ss_vs=(rs, ss + [ss[0]], raw_vs)
        )
        self.assert_transmit_reverts(
            "num observations out of bounds", make_report(digest, 5, 2, list(range(32)))
        )
        # More than 2f observations.
        self.assert_transmit_reverts(
            "too few values to trust median", make_report(digest, 5, 2, [10, 20])
        )
        self.assert_transmit_reverts(
            "observer index repeated", make_report(digest, 5, 2, [10, 20, 30], observers=[0, 1, 0])
        )
        # Observer index past 31: the model reverts without a message; the real contract
        # (solc 0.7.6) indexes its bool[31] out of bounds, which is the invalid opcode.
        self.assert_observer_index_past_31_fails(
            make_report(digest, 5, 2, [10, 20, 30], observers=[0, 1, 31])
        )
        self.assert_transmit_reverts(
            "unauthorized transmitter", next_good, transmitter=None
        )  # from 0x0
        self.assert_reverts(
            "unauthorized transmitter", valid, Account.from_key(self.outsider).address
        )
        # A signer is not a transmitter either.
        self.assert_reverts(
            "unauthorized transmitter", valid, self.signers[0].public_key.to_checksum_address()
        )
        self.assert_transmit_reverts(
            "address not authorized to sign",
            next_good,
            signer_keys=[self.signers[0], oracle_key(99)],
        )
        # A wrong v recovers another address.
        flipped = bytes([raw_vs[0] ^ 1]) + raw_vs[1:]
        self.assert_transmit_reverts(
            "address not authorized to sign", next_good, rs_ss_vs=(rs, ss, flipped)
        )
        self.assert_transmit_reverts(
            "non-unique signature", next_good, signer_keys=[self.signers[2], self.signers[2]]
        )
        self.assert_transmit_reverts(
            "observations not sorted", make_report(digest, 5, 2, [10, 30, 20])
        )
        self.assert_transmit_reverts(
            "median is out of min-max range", make_report(digest, 5, 2, [1, 10**12 + 1, 10**12 + 2])
        )
        self.assert_transmit_reverts(
            "median is out of min-max range", make_report(digest, 5, 2, [-1, 0, 5])
        )

        # A failing transmit sent for real is mined with status 0 and changes nothing.
        bad = make_report(digest, 5, 2, [10, 30, 20])
        self.assertEqual(self.transmit(bad)["status"], "0x0")
        self.assertEqual(self.view("latestRound()", ["uint256"])[0], 1)
        # The valid one still goes through.
        receipt = self.h.send(self.transmitter_keys[0], self.address, valid)
        self.assertEqual(receipt["status"], "0x1")
        self.assertEqual(self.view("latestRound()", ["uint256"])[0], 2)

    def test_latest_transmission_details_only_from_an_eoa(self):
        """A contract calling it (msg.sender != tx.origin) gets "Only callable by EOA"."""
        import vyper

        probe_source = (
            "# pragma version 0.4.3\n"
            "@external\n@view\n"
            "def probe(target: address) -> Bytes[256]:\n"
            '    return raw_call(target, method_id("latestTransmissionDetails()"),'
            " max_outsize=256, is_static_call=True)\n"
        )
        code = vyper.compile_code(probe_source, output_formats=["bytecode"])["bytecode"]
        receipt = self.h.send(self.h.owner, None, code)
        probe = receipt["contractAddress"]
        eoa = self.transmitters[0]
        data = call_data("probe(address)", ["address"], [self.address])
        with self.assertRaises(RpcError) as caught:
            self.h.call(probe, data, eoa)
        self.assertEqual(caught.exception.message, "execution reverted: Only callable by EOA")
        # Directly from the EOA it answers.
        self.view(
            "latestTransmissionDetails()", ["bytes16", "uint32", "uint8", "int192", "uint64"], eoa
        )


# Billing of the upstream contract in these tests: gwei prices, micro-LINK per ETH, LINK-gwei.
BILLING = {
    "maximumGasPrice": 1000,
    "reasonableGasPrice": 10,
    "microLinkPerEth": 200 * 10**6,  # 200 LINK per ETH
    "linkGweiPerObservation": 10**6,  # 0.001 LINK
    "linkGweiPerTransmission": 5 * 10**6,  # 0.005 LINK
}
LINK_FUNDING = 100 * 10**18


class UpstreamAggregatorTest(AggregatorTest):
    """The same expectations, against libocr's compiled AccessControlledOffchainAggregator 4.0.0
    (billing on, funded with the upstream LinkToken), plus payees and billing, which only the
    real contract has."""

    TYPE_AND_VERSION = "AccessControlledOffchainAggregator 4.0.0"
    SUPER_PROTOCOL = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.link = cls.h.rpc("dev_deployLinkToken")

    def abi(self):
        return artifact.load_upstream("AccessControlledOffchainAggregator")["abi"]

    def deploy(self):
        return self.h.rpc(
            "dev_deployUpstreamAggregator",
            {
                **BTC_USD,
                "link": self.link,
                "billing": BILLING,
                "linkFunding": str(LINK_FUNDING),
            },
        )["address"]

    def owner_address(self):
        return Account.from_key(self.h.owner).address

    def set_payees(self, transmitters, payees):
        data = call_data(
            "setPayees(address[],address[])",
            ["address[]", "address[]"],
            [transmitters, payees],
        )
        return self.h.send(self.h.owner, self.address, data)

    def set_config(self, signers=None, transmitters=None, **kwargs):
        # The real contract refuses a transmitter without a payee: the owner is every payee.
        transmitters = transmitters if transmitters is not None else self.transmitters
        receipt = self.set_payees(transmitters, [self.owner_address()] * len(transmitters))
        self.assertEqual(receipt["status"], "0x1", "setPayees failed")
        return super().set_config(signers=signers, transmitters=transmitters, **kwargs)

    def test_set_config_checks(self):
        # Payees first, so that each check below is reached (the real contract checks a
        # transmitter's payee before whether the address is repeated).
        signer_0 = self.signers[0].public_key.to_checksum_address()
        self.set_payees(self.transmitters + [signer_0], [self.owner_address()] * 5)
        super().test_set_config_checks()

    def assert_observer_index_past_31_fails(self, report):
        rs, ss, raw_vs = sign_report(report, self.signers[: F + 1])
        with self.assertRaises(RpcError) as caught:
            self.h.call(self.address, transmit_data(report, rs, ss, raw_vs), self.transmitters[0])
        self.assertEqual(caught.exception.message, "invalid opcode")

    def test_set_config_needs_every_payee_and_set_payees_never_changes_one(self):
        signers = [k.public_key.to_checksum_address() for k in self.signers]
        owner = self.owner_address()
        data = call_data(
            "setConfig(address[],address[],uint8,uint64,bytes)",
            ["address[]", "address[]", "uint8", "uint64", "bytes"],
            [signers, self.transmitters, F, 1, b""],
        )
        self.assert_reverts("payee must be set", data, owner)
        self.assertEqual(self.set_payees(self.transmitters[:3], [owner] * 3)["status"], "0x1")
        self.assert_reverts("payee must be set", data, owner)
        self.assertEqual(self.set_payees(self.transmitters, [owner] * 4)["status"], "0x1")
        self.assertEqual(self.h.send(self.h.owner, self.address, data)["status"], "0x1")

        other = self.transmitters[3]
        set_other = call_data(
            "setPayees(address[],address[])",
            ["address[]", "address[]"],
            [[self.transmitters[0]], [other]],
        )
        self.assert_reverts("payee already set", set_other, owner)
        same = call_data(
            "setPayees(address[],address[])", ["address[]", "address[]"], [[other], [owner]]
        )
        self.h.call(self.address, same, owner)  # setting the same payee again is accepted
        self.assert_reverts("Only callable by owner", same, self.transmitters[0])
        # Only the payee may withdraw.
        withdraw = call_data("withdrawPayment(address)", ["address"], [self.transmitters[0]])
        self.assert_reverts("Only payee can withdraw", withdraw, self.transmitters[0])
        self.h.call(self.address, withdraw, owner)

    def test_transmitters_are_reimbursed_and_observers_paid_as_billed(self):
        self.set_config()
        report = make_report(self.digest(), 1, 1, [100, 200, 300], observers=[0, 1, 2])
        receipt = self.transmit(report, transmitter=0)
        self.assertEqual(receipt["status"], "0x1")

        def owed(transmitter):
            data = call_data("owedPayment(address)", ["address"], [transmitter])
            return decode(["uint256"], self.h.call(self.address, data))[0]

        per_observation = BILLING["linkGweiPerObservation"] * 10**9
        # Observers 1 and 2 observed once; oracle 3 did nothing.
        self.assertEqual(owed(self.transmitters[1]), per_observation)
        self.assertEqual(owed(self.transmitters[2]), per_observation)
        self.assertEqual(owed(self.transmitters[3]), 0)
        # The transmitter: its observation, the transmission reward and its gas at the implied
        # price (below the reasonable price it gets half the difference), in LINK.
        gas_price_gwei = int(receipt["effectiveGasPrice"], 16) // 10**9
        implied = gas_price_gwei
        if gas_price_gwei < BILLING["reasonableGasPrice"]:
            implied += (BILLING["reasonableGasPrice"] - gas_price_gwei) // 2
        implied = min(implied, BILLING["maximumGasPrice"])
        gas_used = int(receipt["gasUsed"], 16)
        gas_link = gas_used * implied * 10**9 * BILLING["microLinkPerEth"] // 10**6
        fixed = per_observation + BILLING["linkGweiPerTransmission"] * 10**9
        reimbursed = owed(self.transmitters[0]) - fixed
        # The contract estimates its gas (gasleft, 16 gas per calldata byte, a constant for its
        # own accounting): close to the receipt's, not equal.
        self.assertGreater(reimbursed, gas_link * 8 // 10, (reimbursed, gas_link))
        self.assertLess(reimbursed, gas_link * 12 // 10, (reimbursed, gas_link))

        def available():
            return decode(
                ["int256"], self.h.call(self.address, selector("linkAvailableForPayment()"))
            )[0]

        due = sum(owed(t) for t in self.transmitters)
        self.assertEqual(available(), LINK_FUNDING - due)

        # The payee (the owner) withdraws the transmitter's share.
        owner = self.owner_address()

        def link_balance(account):
            data = call_data("balanceOf(address)", ["address"], [account])
            return decode(["uint256"], self.h.call(self.link, data))[0]

        before = link_balance(owner)
        amount = owed(self.transmitters[0])
        withdraw = call_data("withdrawPayment(address)", ["address"], [self.transmitters[0]])
        receipt = self.h.send(self.h.owner, self.address, withdraw)
        self.assertEqual(receipt["status"], "0x1")
        self.assertEqual(link_balance(owner) - before, amount)
        self.assertEqual(owed(self.transmitters[0]), 0)
        self.assertEqual(link_balance(self.address), LINK_FUNDING - amount)
        paid = [
            log
            for log in receipt["logs"]
            if log["topics"][0] == "0x" + keccak(text="OraclePaid(address,address,uint256,address)").hex()
        ]
        self.assertEqual(len(paid), 1)
        self.assertEqual(decode(["uint256"], bytes.fromhex(paid[0]["data"][2:]))[0], amount)


def _abi_type(item):
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return item["type"]


if __name__ == "__main__":
    unittest.main(verbosity=2)
