//! A real EVM chain for tests: `scripts/devchain/devchain.py` (py-evm behind a geth-like
//! JSON-RPC, see docs/development/devchain.md) on a free port, with the tests' own OCR1
//! `OffchainAggregator` deployable in one call.
//!
//! ```ignore
//! let chain = DevChain::start();
//! let feed = chain.deploy_aggregator(8, "BTC / USD", 1, 10i128.pow(20));
//! chain.set_automine(false);
//! ```
//!
//! The Python environment is made by `scripts/devchain/ensure.sh` (once per test process). The
//! chain process dies with its `DevChain`, and also when the test process dies without dropping
//! it: it exits when its stdin (held here) closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::repo;

/// How long one JSON-RPC request may take (a cold py-evm call can take a few seconds).
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the chain may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A JSON-RPC error answered by the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// Revert data (`0x…`) for `execution reverted` errors (code 3).
    pub data: Option<String>,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)?;
        if let Some(data) = &self.data {
            write!(f, " (data {data})")?;
        }
        Ok(())
    }
}

pub struct DevChain {
    /// `http://127.0.0.1:<port>`.
    pub rpc: String,
    pub chain_id: u64,
    /// Funded accounts, `(checksummed address, 0x private key)`; none is the owner.
    pub accounts: Vec<(String, String)>,
    /// The account that deploys aggregators and owns them (setConfig, requestNewRound).
    pub owner: (String, String),
    host_port: String,
    child: Child,
    /// Held open: the chain exits when it closes.
    _stdin: ChildStdin,
    log: tempfile::NamedTempFile,
}

/// The dev chain, started; `None`, after printing `SKIPPED <test>: <reason>`, where it cannot
/// run on this machine (the test then returns).
pub fn start_or_skip(test: &str) -> Option<DevChain> {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED {test}: {reason}");
        return None;
    }
    Some(DevChain::start())
}

/// Why the dev chain cannot run on this machine (no `python3`, or no `venv` module), if so.
/// Tests print `SKIPPED: <reason>` and return; any other failure is a test failure.
pub fn skip_reason() -> Option<String> {
    let python = std::env::var("DEVCHAIN_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python)
        .args(["-c", "import venv, ensurepip"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(_) => Some(format!("{python} not found")),
        Ok(status) if !status.success() => Some(format!(
            "{python} cannot create virtual environments (no venv/ensurepip module)"
        )),
        Ok(_) => None,
    }
}

/// The venv's Python, after `scripts/devchain/ensure.sh` ran (once per process).
pub fn python() -> PathBuf {
    static ENSURED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ENSURED
        .get_or_init(|| {
            let output = Command::new(repo().join("scripts/devchain/ensure.sh"))
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run scripts/devchain/ensure.sh: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "scripts/devchain/ensure.sh failed ({}):\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            let venv = std::env::var_os("DEVCHAIN_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo().join(".local/devchain-venv"));
            Ok(venv.join("bin/python"))
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

impl DevChain {
    /// A transaction from the chain's owner account (the contracts' owner and, in the node
    /// tests, the admin and every payee), through the enclave's own transaction sender; it must
    /// succeed.
    pub fn owner_send(&self, contract: &str, data: &[u8]) {
        use enclave::node::evm::{GasPolicy, RpcClient, TxSender, TxStatus};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let rpc = RpcClient::new(self.rpc.parse().expect("url"), Duration::from_secs(5))
                .expect("client");
            let key_hex = self.owner.1.trim_start_matches("0x");
            let key = k256::ecdsa::SigningKey::from_slice(&hex::decode(key_hex).expect("hex"))
                .expect("key");
            let sender = TxSender::new(
                std::sync::Arc::new(rpc),
                self.chain_id,
                key,
                GasPolicy::default(),
            )
            .expect("sender");
            let to: alloy_primitives::Address = contract.parse().expect("address");
            let data = alloy_primitives::Bytes::from(data.to_vec());
            let outcome = sender
                .send_and_wait(
                    to,
                    data,
                    alloy_primitives::U256::ZERO,
                    Duration::from_secs(20),
                    Duration::from_secs(5),
                )
                .await
                .expect("owner transaction mined");
            assert_eq!(outcome.status, TxStatus::Success);
        });
    }

    /// A fresh chain with chain id 1337.
    pub fn start() -> DevChain {
        Self::start_with_chain_id(1337)
    }

    pub fn start_with_chain_id(chain_id: u64) -> DevChain {
        Self::start_listening("127.0.0.1", chain_id)
    }

    /// On a free port of `host` (e.g. the Docker bridge's address, for containers).
    pub fn start_listening(host: &str, chain_id: u64) -> DevChain {
        let python = python();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut child = Command::new(python)
            .arg(repo().join("scripts/devchain/devchain.py"))
            .args(["--host", host, "--port", "0", "--exit-on-stdin-eof"])
            .args(["--chain-id", &chain_id.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("devchain.py starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) if !line.trim().is_empty() => line,
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "devchain.py did not get ready ({}):\n{}",
                    if outcome.is_err() {
                        "timed out"
                    } else {
                        "exited"
                    },
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                );
            }
        };
        let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
        let account = |v: &Value| {
            (
                v["address"].as_str().expect("address").to_owned(),
                v["privateKey"].as_str().expect("privateKey").to_owned(),
            )
        };
        let rpc = ready["rpc"].as_str().expect("rpc").to_owned();
        let chain = DevChain {
            host_port: rpc.trim_start_matches("http://").to_owned(),
            rpc,
            chain_id: ready["chainId"].as_u64().expect("chainId"),
            accounts: ready["accounts"]
                .as_array()
                .expect("accounts")
                .iter()
                .map(account)
                .collect(),
            owner: account(&ready["owner"]),
            child,
            _stdin: stdin,
            log,
        };
        assert_eq!(chain.chain_id, chain_id);
        chain
    }

    /// What the chain wrote to stderr so far (for failure messages).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// A JSON-RPC call; panics on an error answer (use [`try_rpc_call`] to inspect errors).
    pub fn rpc_call(&self, method: &str, params: Value) -> Value {
        self.try_rpc_call(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// A JSON-RPC call: the result, or the error object the chain answered.
    pub fn try_rpc_call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (status, body) = self
            .post(&request.to_string())
            .unwrap_or_else(|e| panic!("{method}: {e}\n{}", self.logs()));
        let response: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method}: HTTP {status}, not JSON ({e}): {body}"));
        match response.get("error") {
            Some(error) => Err(RpcError {
                code: error["code"].as_i64().unwrap_or_default(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
                data: error["data"].as_str().map(str::to_owned),
            }),
            None => Ok(response["result"].clone()),
        }
    }

    /// `POST /` with `body` → (HTTP status, response body). Plain HTTP/1.1 over std::net: the
    /// tests need no HTTP client of their own.
    pub fn post(&self, body: &str) -> Result<(u16, String), String> {
        let mut stream = std::net::TcpStream::connect(&self.host_port)
            .map_err(|e| format!("connect {}: {e}", self.rpc))?;
        stream.set_read_timeout(Some(RPC_TIMEOUT)).ok();
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.host_port,
            body.len()
        )
        .map_err(|e| format!("send: {e}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| format!("read: {e}"))?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no HTTP response: {response:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head:?}"))?;
        Ok((status, body.to_owned()))
    }

    /// Deploys `scripts/devchain/OffchainAggregator.vy` from the owner account, mined at once
    /// (whatever the automine setting; the owner must have no pending transaction).
    pub fn deploy_aggregator(
        &self,
        decimals: u8,
        description: &str,
        min: i128,
        max: i128,
    ) -> String {
        self.rpc_call(
            "dev_deployAggregator",
            json!([{"decimals": decimals, "description": description,
                    "minAnswer": min.to_string(), "maxAnswer": max.to_string()}]),
        )
        .as_str()
        .expect("address")
        .to_owned()
    }

    /// Deploys the upstream `LinkToken` (all 10^27 juels held by the owner).
    pub fn deploy_link_token(&self) -> String {
        self.rpc_call("dev_deployLinkToken", json!([]))
            .as_str()
            .expect("address")
            .to_owned()
    }

    /// Deploys the upstream `AccessControlledOffchainAggregator` 4.0.0 (libocr's bytecode) from
    /// the owner account, as [`Upstream`] says.
    pub fn deploy_upstream_aggregator(&self, options: &Upstream) -> String {
        let mut params = json!({"decimals": options.decimals, "description": options.description,
            "minAnswer": options.min.to_string(), "maxAnswer": options.max.to_string(),
            "linkFunding": options.link_funding.to_string()});
        if let Some(link) = &options.link {
            params["link"] = json!(link);
        }
        if let Some(b) = options.billing {
            params["billing"] = json!({"maximumGasPrice": b[0], "reasonableGasPrice": b[1],
                "microLinkPerEth": b[2], "linkGweiPerObservation": b[3],
                "linkGweiPerTransmission": b[4]});
        }
        self.rpc_call("dev_deployUpstreamAggregator", json!([params]))["address"]
            .as_str()
            .expect("address")
            .to_owned()
    }

    /// A feed contract of `kind`: the Vyper model, or the upstream contract with billing on
    /// ([`TEST_BILLING`]) and 1000 LINK of a fresh `LinkToken`.
    pub fn deploy_feed_contract(
        &self,
        kind: Contract,
        decimals: u8,
        description: &str,
        min: i128,
        max: i128,
    ) -> String {
        match kind {
            Contract::Model => self.deploy_aggregator(decimals, description, min, max),
            Contract::Upstream => {
                let link = self.deploy_link_token();
                self.deploy_upstream_aggregator(&Upstream {
                    decimals,
                    description: description.to_owned(),
                    min,
                    max,
                    link: Some(link),
                    billing: Some(TEST_BILLING),
                    link_funding: 1000 * 10u128.pow(18),
                })
            }
        }
    }

    /// `balanceOf(account)` of the ERC-20 `token`.
    pub fn token_balance(&self, token: &str, account: &str) -> u128 {
        self.call_of_address(token, "balanceOf(address)", account)
    }

    /// `owedPayment(transmitter)` of an upstream aggregator (juels).
    pub fn owed_payment(&self, contract: &str, transmitter: &str) -> u128 {
        self.call_of_address(contract, "owedPayment(address)", transmitter)
    }

    /// The uint answer of the view `signature` (one address argument) of `contract`.
    fn call_of_address(&self, contract: &str, signature: &str, address: &str) -> u128 {
        let data = [&selector(signature)[..], &address_word(address)[..]].concat();
        word_u128(
            &self
                .call(None, contract, &data)
                .unwrap_or_else(|e| panic!("{signature}: {e}")),
        )
    }

    /// `getLinkToken()` of an upstream aggregator.
    pub fn link_token_of(&self, contract: &str) -> String {
        let word = self
            .call(None, contract, &selector("getLinkToken()"))
            .expect("getLinkToken");
        format!("0x{}", hex::encode(&word[12..32]))
    }

    /// `getBilling()` of an upstream aggregator.
    pub fn billing_of(&self, contract: &str) -> [u32; 5] {
        let words = self
            .call(None, contract, &selector("getBilling()"))
            .expect("getBilling");
        std::array::from_fn(|i| word_u128(&words[32 * i..32 * (i + 1)]) as u32)
    }

    /// Receipts of every transaction to `to` mined from block `from` on, in order.
    pub fn receipts_to(&self, to: &str, from: u64) -> Vec<Value> {
        let head = self.block_number();
        let mut out = Vec::new();
        for number in from..=head {
            let block = self.rpc_call(
                "eth_getBlockByNumber",
                json!([format!("{number:#x}"), true]),
            );
            for tx in block["transactions"].as_array().into_iter().flatten() {
                if tx["to"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(to))
                {
                    out.push(self.rpc_call("eth_getTransactionReceipt", json!([tx["hash"]])));
                }
            }
        }
        out
    }

    /// Sets the balance of `address` to `wei` (visible at once at "latest").
    pub fn fund(&self, address: &str, wei: u128) {
        self.rpc_call("dev_fund", json!([address, format!("{wei:#x}")]));
    }

    /// Gives every oracle's transmitter in `keys` (`enclave keys show`) 1 ETH: more than all
    /// the transmissions of a test cost.
    pub fn fund_transmitters(&self, keys: &Value) {
        for transmitter in super::oracle_transmitters(keys) {
            self.fund(&transmitter, 10u128.pow(18));
        }
    }

    /// Points a DON's configuration at `contract` on this chain: its RPC URL and chain id, the
    /// `chain` section the tests share (the owner as the contracts' admin) with `settings`
    /// merged over it, and the first feed's contract address.
    pub fn configure_for(&self, contract: &str, settings: Value) -> impl FnOnce(&mut Value) {
        let rpc = self.rpc.clone();
        let chain_id = self.chain_id;
        let address = contract.to_lowercase();
        let mut chain = json!({"enabled": true, "contractPollIntervalMs": 1000,
            "receiptTimeoutMs": 30000, "rebroadcastAfterMs": 5000,
            "setConfigFunction": "standard", "adminPrivateKey": self.owner.1});
        if let (Some(chain), Some(settings)) = (chain.as_object_mut(), settings.as_object()) {
            chain.extend(settings.clone());
        }
        move |s: &mut Value| {
            s["chainlinkRpcHttpUrl"] = json!(rpc);
            s["chainlinkChainId"] = json!(chain_id);
            s["chain"] = chain;
            s["feeds"][0]["contractAddress"] = json!(address);
        }
    }

    /// On (the default): every accepted transaction is mined at once. Off: transactions wait
    /// for [`mine`]. Turning it on mines what waits.
    pub fn set_automine(&self, on: bool) {
        self.rpc_call("dev_setAutomine", json!([on]));
    }

    /// Mines the pending transactions (at least one block); returns the new head's number.
    pub fn mine(&self) -> u64 {
        quantity(&self.rpc_call("dev_mine", json!([])))
    }

    /// Forgets every pending transaction (a dropped transaction); returns their hashes.
    pub fn drop_pending(&self) -> Vec<String> {
        self.rpc_call("dev_dropPending", json!([]))
            .as_array()
            .expect("hashes")
            .iter()
            .map(|h| h.as_str().expect("hash").to_owned())
            .collect()
    }

    /// Moves the clock of the following blocks forward.
    pub fn increase_time(&self, seconds: u64) {
        self.rpc_call("dev_increaseTime", json!([seconds]));
    }

    pub fn block_number(&self) -> u64 {
        quantity(&self.rpc_call("eth_blockNumber", json!([])))
    }

    pub fn balance(&self, address: &str) -> u128 {
        quantity_u128(&self.rpc_call("eth_getBalance", json!([address, "latest"])))
    }

    /// `latestRoundData()` of an aggregator → (roundId, answer); (0, 0) before the first
    /// report or when the call fails.
    pub fn latest_round(&self, contract: &str) -> (u128, i128) {
        let data = self
            .call(None, contract, &[0xfe, 0xaf, 0x96, 0x8c])
            .unwrap_or_default();
        if data.len() < 64 {
            return (0, 0);
        }
        let round = u128::from_be_bytes(data[16..32].try_into().expect("16 bytes"));
        let answer = i128::from_be_bytes(data[48..64].try_into().expect("16 bytes"));
        (round, answer)
    }

    /// The answer of the latest round on chain (0 before the first report).
    pub fn latest_answer(&self, contract: &str) -> i128 {
        self.latest_round(contract).1
    }

    pub fn latest_round_id(&self, contract: &str) -> u128 {
        self.latest_round(contract).0
    }

    /// `eth_call` from `from` (None: the zero address) → the returned data as bytes.
    pub fn call(&self, from: Option<&str>, to: &str, data: &[u8]) -> Result<Vec<u8>, RpcError> {
        let mut request = json!({"to": to, "input": format!("0x{}", hex::encode(data))});
        if let Some(from) = from {
            request["from"] = json!(from);
        }
        self.try_rpc_call("eth_call", json!([request, "latest"]))
            .map(|v| hex::decode(v.as_str().expect("hex").trim_start_matches("0x")).expect("hex"))
    }

    /// The receipt of `tx_hash`, waiting up to `timeout` for it to be mined.
    pub fn wait_receipt(&self, tx_hash: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let receipt = self.rpc_call("eth_getTransactionReceipt", json!([tx_hash]));
            if !receipt.is_null() {
                return receipt;
            }
            assert!(
                Instant::now() < deadline,
                "{tx_hash} not mined within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Which OCR1 aggregator a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `scripts/devchain/OffchainAggregator.vy`: both setConfig forms, no payees or billing.
    Model,
    /// libocr's `AccessControlledOffchainAggregator` 4.0.0 (standard setConfig only).
    Upstream,
}

/// The upstream contract's constructor: bounds, LINK token and billing.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub decimals: u8,
    pub description: String,
    pub min: i128,
    pub max: i128,
    pub link: Option<String>,
    /// `[maximumGasPrice, reasonableGasPrice, microLinkPerEth, linkGweiPerObservation,
    /// linkGweiPerTransmission]`; `None`: all zero.
    pub billing: Option<[u32; 5]>,
    /// Juels the owner transfers to the contract (needs `link`).
    pub link_funding: u128,
}

/// Billing of the tests' upstream contracts: 1000 gwei max, 10 gwei reasonable, 200 LINK per
/// ETH of gas, 0.001 LINK per observation, 0.005 LINK per transmission.
pub const TEST_BILLING: [u32; 5] = [1000, 10, 200_000_000, 1_000_000, 5_000_000];

/// The 4-byte selector of a function signature.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = alloy_primitives::keccak256(signature.as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

fn address_word(address: &str) -> [u8; 32] {
    let mut word = [0u8; 32];
    let raw = hex::decode(address.trim_start_matches("0x")).expect("hex address");
    word[12..].copy_from_slice(&raw);
    word
}

fn word_u128(word: &[u8]) -> u128 {
    assert!(word.len() >= 32, "short answer: {word:?}");
    assert!(word[..16].iter().all(|b| *b == 0), "over u128: {word:?}");
    u128::from_be_bytes(word[16..32].try_into().expect("16 bytes"))
}

/// A JSON-RPC hex quantity (`"0x1a"`) as a number.
pub fn quantity(value: &Value) -> u64 {
    u64::try_from(quantity_u128(value)).unwrap_or_else(|_| panic!("over u64: {value}"))
}

/// A JSON-RPC hex quantity as a u128 (balances, wei amounts).
pub fn quantity_u128(value: &Value) -> u128 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a quantity: {value}"));
    u128::from_str_radix(text.trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("not a quantity: {text}: {e}"))
}

impl Drop for DevChain {
    fn drop(&mut self) {
        // SIGTERM first (it stops serving cleanly), SIGKILL if it lingers.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
