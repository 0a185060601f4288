#!/usr/bin/env python3
"""A local EVM chain with a geth-like JSON-RPC, for the enclave's tests.

Why: the OCR1 oracles transmit reports to an `OffchainAggregator` on an EVM chain. The tests need
a real chain (real signatures, real nonces, real gas, real reverts) that starts in a second, runs
offline and can be steered: mining on demand, dropping pending transactions, funding accounts,
moving time. This is that chain: eth-tester's py-evm backend (a complete EVM, the Prague fork)
behind a JSON-RPC 2.0 server speaking the subset of the Ethereum API an oracle transmitter uses,
with geth's encodings and error messages, plus a few `dev_*` methods.

Transactions go through a mempool of our own (eth-tester has none): sending validates the way
geth's pool does and, with automine on (the default), mines a block at once; with automine off
they wait until `dev_mine`, and `dev_dropPending` forgets them, which is how a test simulates a
transaction that never lands.

Usage: devchain.py [--port 8545] [--chain-id 1337] [--accounts 10] [--exit-on-stdin-eof]
Prints one JSON line {"rpc", "chainId", "accounts": [{"address", "privateKey"}], "owner"} when
ready, then serves until SIGTERM/SIGINT.
"""

# Methods are named after the JSON-RPC methods they serve (eth_getLogs, dev_mine, ...).
# ruff: noqa: N802

import argparse
import inspect
import json
import signal
import sys
import threading
import time
import traceback
from http.server import ThreadingHTTPServer
from pathlib import Path

import rlp
from eth._utils.address import generate_contract_address
from eth.exceptions import HeaderNotFound, Revert
from eth.vm.spoof import SpoofTransaction
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_keys import keys
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils import ValidationError, keccak, to_checksum_address

import artifact

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from json_http import JsonHandler  # noqa: E402

GWEI = 10**9
ACCOUNT_BALANCE = 1_000_000 * 10**18
# The tip eth_maxPriorityFeePerGas suggests, and what eth_gasPrice adds to the base fee.
SUGGESTED_TIP = 1 * GWEI
MAX_LOG_BLOCK_RANGE = 10_000
# geth's txpool: a replacement must raise both the fee cap and the tip by 10%.
PRICE_BUMP_PERCENT = 10
SUPPORTED_TX_TYPES = (0, 1, 2)
# Gas limit of the owner's deployments: the upstream aggregator's creation takes about 5.3M.
DEPLOY_GAS = 10_000_000


class RpcError(Exception):
    """An error answered to the client as a JSON-RPC error object."""

    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class BlockNotFoundError(RpcError):
    """A block number past the head: eth_getBlockByNumber answers null, state reads an error."""


def invalid_params(message):
    return RpcError(-32602, f"invalid argument: {message}")


# ---------------------------------------------------------------------------------------------
# Encoding: JSON-RPC quantities and data are 0x-prefixed hex.


def hex_quantity(value):
    return hex(int(value))


def hex_data(value):
    return "0x" + bytes(value).hex()


def hex_hash(value):
    return "0x" + bytes(value).rjust(32, b"\0").hex()


def address_out(value):
    return to_checksum_address(bytes(value)) if value else None


def parse_quantity(value, what="quantity"):
    if isinstance(value, bool):
        raise invalid_params(f"{what}: expected a hex quantity")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value[:2] in ("0x", "0X") and len(value) > 2:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise invalid_params(f"{what}: expected a hex quantity, got {value!r}")


def parse_data(value, what="data"):
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        raise invalid_params(f"{what}: expected 0x-prefixed hex")
    text = value[2:]
    if len(text) % 2:
        raise invalid_params(f"{what}: odd number of hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise invalid_params(f"{what}: invalid hex") from None


def parse_address(value, what="address"):
    raw = parse_data(value, what)
    if len(raw) != 20:
        raise invalid_params(f"{what}: expected 20 bytes")
    return raw


def parse_hash(value, what="hash"):
    raw = parse_data(value, what)
    if len(raw) != 32:
        raise invalid_params(f"{what}: expected 32 bytes")
    return raw


def parse_int(value, what):
    """An integer given as a JSON number, a decimal string or a 0x hex string."""
    if isinstance(value, bool):
        raise invalid_params(f"{what}: expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        negative = text.startswith("-")
        digits = text[1:] if negative else text
        try:
            number = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits, 10)
        except ValueError:
            raise invalid_params(f"{what}: expected an integer, got {value!r}") from None
        return -number if negative else number
    raise invalid_params(f"{what}: expected an integer, got {value!r}")


def revert_reason(data):
    """geth's abi.UnpackRevert: the reason of Error(string), or a Panic(uint256) description."""
    if data[:4] == keccak(b"Error(string)")[:4]:
        try:
            return abi_decode(["string"], data[4:])[0]
        except Exception:  # noqa: BLE001 - malformed reason: no reason
            return None
    if data[:4] == keccak(b"Panic(uint256)")[:4]:
        try:
            return f"panic: {hex(abi_decode(['uint256'], data[4:])[0])}"
        except Exception:  # noqa: BLE001
            return None
    return None


def execution_error(error):
    """The JSON-RPC error geth answers when eth_call/eth_estimateGas execution fails."""
    if isinstance(error, Revert):
        data = bytes(error.args[0]) if error.args else b""
        reason = revert_reason(data)
        message = f"execution reverted: {reason}" if reason else "execution reverted"
        return RpcError(3, message, hex_data(data))
    name = type(error).__name__
    messages = {
        "OutOfGas": "out of gas",
        "InsufficientStack": "stack underflow",
        "FullStack": "stack limit reached",
        "InvalidJumpDestination": "invalid jump destination",
        "InvalidInstruction": "invalid opcode",
        "StackDepthLimit": "max call depth exceeded",
        "WriteProtection": "write protection",
        "ContractSizeLimitExceeded": "max code size exceeded",
    }
    return RpcError(-32000, messages.get(name, f"{name}: {error}"))


# ---------------------------------------------------------------------------------------------
# The chain.


class ChainIdBackend(PyEVMBackend):
    """PyEVMBackend whose chain reports our chain id.

    eth-tester's tester chain class hard-codes a chain id; py-evm reads it from the chain
    instance on every VM it builds (ChainContext → the CHAINID opcode), so setting it on the
    instance after genesis is enough. py-evm does not check a transaction's chain id against it:
    DevChain.send_raw_transaction does, as geth does.
    """

    def __init__(self, chain_id, genesis_state):
        self._chain_id = chain_id
        super().__init__(genesis_state=genesis_state)

    def reset_to_genesis(self, *args, **kwargs):
        super().reset_to_genesis(*args, **kwargs)
        self.chain.chain_id = self._chain_id


class PendingTx:
    """A transaction in the mempool, decoded once."""

    def __init__(self, raw, tx, sequence):
        self.raw = raw
        self.tx = tx
        self.sender = tx.sender
        self.nonce = tx.nonce
        self.hash = tx.hash
        self.sequence = sequence  # arrival order, to break ties

    @property
    def fee_cap(self):
        return self.tx.max_fee_per_gas

    @property
    def tip_cap(self):
        return self.tx.max_priority_fee_per_gas

    def effective_tip(self, base_fee):
        return min(self.tip_cap, self.fee_cap - base_fee)


def tx_type(tx):
    return getattr(tx, "type_id", None) or 0


def effective_gas_price(tx, base_fee):
    return min(tx.max_fee_per_gas, base_fee + tx.max_priority_fee_per_gas)


class DevChain:
    """The chain, its mempool and indexes; every public method runs under one lock."""

    def __init__(self, chain_id=1337, num_accounts=10):
        self.chain_id = chain_id
        # Keys 1..n+1 are eth-tester's well-known dev keys: the first is the owner that deploys
        # aggregators, the others are handed to the tests.
        self.keys = [keys.PrivateKey(i.to_bytes(32, "big")) for i in range(1, num_accounts + 2)]
        genesis_state = {
            key.public_key.to_canonical_address(): {
                "balance": ACCOUNT_BALANCE,
                "nonce": 0,
                "code": b"",
                "storage": {},
            }
            for key in self.keys
        }
        self.backend = ChainIdBackend(chain_id, genesis_state)
        self.tester = EthereumTester(backend=self.backend, auto_mine_transactions=False)
        self.lock = threading.RLock()
        self.automine = True
        self.time_offset = 0
        self.pool = {}  # (sender, nonce) -> PendingTx
        self.sequence = 0
        self.receipts = {}  # tx hash -> receipt dict
        self.transactions = {}  # tx hash -> transaction dict (mined)
        self.block_logs = {}  # block number -> [log dict]
        self.methods = {
            "eth_chainId": self.eth_chainId,
            "net_version": self.net_version,
            "eth_blockNumber": self.eth_blockNumber,
            "eth_getBalance": self.eth_getBalance,
            "eth_getTransactionCount": self.eth_getTransactionCount,
            "eth_gasPrice": self.eth_gasPrice,
            "eth_maxPriorityFeePerGas": self.eth_maxPriorityFeePerGas,
            "eth_feeHistory": self.eth_feeHistory,
            "eth_getBlockByNumber": self.eth_getBlockByNumber,
            "eth_estimateGas": self.eth_estimateGas,
            "eth_call": self.eth_call,
            "eth_sendRawTransaction": self.eth_sendRawTransaction,
            "eth_getTransactionReceipt": self.eth_getTransactionReceipt,
            "eth_getTransactionByHash": self.eth_getTransactionByHash,
            "eth_getLogs": self.eth_getLogs,
            "dev_setAutomine": self.dev_setAutomine,
            "dev_mine": self.dev_mine,
            "dev_dropPending": self.dev_dropPending,
            "dev_fund": self.dev_fund,
            "dev_deployAggregator": self.dev_deployAggregator,
            "dev_deployLinkToken": self.dev_deployLinkToken,
            "dev_deployUpstreamAggregator": self.dev_deployUpstreamAggregator,
            "dev_increaseTime": self.dev_increaseTime,
        }

    @property
    def chain(self):
        return self.backend.chain

    @property
    def owner(self):
        return self.keys[0]

    def ready_info(self):
        def account(key):
            return {
                "address": key.public_key.to_checksum_address(),
                "privateKey": key.to_hex(),
            }

        return {
            "chainId": self.chain_id,
            "accounts": [account(key) for key in self.keys[1:]],
            "owner": account(self.owner),
        }

    def handle(self, method, params):
        """Runs one JSON-RPC method; raises RpcError for anything the client should see."""
        function = self.methods.get(method)
        if function is None:
            raise RpcError(-32601, f"the method {method} does not exist/is not available")
        if params is None:
            params = []
        if not isinstance(params, list):
            raise invalid_params("params must be an array")
        try:
            inspect.signature(function).bind(*params)
        except TypeError as error:
            raise invalid_params(f"{method}: {error}") from None
        with self.lock:
            return function(*params)

    # --- blocks and state views ---------------------------------------------------------------

    def head(self):
        return self.chain.get_canonical_head()

    def header_by_number(self, number):
        try:
            return self.chain.get_canonical_block_header_by_number(number)
        except HeaderNotFound:
            return None

    def resolve_block(self, tag, what="block"):
        """A block tag, number or EIP-1898 object → (header, is_head).

        The head's state is read through the pending header's state root, which differs from
        the head only by dev_fund: that makes dev_fund visible at "latest" without mining.
        """
        if tag is None:
            tag = "latest"
        if isinstance(tag, dict):
            if "blockHash" in tag:
                block_hash = parse_hash(tag["blockHash"], "blockHash")
                try:
                    header = self.chain.get_block_header_by_hash(block_hash)
                except HeaderNotFound:
                    raise BlockNotFoundError(-32000, "header for hash not found") from None
                canonical = self.header_by_number(header.block_number)
                if canonical is None or canonical.hash != header.hash:
                    raise BlockNotFoundError(-32000, "hash is not currently canonical")
                return header, header.hash == self.head().hash
            if "blockNumber" in tag:
                tag = tag["blockNumber"]
            else:
                raise invalid_params(f"{what}: expected blockNumber or blockHash")
        head = self.head()
        if tag in ("latest", "pending", "safe", "finalized"):
            return head, True
        if tag == "earliest":
            return self.header_by_number(0), head.block_number == 0
        number = parse_quantity(tag, what)
        header = self.header_by_number(number)
        if header is None or number > head.block_number:
            raise BlockNotFoundError(-32000, "header not found")
        return header, number == head.block_number

    def state_at(self, tag):
        header, is_head = self.resolve_block(tag)
        if is_head:
            header = header.copy(state_root=self.chain.header.state_root)
        return self.chain.get_vm(header).state

    def next_base_fee(self):
        return self.chain.header.base_fee_per_gas

    def pending_nonce(self, sender):
        nonce = self.state_at("latest").get_nonce(sender)
        while (sender, nonce) in self.pool:
            nonce += 1
        return nonce

    # --- eth_* ------------------------------------------------------------------------------

    def eth_chainId(self):
        return hex_quantity(self.chain_id)

    def net_version(self):
        return str(self.chain_id)

    def eth_blockNumber(self):
        return hex_quantity(self.head().block_number)

    def eth_getBalance(self, address, block="latest"):
        return hex_quantity(self.state_at(block).get_balance(parse_address(address)))

    def eth_getTransactionCount(self, address, block="latest"):
        sender = parse_address(address)
        if block == "pending":
            return hex_quantity(self.pending_nonce(sender))
        return hex_quantity(self.state_at(block).get_nonce(sender))

    def eth_gasPrice(self):
        return hex_quantity(self.next_base_fee() + SUGGESTED_TIP)

    def eth_maxPriorityFeePerGas(self):
        return hex_quantity(SUGGESTED_TIP)

    def eth_feeHistory(self, block_count, newest="latest", percentiles=None):
        count = parse_int(block_count, "blockCount")
        if count < 1 or count > 1024:
            raise invalid_params("blockCount: must be between 1 and 1024")
        percentiles = percentiles or []
        if not isinstance(percentiles, list) or any(
            not isinstance(p, (int, float)) or p < 0 or p > 100 for p in percentiles
        ):
            raise invalid_params("rewardPercentiles: numbers between 0 and 100")
        if list(percentiles) != sorted(percentiles):
            raise invalid_params("rewardPercentiles: must be ascending")
        newest_header, _ = self.resolve_block(newest, "newestBlock")
        newest_number = newest_header.block_number
        oldest = max(0, newest_number - count + 1)
        base_fees, ratios, rewards = [], [], []
        for number in range(oldest, newest_number + 1):
            block = self.chain.get_canonical_block_by_number(number)
            header = block.header
            base_fees.append(hex_quantity(header.base_fee_per_gas))
            ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
            if percentiles:
                rewards.append([hex_quantity(t) for t in self._block_rewards(block, percentiles)])
        following = self.header_by_number(newest_number + 1)
        base_fees.append(
            hex_quantity(following.base_fee_per_gas if following else self.next_base_fee())
        )
        result = {
            "oldestBlock": hex_quantity(oldest),
            "baseFeePerGas": base_fees,
            "gasUsedRatio": ratios,
        }
        if percentiles:
            result["reward"] = rewards
        return result

    def _block_rewards(self, block, percentiles):
        """geth's per-block reward percentiles: tips weighted by the gas each tx used."""
        base_fee = block.header.base_fee_per_gas
        tips = []
        for tx in block.transactions:
            receipt = self.receipts.get(tx.hash)
            used = int(receipt["gasUsed"], 16) if receipt else tx.gas
            tips.append((effective_gas_price(tx, base_fee) - base_fee, used))
        if not tips:
            return [0 for _ in percentiles]
        tips.sort()
        total = sum(used for _, used in tips)
        out, index, cumulative = [], 0, tips[0][1]
        for p in percentiles:
            threshold = total * p / 100
            while cumulative < threshold and index < len(tips) - 1:
                index += 1
                cumulative += tips[index][1]
            out.append(tips[index][0])
        return out

    def eth_getBlockByNumber(self, tag, full=False):
        if tag == "pending":
            return self._pending_block()
        try:
            header, _ = self.resolve_block(tag)
        except BlockNotFoundError:
            return None
        block = self.chain.get_canonical_block_by_number(header.block_number)
        return self._format_block(block, bool(full))

    def _format_block(self, block, full):
        header = block.header
        if full:
            txs = [self.transactions[tx.hash] for tx in block.transactions]
        else:
            txs = [hex_hash(tx.hash) for tx in block.transactions]
        out = {
            "number": hex_quantity(header.block_number),
            "hash": hex_hash(header.hash),
            "parentHash": hex_hash(header.parent_hash),
            "nonce": hex_data(header.nonce),
            "mixHash": hex_hash(header.mix_hash),
            "sha3Uncles": hex_hash(header.uncles_hash),
            "logsBloom": hex_data(header.bloom.to_bytes(256, "big")),
            "transactionsRoot": hex_hash(header.transaction_root),
            "stateRoot": hex_hash(header.state_root),
            "receiptsRoot": hex_hash(header.receipt_root),
            "miner": address_out(header.coinbase) or "0x0000000000000000000000000000000000000000",
            "difficulty": hex_quantity(header.difficulty),
            "totalDifficulty": hex_quantity(header.difficulty),
            "extraData": hex_data(header.extra_data),
            "size": hex_quantity(len(rlp.encode(block))),
            "gasLimit": hex_quantity(header.gas_limit),
            "gasUsed": hex_quantity(header.gas_used),
            "timestamp": hex_quantity(header.timestamp),
            "baseFeePerGas": hex_quantity(header.base_fee_per_gas),
            "transactions": txs,
            "uncles": [],
            "withdrawals": [],
            "withdrawalsRoot": hex_hash(header.withdrawals_root),
        }
        for name, key in (
            ("blob_gas_used", "blobGasUsed"),
            ("excess_blob_gas", "excessBlobGas"),
        ):
            if hasattr(header, name):
                out[key] = hex_quantity(getattr(header, name))
        for name, key in (
            ("parent_beacon_block_root", "parentBeaconBlockRoot"),
            ("requests_hash", "requestsHash"),
        ):
            if getattr(header, name, None) is not None:
                out[key] = hex_hash(getattr(header, name))
        return out

    def _pending_block(self):
        """The block being built: number, parent, time and base fee of the next block."""
        header = self.chain.header
        head = self.head()
        return {
            "number": hex_quantity(header.block_number),
            "hash": None,
            "parentHash": hex_hash(head.hash),
            "nonce": None,
            "miner": None,
            "difficulty": "0x0",
            "extraData": "0x",
            "gasLimit": hex_quantity(header.gas_limit),
            "gasUsed": "0x0",
            "timestamp": hex_quantity(max(head.timestamp + 1, int(time.time()) + self.time_offset)),
            "baseFeePerGas": hex_quantity(header.base_fee_per_gas),
            "transactions": [],
            "uncles": [],
        }

    # --- calls --------------------------------------------------------------------------------

    def _call_transaction(self, call, state):
        """An unsigned legacy transaction for eth_call/eth_estimateGas, sent from `from`."""
        if not isinstance(call, dict):
            raise invalid_params("call object expected")
        sender = parse_address(call["from"], "from") if call.get("from") else b"\0" * 20
        to = parse_address(call["to"], "to") if call.get("to") else b""
        data_field = call.get("input", call.get("data"))
        data = parse_data(data_field, "input") if data_field is not None else b""
        value = parse_quantity(call["value"], "value") if call.get("value") else 0
        gas_cap = self.chain.header.gas_limit
        gas = parse_quantity(call["gas"], "gas") if call.get("gas") else gas_cap
        unsigned = self.chain.get_vm().create_unsigned_transaction(
            nonce=state.get_nonce(sender),
            gas_price=0,
            gas=min(gas, gas_cap),
            to=to,
            value=value,
            data=data,
        )
        return SpoofTransaction(unsigned, from_=sender)

    def _call_state(self, block, next_block=False):
        """State to execute calls on, with fees off (geth's eth_call skips them).

        eth_call runs in the block's own context (geth: block.number is the latest block's).
        With `next_block` (eth_estimateGas, and the "pending" tag) it runs as the next block
        would, like the transaction being estimated will: a storage write of block.number costs
        more when the value changes, and an estimate made in the latest block's context can be
        short by that.
        """
        if block == "pending":
            next_block = True
        header, is_head = self.resolve_block(block)
        if is_head and next_block:
            header = self.chain.header.copy(
                timestamp=max(header.timestamp + 1, int(time.time()) + self.time_offset)
            )
        elif is_head:
            header = header.copy(state_root=self.chain.header.state_root)
        header = header.copy(base_fee_per_gas=0)
        return self.chain.get_vm(header).state

    def _execute(self, state, tx):
        snapshot = state.snapshot()
        try:
            try:
                return state.apply_transaction(tx)
            except ValidationError as error:
                raise RpcError(-32000, validation_message(str(error))) from None
        finally:
            state.revert(snapshot)

    def eth_call(self, call, block="latest"):
        state = self._call_state(block)
        computation = self._execute(state, self._call_transaction(call, state))
        if computation.is_error:
            raise execution_error(computation.error)
        return hex_data(computation.output)

    def eth_estimateGas(self, call, block="latest"):
        """geth's estimator: binary search on the gas limit, stopping within 1.5%."""
        state = self._call_state(block, next_block=True)
        tx = self._call_transaction(call, state)
        computation = self._execute(state, tx)
        if computation.is_error:
            raise execution_error(computation.error)
        # Gas used (before refunds; py-evm counts it without the intrinsic gas) is a lower bound
        # of what it needs; the 63/64 rule for calls and the stipend can make the need larger,
        # which geth's first guess allows for.
        used = computation.get_gas_used() + tx.intrinsic_gas
        if not self._execute(state, SpoofTransaction(tx, gas=used)).is_error:
            return hex_quantity(used)  # a transfer: exactly 21000, as geth answers
        low, high = used, tx.gas
        guess = min(high, (used + 2300) * 64 // 63)
        if not self._execute(state, SpoofTransaction(tx, gas=guess)).is_error:
            high = guess
        while high - low > 1 and (high - low) / high >= 0.015:
            middle = (low + high) // 2
            if self._execute(state, SpoofTransaction(tx, gas=middle)).is_error:
                low = middle
            else:
                high = middle
        return hex_quantity(high)

    # --- transactions -------------------------------------------------------------------------

    def eth_sendRawTransaction(self, raw_hex):
        raw = parse_data(raw_hex, "raw transaction")
        pending = self._admit(raw)
        if self.automine:
            self._mine()
        return hex_hash(pending.hash)

    def _admit(self, raw):
        """geth's txpool validation, then into the pool (replacing a same-nonce tx if allowed)."""
        if not raw:
            raise RpcError(-32000, "typed transaction too short")
        if raw[0] < 0x7F and raw[0] not in SUPPORTED_TX_TYPES:
            raise RpcError(-32000, "transaction type not supported")
        try:
            tx = self.chain.get_vm().get_transaction_builder().decode(raw)
        except Exception as error:  # noqa: BLE001 - any decoding failure
            raise RpcError(-32000, f"rlp: {error}") from None
        if tx_type(tx) == 0 and tx.chain_id is None:
            raise RpcError(-32000, "only replay-protected (EIP-155) transactions allowed over RPC")
        if tx.chain_id != self.chain_id:
            raise RpcError(
                -32000,
                "invalid sender: invalid chain id for signer: "
                f"have {tx.chain_id} want {self.chain_id}",
            )
        try:
            tx.check_signature_validity()
            sender = tx.sender
        except Exception:  # noqa: BLE001 - any signature failure
            raise RpcError(-32000, "invalid sender") from None
        if tx.max_priority_fee_per_gas > tx.max_fee_per_gas:
            raise RpcError(
                -32000,
                "max priority fee per gas higher than max fee per gas: address "
                f"{to_checksum_address(sender)}, maxPriorityFeePerGas: "
                f"{tx.max_priority_fee_per_gas}, maxFeePerGas: {tx.max_fee_per_gas}",
            )
        if tx.gas > self.chain.header.gas_limit:
            raise RpcError(-32000, "exceeds block gas limit")
        if tx.gas < tx.intrinsic_gas:
            raise RpcError(
                -32000,
                f"intrinsic gas too low: gas {tx.gas}, minimum needed {tx.intrinsic_gas}",
            )
        state = self.state_at("latest")
        next_nonce = state.get_nonce(sender)
        if tx.nonce < next_nonce:
            raise RpcError(-32000, f"nonce too low: next nonce {next_nonce}, tx nonce {tx.nonce}")
        balance = state.get_balance(sender)
        cost = tx.gas * tx.max_fee_per_gas + tx.value
        if balance < cost:
            raise RpcError(
                -32000,
                "insufficient funds for gas * price + value: balance "
                f"{balance}, tx cost {cost}, overshot {cost - balance}",
            )
        if tx.hash in self.receipts or any(p.hash == tx.hash for p in self.pool.values()):
            raise RpcError(-32000, "already known")
        old = self.pool.get((sender, tx.nonce))
        if old is not None:
            bump = 100 + PRICE_BUMP_PERCENT
            if (
                tx.max_fee_per_gas * 100 < old.fee_cap * bump
                or tx.max_priority_fee_per_gas * 100 < old.tip_cap * bump
            ):
                raise RpcError(-32000, "replacement transaction underpriced")
        self.sequence += 1
        pending = PendingTx(raw, tx, self.sequence)
        self.pool[(sender, tx.nonce)] = pending
        return pending

    def eth_getTransactionReceipt(self, tx_hash):
        return self.receipts.get(parse_hash(tx_hash, "transaction hash"))

    def eth_getTransactionByHash(self, tx_hash):
        wanted = parse_hash(tx_hash, "transaction hash")
        if wanted in self.transactions:
            return self.transactions[wanted]
        for pending in self.pool.values():
            if pending.hash == wanted:
                return self._format_tx(pending.tx, None, None, None)
        return None

    def _format_tx(self, tx, header, index, base_fee):
        kind = tx_type(tx)
        out = {
            "blockHash": hex_hash(header.hash) if header else None,
            "blockNumber": hex_quantity(header.block_number) if header else None,
            "transactionIndex": hex_quantity(index) if header else None,
            "hash": hex_hash(tx.hash),
            "type": hex_quantity(kind),
            "from": address_out(tx.sender),
            "to": address_out(tx.to),
            "nonce": hex_quantity(tx.nonce),
            "gas": hex_quantity(tx.gas),
            "value": hex_quantity(tx.value),
            "input": hex_data(tx.data),
            "chainId": hex_quantity(tx.chain_id),
            "r": hex_quantity(tx.r),
            "s": hex_quantity(tx.s),
        }
        if kind == 0:
            out["gasPrice"] = hex_quantity(tx.gas_price)
            out["v"] = hex_quantity(tx.v)
        else:
            out["gasPrice"] = hex_quantity(
                effective_gas_price(tx, base_fee) if header else tx.max_fee_per_gas
            )
            out["v"] = hex_quantity(tx.y_parity)
            out["yParity"] = hex_quantity(tx.y_parity)
            out["accessList"] = [
                {
                    "address": address_out(address),
                    "storageKeys": [hex_hash(k.to_bytes(32, "big")) for k in slots],
                }
                for address, slots in tx.access_list
            ]
            if kind == 2:
                out["maxFeePerGas"] = hex_quantity(tx.max_fee_per_gas)
                out["maxPriorityFeePerGas"] = hex_quantity(tx.max_priority_fee_per_gas)
        return out

    # --- mining -------------------------------------------------------------------------------

    def _mine(self, only=None):
        """Mines blocks until no executable pool transaction is left (at least one block).

        With `only`, mines a single block holding just those signed transactions (pool left
        alone): dev_deployAggregator uses it.
        """
        while True:
            included = self._mine_one(only)
            if only is not None or not included or not self._has_executable():
                return
            # The block was full: go on with the rest.

    def _has_executable(self):
        base_fee = self.next_base_fee()
        state = self.chain.get_vm().state
        return any(
            p.nonce == state.get_nonce(p.sender) and p.fee_cap >= base_fee
            for p in self.pool.values()
        )

    def _mine_one(self, only=None):
        parent = self.head()
        self.chain.set_header_timestamp(
            max(parent.timestamp + 1, int(time.time()) + self.time_offset)
        )
        base_fee = self.chain.header.base_fee_per_gas
        included = []
        if only is not None:
            for tx in only:
                self.chain.apply_transaction(tx)
                included.append(tx)
        else:
            included = self._fill_block(base_fee)
        self.tester.mine_blocks(1)
        self._index_block(self.head().block_number)
        return included

    def _fill_block(self, base_fee):
        """Picks pool transactions like a miner: per sender in nonce order, best tip first."""
        state = self.chain.get_vm().state
        # Forget transactions made stale by a mined transaction with the same nonce.
        for key, pending in list(self.pool.items()):
            if pending.nonce < state.get_nonce(pending.sender):
                del self.pool[key]
        next_nonce = {}
        blocked = set()
        included = []
        while True:
            candidates = []
            for (sender, nonce), pending in self.pool.items():
                if sender in blocked:
                    continue
                if sender not in next_nonce:
                    next_nonce[sender] = self.chain.get_vm().state.get_nonce(sender)
                if nonce == next_nonce[sender] and pending.fee_cap >= base_fee:
                    candidates.append(pending)
            if not candidates:
                return included
            best = max(candidates, key=lambda p: (p.effective_tip(base_fee), -p.sequence))
            header = self.chain.header
            if header.gas_used + best.tx.gas > header.gas_limit:
                blocked.add(best.sender)
                continue
            try:
                self.chain.apply_transaction(best.tx)
            except ValidationError as error:
                # No longer payable (the balance moved since it was admitted): geth drops it.
                print(
                    f"devchain: dropping {hex_hash(best.hash)}: {error}",
                    file=sys.stderr,
                    flush=True,
                )
                del self.pool[(best.sender, best.nonce)]
                blocked.add(best.sender)
                continue
            del self.pool[(best.sender, best.nonce)]
            next_nonce[best.sender] += 1
            included.append(best.tx)

    def _index_block(self, number):
        """Receipts, transactions and logs of a new block, for O(1) lookups later."""
        block = self.chain.get_canonical_block_by_number(number)
        header = block.header
        receipts = block.get_receipts(self.chain.chaindb)
        logs_of_block = []
        previous_cumulative = 0
        for index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
            self.transactions[tx.hash] = self._format_tx(tx, header, index, header.base_fee_per_gas)
            logs = []
            for entry in receipt.logs:
                log = {
                    "address": address_out(entry.address),
                    "topics": [hex_hash(t.to_bytes(32, "big")) for t in entry.topics],
                    "data": hex_data(entry.data),
                    "blockNumber": hex_quantity(number),
                    "transactionHash": hex_hash(tx.hash),
                    "transactionIndex": hex_quantity(index),
                    "blockHash": hex_hash(header.hash),
                    "logIndex": hex_quantity(len(logs_of_block)),
                    "removed": False,
                }
                logs.append(log)
                logs_of_block.append(log)
            created = None
            if not tx.to:
                created = address_out(generate_contract_address(tx.sender, tx.nonce))
            self.receipts[tx.hash] = {
                "transactionHash": hex_hash(tx.hash),
                "transactionIndex": hex_quantity(index),
                "blockHash": hex_hash(header.hash),
                "blockNumber": hex_quantity(number),
                "from": address_out(tx.sender),
                "to": address_out(tx.to),
                "cumulativeGasUsed": hex_quantity(receipt.gas_used),
                "gasUsed": hex_quantity(receipt.gas_used - previous_cumulative),
                "effectiveGasPrice": hex_quantity(effective_gas_price(tx, header.base_fee_per_gas)),
                "contractAddress": created,
                "logs": logs,
                "logsBloom": hex_data(receipt.bloom.to_bytes(256, "big")),
                "type": hex_quantity(tx_type(tx)),
                "status": "0x1" if receipt.state_root == b"\x01" else "0x0",
            }
            previous_cumulative = receipt.gas_used
        self.block_logs[number] = logs_of_block

    # --- logs ---------------------------------------------------------------------------------

    def eth_getLogs(self, query):
        if not isinstance(query, dict):
            raise invalid_params("filter object expected")
        head = self.head().block_number
        if query.get("blockHash"):
            header, _ = self.resolve_block({"blockHash": query["blockHash"]})
            first = last = header.block_number
        else:
            first = self._log_bound(query.get("fromBlock"), head)
            last = self._log_bound(query.get("toBlock"), head)
            if first > last:
                raise RpcError(-32000, "invalid block range params")
            if last - first + 1 > MAX_LOG_BLOCK_RANGE:
                raise RpcError(-32000, f"exceed maximum block range: {MAX_LOG_BLOCK_RANGE}")
        addresses = query.get("address")
        if addresses is None:
            addresses = []
        elif isinstance(addresses, str):
            addresses = [addresses]
        wanted_addresses = {parse_address(a).hex() for a in addresses}
        topics = query.get("topics") or []
        if len(topics) > 4:
            raise RpcError(-32000, "exceed max topics")
        wanted_topics = []
        for position in topics:
            if position is None:
                wanted_topics.append(None)
            elif isinstance(position, str):
                wanted_topics.append({parse_hash(position, "topic").hex()})
            elif isinstance(position, list):
                choices = {parse_hash(t, "topic").hex() for t in position if t is not None}
                wanted_topics.append(None if None in position or not choices else choices)
            else:
                raise invalid_params("topics: expected null, a hash or a list of hashes")
        out = []
        for number in range(first, min(last, head) + 1):
            for log in self.block_logs.get(number, ()):
                if wanted_addresses and log["address"][2:].lower() not in wanted_addresses:
                    continue
                if len(wanted_topics) > len(log["topics"]):
                    continue
                if all(
                    choices is None or log["topics"][i][2:] in choices
                    for i, choices in enumerate(wanted_topics)
                ):
                    out.append(log)
        return out

    def _log_bound(self, tag, head):
        """A fromBlock/toBlock as a number; numbers past the head are kept, so the range limit
        applies to what the client asked for (logs are only ever read up to the head)."""
        if tag is None or tag in ("latest", "pending", "safe", "finalized"):
            return head
        if tag == "earliest":
            return 0
        return parse_quantity(tag, "block")

    # --- dev_* --------------------------------------------------------------------------------

    def dev_setAutomine(self, enabled):
        """Automine on: every accepted transaction is mined at once. Turning it on mines what
        is waiting."""
        if not isinstance(enabled, bool):
            raise invalid_params("expected true or false")
        self.automine = enabled
        if enabled and self._has_executable():
            self._mine()
        return True

    def dev_mine(self):
        """Mines the pool (at least one block, empty if nothing is executable)."""
        self._mine()
        return hex_quantity(self.head().block_number)

    def dev_dropPending(self):
        """Forgets every pending transaction, as if no node had ever seen them."""
        dropped = [hex_hash(p.hash) for p in self.pool.values()]
        self.pool.clear()
        return dropped

    def dev_fund(self, address, wei):
        """Sets the balance of `address` (like anvil_setBalance); visible at once."""
        target = parse_address(address)
        amount = parse_quantity(wei, "wei")
        state = self.chain.get_vm().state
        state.set_balance(target, amount)
        state.persist()
        self.chain.header = self.chain.header.copy(state_root=state.state_root)
        return True

    def dev_increaseTime(self, seconds):
        """Moves the clock of the following blocks forward; returns the total offset (s)."""
        amount = parse_int(seconds, "seconds")
        if amount < 0:
            raise invalid_params("seconds: must not be negative")
        self.time_offset += amount
        return self.time_offset

    def dev_deployAggregator(self, options=None):
        """Deploys OffchainAggregator.vy from the owner account in a block of its own."""
        options = self._options(options, "{decimals, description, minAnswer, maxAnswer}")
        decimals, description, min_answer, max_answer = self._feed_options(options)
        compiled = artifact.load_aggregator()
        code = bytes.fromhex(compiled["bytecode"][2:]) + abi_encode(
            ["int192", "int192", "uint8", "string"],
            [min_answer, max_answer, decimals, description],
        )
        return self._owner_deploy(code, "aggregator")

    def dev_deployLinkToken(self):
        """Deploys the upstream LinkToken (contracts/upstream) from the owner account, which
        then holds all 10^27 juels (1e9 LINK)."""
        compiled = artifact.load_upstream("LinkToken")
        return self._owner_deploy(bytes.fromhex(compiled["bytecode"][2:]), "LinkToken")

    def dev_deployUpstreamAggregator(self, options=None):
        """Deploys the upstream AccessControlledOffchainAggregator 4.0.0 (contracts/upstream)
        from the owner account, with a fresh SimpleWriteAccessController as its billing and
        requester access controller (as deployed feeds have one).

        Options: decimals, description, minAnswer, maxAnswer as dev_deployAggregator; `link`
        (the LINK token, default none), `billing` {maximumGasPrice, reasonableGasPrice,
        microLinkPerEth, linkGweiPerObservation, linkGweiPerTransmission} (constructor values,
        default 0) and `linkFunding` (juels the owner transfers to the new contract; needs
        `link`). Returns {"address", "accessController"}.
        """
        options = self._options(
            options,
            "{decimals, description, minAnswer, maxAnswer, link, billing, linkFunding}",
        )
        decimals, description, min_answer, max_answer = self._feed_options(options)
        zero = "0x" + "00" * 20
        link = parse_address(options.get("link") or zero, "link")
        billing = options.get("billing") or {}
        if not isinstance(billing, dict):
            raise invalid_params("billing: expected an object")
        names = (
            "maximumGasPrice",
            "reasonableGasPrice",
            "microLinkPerEth",
            "linkGweiPerObservation",
            "linkGweiPerTransmission",
        )
        unknown = set(billing) - set(names)
        if unknown:
            raise invalid_params(f"billing: unknown {sorted(unknown)}")
        values = [parse_int(billing.get(name, 0), f"billing.{name}") for name in names]
        if any(not 0 <= v < 2**32 for v in values):
            raise invalid_params("billing: each value is a uint32")
        funding = parse_int(options.get("linkFunding", 0), "linkFunding")
        if funding < 0 or (funding and link == bytes(20)):
            raise invalid_params("linkFunding: a non-negative amount, and needs link")
        controller_code = artifact.load_upstream("SimpleWriteAccessController")["bytecode"]
        controller = self._owner_deploy(bytes.fromhex(controller_code[2:]), "access controller")
        controller_raw = parse_address(controller)
        compiled = artifact.load_upstream("AccessControlledOffchainAggregator")
        code = bytes.fromhex(compiled["bytecode"][2:]) + abi_encode(
            [
                "uint32",
                "uint32",
                "uint32",
                "uint32",
                "uint32",
                "address",
                "int192",
                "int192",
                "address",
                "address",
                "uint8",
                "string",
            ],
            [
                *values,
                link,
                min_answer,
                max_answer,
                controller_raw,
                controller_raw,
                decimals,
                description,
            ],
        )
        address = self._owner_deploy(code, "upstream aggregator")
        if funding:
            data = keccak(b"transfer(address,uint256)")[:4] + abi_encode(
                ["address", "uint256"], [parse_address(address), funding]
            )
            self._owner_send(link, data, "LINK transfer to the aggregator")
        return {"address": address, "accessController": controller}

    # --- owner transactions (deployments) -------------------------------------------------

    @staticmethod
    def _options(options, expected):
        options = options or {}
        if not isinstance(options, dict):
            raise invalid_params(f"expected {expected}")
        return options

    @staticmethod
    def _feed_options(options):
        decimals = parse_int(options.get("decimals", 8), "decimals")
        description = options.get("description", "")
        if not isinstance(description, str):
            raise invalid_params("description: expected a string")
        int192_max = 2**191 - 1
        min_answer = parse_int(options.get("minAnswer", 1), "minAnswer")
        max_answer = parse_int(options.get("maxAnswer", int192_max), "maxAnswer")
        if not -(2**191) <= min_answer <= max_answer <= int192_max:
            raise invalid_params("need int192 minAnswer <= maxAnswer")
        if not 0 <= decimals <= 255:
            raise invalid_params("decimals: 0..255")
        return decimals, description, min_answer, max_answer

    def _owner_deploy(self, code, what):
        receipt = self._owner_send(b"", code, f"{what} deployment")
        return receipt["contractAddress"]

    def _owner_send(self, to, data, what):
        """A transaction from the owner account, mined at once in a block of its own."""
        owner = self.owner.public_key.to_canonical_address()
        if any(sender == owner for sender, _ in self.pool):
            raise RpcError(-32000, "the owner has pending transactions: mine or drop them first")
        state = self.chain.get_vm().state
        nonce = state.get_nonce(owner)
        fee_cap = 2 * self.next_base_fee() + SUGGESTED_TIP
        builder = self.chain.get_vm().get_transaction_builder()
        unsigned = builder.new_unsigned_dynamic_fee_transaction(
            chain_id=self.chain_id,
            nonce=nonce,
            max_priority_fee_per_gas=SUGGESTED_TIP,
            max_fee_per_gas=fee_cap,
            gas=DEPLOY_GAS,
            to=to,
            value=0,
            data=data,
            access_list=(),
        )
        tx = unsigned.as_signed_transaction(self.owner)
        self._mine(only=[tx])
        receipt = self.receipts[tx.hash]
        if receipt["status"] != "0x1":
            raise RpcError(-32000, f"{what} reverted")
        return receipt


def validation_message(text):
    """py-evm's validation wording → geth's, for the cases a call can hit."""
    if "cannot afford" in text or "enough balance" in text:
        return "insufficient funds for gas * price + value"
    if "nonce" in text.lower():
        return "nonce too high"
    if "intrinsic" in text.lower():
        return "intrinsic gas too low"
    return text


# ---------------------------------------------------------------------------------------------
# HTTP.


def rpc_response(chain, request):
    """One JSON-RPC request object → its response object (never raises)."""
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return {
            "jsonrpc": "2.0",
            "id": request.get("id") if isinstance(request, dict) else None,
            "error": {"code": -32600, "message": "invalid request"},
        }
    response = {"jsonrpc": "2.0", "id": request.get("id")}
    try:
        response["result"] = chain.handle(request["method"], request.get("params"))
    except RpcError as error:
        response["error"] = {"code": error.code, "message": error.message}
        if error.data is not None:
            response["error"]["data"] = error.data
    except Exception as error:  # noqa: BLE001 - one bad request never kills the server
        traceback.print_exc(file=sys.stderr)
        response["error"] = {"code": -32603, "message": f"internal error: {error}"}
    return response


def make_handler(chain):
    class Handler(JsonHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            body = self.rfile.read(length) if length > 0 else b""
            try:
                request = json.loads(body)
            except ValueError:
                self._json(
                    200,
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32700, "message": "parse error"},
                    },
                )
                return
            if isinstance(request, list):
                if not request:
                    response = {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32600, "message": "empty batch"},
                    }
                else:
                    response = [rpc_response(chain, r) for r in request]
            else:
                response = rpc_response(chain, request)
            self._json(200, response)

        def do_GET(self):  # noqa: N802
            self._json(
                405,
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "JSON-RPC over POST only"},
                },
            )

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8545, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--chain-id", type=int, default=1337)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin closes (the parent died), so no chain outlives its test",
    )
    args = parser.parse_args()

    chain = DevChain(chain_id=args.chain_id, num_accounts=args.accounts)
    artifact.load_aggregator()  # compile now rather than inside the first deploy
    server = ThreadingHTTPServer((args.host, args.port), make_handler(chain))
    server.daemon_threads = True

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.exit_on_stdin_eof:

        def watch_stdin():
            sys.stdin.buffer.read()
            signal.raise_signal(signal.SIGTERM)

        threading.Thread(target=watch_stdin, daemon=True).start()

    host, port = server.server_address[:2]
    ready = {"rpc": f"http://{host}:{port}"}
    ready.update(chain.ready_info())
    print(json.dumps(ready), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
