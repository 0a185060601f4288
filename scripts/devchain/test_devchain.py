#!/usr/bin/env python3
"""Tests of the dev chain's JSON-RPC semantics (devchain.py), in-process.

Why: an oracle's transmitter is written against geth's behaviour: hex quantities, receipts that
are null while pending, pending nonces, the txpool's error messages, eth_getLogs range limits.
If the dev chain answered differently, the enclave's tests would pass against a chain that no
real node resembles. Each test here pins one such behaviour.

    .local/devchain-venv/bin/python scripts/devchain/test_devchain.py
"""

import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eth_account import Account  # noqa: E402

import devchain  # noqa: E402
from devchain import DevChain, RpcError  # noqa: E402

GWEI = 10**9
SINK = "0x000000000000000000000000000000000000dEaD"


def deployer(runtime_hex):
    """Init code that returns `runtime_hex` as the contract's code (CODECOPY + RETURN)."""
    size = len(runtime_hex) // 2
    # PUSH1 size, PUSH1 10 (this prefix's length), PUSH0, CODECOPY, PUSH1 size, PUSH0, RETURN
    return "0x" + f"60{size:02x}" "600a" "5f" "39" f"60{size:02x}" "5f" "f3" + runtime_hex


class ChainTest(unittest.TestCase):
    def setUp(self):
        self.chain = DevChain(chain_id=1337, num_accounts=4)
        info = self.chain.ready_info()
        self.keys = [a["privateKey"] for a in info["accounts"]]
        self.addresses = [a["address"] for a in info["accounts"]]

    def rpc(self, method, *params):
        return self.chain.handle(method, list(params))

    def number(self, method, *params):
        return int(self.rpc(method, *params), 16)

    def sign(self, key, **fields):
        tx = {"chainId": 1337, "to": SINK, "value": 1, "gas": 21000}
        tx.update(fields)
        if tx["to"] is None:
            del tx["to"]  # contract creation
        if "gasPrice" not in tx and "maxFeePerGas" not in tx:
            tx.update(type=2, maxFeePerGas=10 * GWEI, maxPriorityFeePerGas=GWEI)
        if "nonce" not in tx:
            tx["nonce"] = self.number(
                "eth_getTransactionCount", Account.from_key(key).address, "pending"
            )
        return "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex()

    def assert_error(self, message_start, method, *params, code=-32000):
        with self.assertRaises(RpcError) as caught:
            self.rpc(method, *params)
        self.assertEqual(caught.exception.code, code, caught.exception.message)
        self.assertTrue(
            caught.exception.message.startswith(message_start), caught.exception.message
        )

    # --- identity and reads -----------------------------------------------------------------

    def test_chain_id_everywhere(self):
        self.assertEqual(self.rpc("eth_chainId"), "0x539")
        self.assertEqual(self.rpc("net_version"), "1337")
        # The CHAINID opcode agrees: a contract whose code returns chain.id.
        runtime = "46" "5f" "52" "6020" "5f" "f3"  # CHAINID PUSH0 MSTORE PUSH1 32 PUSH0 RETURN
        init = deployer(runtime)
        receipt = self.rpc(
            "eth_getTransactionReceipt",
            self.rpc(
                "eth_sendRawTransaction",
                self.sign(self.keys[0], to=None, value=0, data=init, gas=100000),
            ),
        )
        output = self.rpc("eth_call", {"to": receipt["contractAddress"]})
        self.assertEqual(int(output, 16), 1337)

    def test_other_chain_id(self):
        other = DevChain(chain_id=5611, num_accounts=1)
        key = other.ready_info()["accounts"][0]["privateKey"]
        self.assertEqual(other.handle("eth_chainId", []), "0x15eb")
        good = self.sign(key, chainId=5611, nonce=0, gasPrice=2 * GWEI)
        wrong = self.sign(key, chainId=1337, nonce=0, gasPrice=2 * GWEI)
        with self.assertRaises(RpcError) as caught:
            other.handle("eth_sendRawTransaction", [wrong])
        self.assertEqual(
            caught.exception.message,
            "invalid sender: invalid chain id for signer: have 1337 want 5611",
        )
        tx_hash = other.handle("eth_sendRawTransaction", [good])
        self.assertEqual(other.handle("eth_getTransactionReceipt", [tx_hash])["status"], "0x1")

    def test_blocks_and_fees(self):
        block = self.rpc("eth_getBlockByNumber", "latest", False)
        self.assertEqual(block["number"], "0x0")
        for field in ("hash", "parentHash", "timestamp", "gasLimit", "baseFeePerGas", "stateRoot"):
            self.assertTrue(block[field].startswith("0x"), field)
        self.assertIsNone(self.rpc("eth_getBlockByNumber", "0x5", False))
        self.assertEqual(self.rpc("eth_getBlockByNumber", "pending", False)["number"], "0x1")
        self.assertEqual(self.number("eth_maxPriorityFeePerGas"), GWEI)
        next_base_fee = int(self.rpc("eth_getBlockByNumber", "pending", False)["baseFeePerGas"], 16)
        self.assertEqual(self.number("eth_gasPrice"), next_base_fee + GWEI)
        for _ in range(3):
            self.rpc("eth_sendRawTransaction", self.sign(self.keys[0]))
        history = self.rpc("eth_feeHistory", "0x3", "latest", [25, 75])
        self.assertEqual(history["oldestBlock"], "0x1")
        self.assertEqual(len(history["baseFeePerGas"]), 4)  # 3 blocks and the next one
        self.assertEqual(len(history["gasUsedRatio"]), 3)
        self.assertEqual(history["reward"], [[hex(GWEI), hex(GWEI)]] * 3)
        self.assertEqual(self.rpc("eth_feeHistory", 10, "latest")["oldestBlock"], "0x0")
        full = self.rpc("eth_getBlockByNumber", "0x1", True)
        self.assertEqual(full["transactions"][0]["blockNumber"], "0x1")
        self.assertEqual(full["transactions"][0]["type"], "0x2")

    # --- transactions -----------------------------------------------------------------------

    def test_legacy_and_dynamic_fee_transfers(self):
        before = self.number("eth_getBalance", SINK, "latest")
        legacy = self.rpc(
            "eth_sendRawTransaction", self.sign(self.keys[0], gasPrice=3 * GWEI, value=5)
        )
        receipt = self.rpc("eth_getTransactionReceipt", legacy)
        self.assertEqual(receipt["status"], "0x1")
        self.assertEqual(receipt["gasUsed"], hex(21000))
        self.assertEqual(receipt["effectiveGasPrice"], hex(3 * GWEI))
        self.assertEqual(receipt["type"], "0x0")
        tx = self.rpc("eth_getTransactionByHash", legacy)
        self.assertIn(int(tx["v"], 16), (1337 * 2 + 35, 1337 * 2 + 36))
        dynamic = self.rpc("eth_sendRawTransaction", self.sign(self.keys[0], value=7))
        receipt = self.rpc("eth_getTransactionReceipt", dynamic)
        block = self.rpc("eth_getBlockByNumber", receipt["blockNumber"], False)
        self.assertEqual(
            int(receipt["effectiveGasPrice"], 16), int(block["baseFeePerGas"], 16) + GWEI
        )
        self.assertEqual(self.number("eth_getBalance", SINK, "latest"), before + 12)
        self.assertEqual(self.number("eth_getTransactionCount", self.addresses[0], "latest"), 2)
        self.assertEqual(self.number("eth_blockNumber"), 2)

    def test_txpool_errors_worded_as_geth(self):
        self.rpc("eth_sendRawTransaction", self.sign(self.keys[0]))
        self.assert_error(
            "nonce too low: next nonce 1, tx nonce 0",
            "eth_sendRawTransaction",
            self.sign(self.keys[0], nonce=0),
        )
        poor = Account.create().key.hex()
        self.rpc("dev_fund", Account.from_key(poor).address, hex(21000 * GWEI))
        self.assert_error(
            "insufficient funds for gas * price + value: balance 21000000000000, tx cost",
            "eth_sendRawTransaction",
            self.sign(poor, gasPrice=GWEI, value=1),
        )
        self.assert_error(
            "intrinsic gas too low", "eth_sendRawTransaction", self.sign(self.keys[0], gas=20000)
        )
        self.assert_error(
            "exceeds block gas limit",
            "eth_sendRawTransaction",
            self.sign(self.keys[0], gas=40_000_000),
        )
        self.assert_error(
            "max priority fee per gas higher than max fee per gas",
            "eth_sendRawTransaction",
            self.sign(self.keys[0], type=2, maxFeePerGas=GWEI, maxPriorityFeePerGas=2 * GWEI),
        )
        unprotected = Account.sign_transaction(
            {"nonce": 1, "to": SINK, "value": 1, "gas": 21000, "gasPrice": 2 * GWEI}, self.keys[0]
        ).raw_transaction
        self.assert_error(
            "only replay-protected (EIP-155) transactions allowed over RPC",
            "eth_sendRawTransaction",
            "0x" + bytes(unprotected).hex(),
        )
        self.assert_error("rlp:", "eth_sendRawTransaction", "0xc0ffee")
        self.assert_error("invalid argument", "eth_sendRawTransaction", "nothex", code=-32602)

    def test_pending_replacement_mining_and_dropping(self):
        sender = self.addresses[1]
        self.assertIs(self.rpc("dev_setAutomine", False), True)
        first = self.rpc(
            "eth_sendRawTransaction",
            self.sign(self.keys[1], maxFeePerGas=10 * GWEI, maxPriorityFeePerGas=GWEI, type=2),
        )
        self.assertIsNone(self.rpc("eth_getTransactionReceipt", first))
        self.assertIsNone(self.rpc("eth_getTransactionByHash", first)["blockNumber"])
        self.assertEqual(self.number("eth_getTransactionCount", sender, "pending"), 1)
        self.assertEqual(self.number("eth_getTransactionCount", sender, "latest"), 0)
        self.assert_error(
            "already known",
            "eth_sendRawTransaction",
            self.sign(
                self.keys[1], nonce=0, maxFeePerGas=10 * GWEI, maxPriorityFeePerGas=GWEI, type=2
            ),
        )

        def replacing(tip):
            """Nonce 0 again with a fee cap of 11 gwei and `tip`."""
            return self.sign(
                self.keys[1], nonce=0, type=2, maxFeePerGas=11 * GWEI, maxPriorityFeePerGas=tip, value=2
            )

        # Same nonce: a replacement must raise fee cap and tip by 10%.
        self.assert_error(
            "replacement transaction underpriced", "eth_sendRawTransaction", replacing(GWEI + 1)
        )
        replacement = self.rpc("eth_sendRawTransaction", replacing(11 * GWEI // 10))
        self.assertIsNone(self.rpc("eth_getTransactionByHash", first))
        # A nonce gap waits for the missing one.
        later = self.rpc("eth_sendRawTransaction", self.sign(self.keys[1], nonce=2))
        self.assertEqual(self.number("eth_blockNumber"), 0)
        self.assertEqual(self.rpc("dev_mine"), "0x1")
        self.assertEqual(self.rpc("eth_getTransactionReceipt", replacement)["blockNumber"], "0x1")
        self.assertIsNone(self.rpc("eth_getTransactionReceipt", later))
        # A dropped transaction never lands; its nonce is free again.
        gap = self.rpc("eth_sendRawTransaction", self.sign(self.keys[1], nonce=1, value=3))
        dropped = self.rpc("dev_dropPending")
        self.assertEqual(sorted(dropped), sorted([gap, later]))
        self.rpc("dev_mine")
        self.assertIsNone(self.rpc("eth_getTransactionReceipt", gap))
        self.assertIsNone(self.rpc("eth_getTransactionByHash", gap))
        self.assertEqual(self.number("eth_getTransactionCount", sender, "pending"), 1)
        # Automine back on mines what waits.
        waiting = self.rpc("eth_sendRawTransaction", self.sign(self.keys[1], nonce=1, value=4))
        self.rpc("dev_setAutomine", True)
        self.assertEqual(self.rpc("eth_getTransactionReceipt", waiting)["status"], "0x1")

    def test_fee_cap_below_base_fee_waits(self):
        self.rpc("dev_setAutomine", False)
        low = self.rpc("eth_sendRawTransaction", self.sign(self.keys[0], gasPrice=1))  # 1 wei
        self.rpc("dev_mine")
        self.assertIsNone(self.rpc("eth_getTransactionReceipt", low))
        self.assertIsNotNone(self.rpc("eth_getTransactionByHash", low))

    # --- state, time, logs ------------------------------------------------------------------

    def test_fund_and_time(self):
        fresh = Account.create().address
        self.assertIs(self.rpc("dev_fund", fresh, hex(10**18)), True)
        self.assertEqual(self.number("eth_getBalance", fresh, "latest"), 10**18)
        self.assertEqual(self.number("eth_getBalance", fresh, "pending"), 10**18)
        self.rpc("dev_mine")
        self.assertEqual(self.number("eth_getBalance", fresh, "latest"), 10**18)
        self.assertEqual(self.rpc("dev_increaseTime", 3600), 3600)
        self.rpc("dev_mine")
        timestamp = int(self.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
        self.assertGreaterEqual(timestamp, int(time.time()) + 3600 - 5)

    def test_get_logs_paging(self):
        # A contract that logs LOG1(topic = CALLVALUE) with empty data: 3 calls, 3 logs.
        init = deployer("34" "5f" "5f" "a1" "00")  # CALLVALUE PUSH0 PUSH0 LOG1 STOP
        receipt = self.rpc(
            "eth_getTransactionReceipt",
            self.rpc(
                "eth_sendRawTransaction",
                self.sign(self.keys[0], to=None, value=0, data=init, gas=100000),
            ),
        )
        emitter = receipt["contractAddress"]
        for value in (1, 2, 3):
            self.rpc(
                "eth_sendRawTransaction",
                self.sign(self.keys[0], to=emitter, value=value, gas=50000),
            )
        logs = self.rpc(
            "eth_getLogs", {"address": emitter, "fromBlock": "0x0", "toBlock": "latest"}
        )
        self.assertEqual([int(log["topics"][0], 16) for log in logs], [1, 2, 3])
        self.assertEqual(logs[0]["blockNumber"], "0x2")
        self.assertEqual(logs[0]["logIndex"], "0x0")
        self.assertFalse(logs[0]["removed"])
        only_two = self.rpc(
            "eth_getLogs",
            {"address": [emitter], "topics": [[logs[1]["topics"][0]]], "fromBlock": "0x0"},
        )
        self.assertEqual(only_two, [logs[1]])
        self.assertEqual(self.rpc("eth_getLogs", {"fromBlock": "0x3", "toBlock": "0x3"}), [logs[1]])
        self.assertEqual(self.rpc("eth_getLogs", {"address": SINK, "fromBlock": "0x0"}), [])
        # Ranges over 10,000 blocks are refused: clients must page.
        self.assert_error(
            "exceed maximum block range: 10000",
            "eth_getLogs",
            {"fromBlock": "0x0", "toBlock": hex(10_000)},
        )
        self.assertEqual(
            len(self.rpc("eth_getLogs", {"fromBlock": "0x0", "toBlock": hex(9_999)})), 3
        )
        self.assert_error(
            "invalid block range params", "eth_getLogs", {"fromBlock": "0x3", "toBlock": "0x2"}
        )

    def test_call_and_estimate(self):
        self.assertEqual(
            self.number("eth_estimateGas", {"from": self.addresses[0], "to": SINK, "value": "0x1"}),
            21000,
        )
        # Reverting code: PUSH0 PUSH0 REVERT → code 3, empty data.
        init = deployer("5f" "5f" "fd")
        receipt = self.rpc(
            "eth_getTransactionReceipt",
            self.rpc(
                "eth_sendRawTransaction",
                self.sign(self.keys[0], to=None, value=0, data=init, gas=100000),
            ),
        )
        with self.assertRaises(RpcError) as caught:
            self.rpc("eth_estimateGas", {"to": receipt["contractAddress"]})
        self.assertEqual(
            (caught.exception.code, caught.exception.message, caught.exception.data),
            (3, "execution reverted", "0x"),
        )
        # A call from an empty account with value it does not have.
        self.assert_error(
            "insufficient funds",
            "eth_call",
            {"from": Account.create().address, "to": SINK, "value": "0x1"},
        )

    # --- upstream contracts -----------------------------------------------------------------

    def test_upstream_link_token_and_aggregator_are_deployed_funded_and_checked(self):
        from eth_abi import decode, encode
        from eth_utils import keccak

        def call(to, signature, types=(), values=(), out=("uint256",)):
            data = keccak(text=signature)[:4] + encode(list(types), list(values))
            answer = self.rpc("eth_call", {"to": to, "data": "0x" + data.hex()}, "latest")
            return decode(list(out), bytes.fromhex(answer[2:]))

        link = self.rpc("dev_deployLinkToken")
        owner = self.chain.ready_info()["owner"]["address"]
        self.assertEqual(call(link, "balanceOf(address)", ["address"], [owner])[0], 10**27)
        deployed = self.rpc(
            "dev_deployUpstreamAggregator",
            {
                "decimals": 6,
                "description": "X / Y",
                "minAnswer": "-5",
                "maxAnswer": "500",
                "link": link,
                "billing": {"linkGweiPerObservation": 7},
                "linkFunding": "1000",
            },
        )
        aggregator = deployed["address"]
        self.assertEqual(
            call(aggregator, "typeAndVersion()", out=("string",))[0],
            "AccessControlledOffchainAggregator 4.0.0",
        )
        self.assertEqual(call(aggregator, "minAnswer()", out=("int192",))[0], -5)
        self.assertEqual(call(aggregator, "maxAnswer()", out=("int192",))[0], 500)
        self.assertEqual(call(aggregator, "getBilling()", out=("uint32",) * 5), (0, 0, 0, 7, 0))
        self.assertEqual(call(link, "balanceOf(address)", ["address"], [aggregator])[0], 1000)
        self.assertEqual(
            call(aggregator, "billingAccessController()", out=("address",))[0].lower(),
            deployed["accessController"].lower(),
        )
        for bad in (
            {"billing": {"nope": 1}},
            {"billing": {"microLinkPerEth": 2**32}},
            {"linkFunding": "5"},  # no LINK token to fund from
            {"minAnswer": "9", "maxAnswer": "1"},
        ):
            self.assert_error("invalid argument", "dev_deployUpstreamAggregator", bad, code=-32602)

    # --- protocol ---------------------------------------------------------------------------

    def test_bad_requests(self):
        self.assert_error(
            "the method eth_mining does not exist/is not available", "eth_mining", code=-32601
        )
        self.assert_error("invalid argument", "eth_getBalance", "0x1234", code=-32602)
        self.assert_error("invalid argument", "eth_getBalance", code=-32602)
        self.assert_error("invalid argument", "eth_getBlockByNumber", "0xzz", False, code=-32602)
        self.assert_error("invalid argument", "eth_chainId", "extra", code=-32602)
        self.assertIsNone(self.rpc("eth_getBlockByNumber", "0x99", False))
        self.assertEqual(devchain.rpc_response(self.chain, [])["error"]["code"], -32600)
        self.assertEqual(devchain.rpc_response(self.chain, {"id": 1})["error"]["code"], -32600)
        response = devchain.rpc_response(
            self.chain, {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId"}
        )
        self.assertEqual(response, {"jsonrpc": "2.0", "id": 7, "result": "0x539"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
