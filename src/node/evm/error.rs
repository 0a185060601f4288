//! Everything that can go wrong talking to an EVM node, sorted so callers can tell a request
//! worth retrying from a definite answer of the chain (a revert, a nonce already used, no funds)
//! and from a configuration mistake.
//!
//! Node error strings are matched case-insensitively against the texts geth
//! (`core/txpool/errors.go`, `core/error.go`, `internal/ethapi`), Erigon, Nethermind, Besu and
//! the big RPC providers use, because JSON-RPC error codes are not standardised: geth answers
//! almost everything with -32000.

use std::time::Duration;

use alloy_primitives::{Bytes, B256};
use alloy_sol_types::{Panic, Revert, SolError};

/// What a caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The node or the network hiccuped: the same request may succeed later.
    Transient,
    /// The chain gave a definite answer (a revert, a used nonce, not enough funds, a fee too
    /// low): repeating the same request unchanged gives the same answer.
    Outcome,
    /// Wrong settings or a node that cannot serve this client: needs the operator.
    Fatal,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ChainError {
    /// The HTTP request failed (connection refused, TLS, DNS, reset). `endpoint` is only
    /// `scheme://host:port`: RPC URLs often carry an API key in their path or query.
    #[error("{method}: cannot reach the RPC endpoint {endpoint}: {reason}")]
    Transport {
        method: &'static str,
        endpoint: String,
        reason: String,
    },
    #[error("{method}: no answer from {endpoint} within {after:?}")]
    Timeout {
        method: &'static str,
        endpoint: String,
        after: Duration,
    },
    /// A non-2xx HTTP status without a JSON-RPC error in the body.
    #[error("{method}: {endpoint} answered HTTP {status}")]
    Http {
        method: &'static str,
        endpoint: String,
        status: u16,
    },
    /// A JSON-RPC error none of the specific variants below covers.
    #[error("{method}: JSON-RPC error {code}: {message}")]
    Rpc {
        method: &'static str,
        code: i64,
        message: String,
    },
    /// The EVM reverted (eth_call, eth_estimateGas, or the replay of a mined transaction whose
    /// receipt has status 0). `reason` is the `Error(string)` text or the described
    /// `Panic(uint256)` code; `data` the raw revert data (custom errors stay undecoded there).
    #[error("execution reverted: {}", describe_revert(reason.as_deref(), data))]
    Reverted { reason: Option<String>, data: Bytes },
    #[error("the RPC endpoint serves chain {got}, but chain {expected} is configured")]
    WrongChain { expected: u64, got: u64 },
    /// The sending account cannot pay gas × price + value: it needs funding.
    #[error("insufficient funds: {message}")]
    InsufficientFunds { message: String },
    /// The nonce was already used by a mined transaction.
    #[error("nonce too low: {message}")]
    NonceTooLow { message: String },
    /// A transaction with this nonce is pending and the new one does not pay enough more
    /// (geth: +10 % on both fee cap and tip).
    #[error("replacement transaction underpriced: {message}")]
    ReplacementUnderpriced { message: String },
    /// The fee is below what the node accepts (pool minimum, or max fee below the base fee).
    #[error("transaction underpriced: {message}")]
    Underpriced { message: String },
    /// The node already has exactly this transaction: for a sender this is success.
    #[error("transaction already known to the node")]
    AlreadyKnown,
    /// eth_getLogs refused the block range or the result size: ask for fewer blocks.
    #[error("eth_getLogs range or result too large: {message}")]
    LogRangeTooLarge { message: String },
    /// The node answered something that is not what the method returns.
    #[error("{method}: malformed answer: {reason}")]
    Malformed {
        method: &'static str,
        reason: String,
    },
    /// No receipt arrived in time. The transaction may still be mined later.
    #[error("no receipt for transaction {tx_hash} (nonce {nonce}) within {after:?}")]
    ReceiptTimeout {
        tx_hash: B256,
        nonce: u64,
        after: Duration,
    },
    #[error("cannot sign the transaction: {0}")]
    Signing(String),
    #[error("invalid chain client setting: {0}")]
    Config(String),
}

impl ChainError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ChainError::Transport { .. }
            | ChainError::Timeout { .. }
            | ChainError::Malformed { .. }
            | ChainError::ReceiptTimeout { .. } => ErrorClass::Transient,
            ChainError::Http { status, .. } => {
                if *status == 408 || *status == 429 || *status >= 500 {
                    ErrorClass::Transient
                } else {
                    // 401/403/404: a wrong URL or API key; retrying will not fix it.
                    ErrorClass::Fatal
                }
            }
            ChainError::Rpc { code, message, .. } => rpc_error_class(*code, message),
            ChainError::Reverted { .. }
            | ChainError::InsufficientFunds { .. }
            | ChainError::NonceTooLow { .. }
            | ChainError::ReplacementUnderpriced { .. }
            | ChainError::Underpriced { .. }
            | ChainError::AlreadyKnown
            | ChainError::LogRangeTooLarge { .. } => ErrorClass::Outcome,
            ChainError::WrongChain { .. } | ChainError::Signing(_) | ChainError::Config(_) => {
                ErrorClass::Fatal
            }
        }
    }

    /// A revert without any data: what a contract answers to a function it does not have (a
    /// Solidity dispatcher's fallthrough, a Vyper `raise`), as opposed to a reason or a custom
    /// error.
    pub fn is_bare_revert(&self) -> bool {
        matches!(self, ChainError::Reverted { reason: None, data } if data.is_empty())
    }

    /// Whether the same request may succeed if simply repeated later.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// A short, fixed label for metrics (`outcome` of `enclave_chain_rpc_requests_total`).
    pub fn kind(&self) -> &'static str {
        match self {
            ChainError::Transport { .. } => "transport",
            ChainError::Timeout { .. } => "timeout",
            ChainError::Http { .. } => "http",
            ChainError::Rpc { .. } => "rpc_error",
            ChainError::Reverted { .. } => "reverted",
            ChainError::WrongChain { .. } => "wrong_chain",
            ChainError::InsufficientFunds { .. } => "insufficient_funds",
            ChainError::NonceTooLow { .. } => "nonce_too_low",
            ChainError::ReplacementUnderpriced { .. } => "replacement_underpriced",
            ChainError::Underpriced { .. } => "underpriced",
            ChainError::AlreadyKnown => "already_known",
            ChainError::LogRangeTooLarge { .. } => "range_too_large",
            ChainError::Malformed { .. } => "malformed",
            ChainError::ReceiptTimeout { .. } => "receipt_timeout",
            ChainError::Signing(_) => "signing",
            ChainError::Config(_) => "config",
        }
    }
}

/// Messages of otherwise unclassified JSON-RPC errors that mean "busy, try again".
const TRANSIENT_MESSAGES: &[&str] = &[
    "header not found",
    "rate limit",
    "too many requests",
    "timeout",
    "timed out",
    "try again",
    "temporarily unavailable",
    "service unavailable",
    "busy",
    "request limit",
    "capacity exceeded",
];

fn rpc_error_class(code: i64, message: &str) -> ErrorClass {
    let lower = message.to_ascii_lowercase();
    // -32005 is "limit exceeded" (EIP-1474), used for rate limits; 429 by some gateways.
    if code == -32005 || code == 429 || TRANSIENT_MESSAGES.iter().any(|m| lower.contains(m)) {
        return ErrorClass::Transient;
    }
    match code {
        // Parse error, invalid request, method not found, invalid params: this client or the
        // node is wrong for each other.
        -32700 | -32600 | -32601 | -32602 => ErrorClass::Fatal,
        // Internal error: the node failed, not the request.
        -32603 => ErrorClass::Transient,
        _ => ErrorClass::Outcome,
    }
}

const NONCE_TOO_LOW: &[&str] = &[
    "nonce too low",
    "nonce is too low",
    "oldnonce",
    "nonce_too_low",
    "nonce has already been used",
];
const REPLACEMENT_UNDERPRICED: &[&str] = &[
    "replacement transaction underpriced",
    "replacement underpriced",
    "replacement_underpriced",
    "replacement fee too low",
];
const ALREADY_KNOWN: &[&str] = &[
    "already known",
    "known transaction",
    "alreadyknown",
    "already imported",
    "transaction already exists",
];
const INSUFFICIENT_FUNDS: &[&str] = &[
    "insufficient funds",
    "insufficient balance",
    "insufficientfunds",
    "upfront cost exceeds account balance",
];
const UNDERPRICED: &[&str] = &[
    "transaction underpriced",
    "max fee per gas less than block base fee",
    "fee cap less than block base fee",
    "gas price too low",
    "feetoolow",
    "underpriced",
];
/// How providers say "ask eth_getLogs for fewer blocks": geth "query returned more than 10000
/// results", BSC "exceed maximum block range: 5000" / "limit exceeded", Alchemy "Log response
/// size exceeded", QuickNode "eth_getLogs is limited to a 10,000 range", others "block range
/// too large", "range limit exceeded", "requested too many blocks".
const LOG_RANGE_TOO_LARGE: &[&str] = &[
    "range too large",
    "range is too large",
    "block range",
    "range limit",
    "limit exceeded",
    "exceed maximum",
    "exceeds maximum",
    "more than",
    "too many blocks",
    "too many results",
    "size exceeded",
    "is limited to",
    "query timeout",
    "response too large",
];

/// Turns a JSON-RPC error object into the matching [`ChainError`]. `data` is the error's
/// `data` member (revert data for geth's code 3).
pub fn classify(
    method: &'static str,
    code: i64,
    message: &str,
    data: Option<&serde_json::Value>,
) -> ChainError {
    let lower = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    let message_owned = || message.to_owned();

    // geth uses code 3 for reverts with data; others only say so in the message.
    if code == 3 || lower.contains("revert") {
        let data = data.and_then(revert_data).unwrap_or_default();
        let reason = decode_revert_reason(&data).or_else(|| reason_from_message(message));
        return ChainError::Reverted { reason, data };
    }
    if method == "eth_getLogs" && has(LOG_RANGE_TOO_LARGE) {
        return ChainError::LogRangeTooLarge {
            message: message_owned(),
        };
    }
    // Order matters: "replacement transaction underpriced" before "underpriced".
    if has(NONCE_TOO_LOW) {
        ChainError::NonceTooLow {
            message: message_owned(),
        }
    } else if has(REPLACEMENT_UNDERPRICED) {
        ChainError::ReplacementUnderpriced {
            message: message_owned(),
        }
    } else if has(ALREADY_KNOWN) {
        ChainError::AlreadyKnown
    } else if has(INSUFFICIENT_FUNDS) {
        ChainError::InsufficientFunds {
            message: message_owned(),
        }
    } else if has(UNDERPRICED) {
        ChainError::Underpriced {
            message: message_owned(),
        }
    } else {
        ChainError::Rpc {
            method,
            code,
            message: message_owned(),
        }
    }
}

/// The revert bytes in an error's `data`: a hex string (geth, Erigon, Besu), a string with the
/// hex after a prefix (older Nethermind: `"Reverted 0x…"`), or an object with a `data` member
/// (Hardhat, Ganache).
fn revert_data(value: &serde_json::Value) -> Option<Bytes> {
    match value {
        serde_json::Value::String(text) => {
            let start = text.find("0x")?;
            hex::decode(&text[start + 2..]).ok().map(Bytes::from)
        }
        serde_json::Value::Object(map) => map.get("data").and_then(revert_data),
        _ => None,
    }
}

/// `Error(string)` → the string; `Panic(uint256)` → "panic: <meaning> (0x<code>)"; anything
/// else (custom errors, empty data) → `None`.
pub fn decode_revert_reason(data: &[u8]) -> Option<String> {
    if let Ok(revert) = Revert::abi_decode(data) {
        return Some(revert.reason);
    }
    if let Ok(panic) = Panic::abi_decode(data) {
        return Some(panic.to_string());
    }
    None
}

/// The reason some nodes put only in the message: "execution reverted: stale report",
/// "VM Exception while processing transaction: revert stale report".
fn reason_from_message(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let after = ["execution reverted: ", "reverted: ", "revert "]
        .iter()
        .find_map(|marker| lower.find(marker).map(|i| i + marker.len()))?;
    let reason = message[after..].trim();
    (!reason.is_empty()).then(|| reason.to_owned())
}

fn describe_revert(reason: Option<&str>, data: &Bytes) -> String {
    match reason {
        Some(reason) => reason.to_owned(),
        None if data.is_empty() => "no reason given".to_owned(),
        None if data.len() >= 4 => format!("custom error 0x{}", hex::encode(&data[..4])),
        None => format!("undecodable revert data 0x{}", hex::encode(data)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;
    use serde_json::json;

    fn revert_bytes(reason: &str) -> Bytes {
        Revert::from(reason).abi_encode().into()
    }

    #[test]
    fn geth_revert_with_error_string_data_is_decoded() {
        // geth eth_call: {"code":3,"message":"execution reverted: stale report","data":"0x08c379a0…"}
        let data = format!("0x{}", hex::encode(revert_bytes("stale report")));
        assert!(data.starts_with("0x08c379a0"));
        let e = classify(
            "eth_call",
            3,
            "execution reverted: stale report",
            Some(&json!(data)),
        );
        match &e {
            ChainError::Reverted { reason, data } => {
                assert_eq!(reason.as_deref(), Some("stale report"));
                assert_eq!(&data[..4], &[0x08, 0xc3, 0x79, 0xa0]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.class(), ErrorClass::Outcome);
        assert_eq!(e.to_string(), "execution reverted: stale report");
    }

    #[test]
    fn panics_are_described_by_their_code() {
        let data = Panic::from(0x11u64).abi_encode();
        assert_eq!(&data[..4], &[0x4e, 0x48, 0x7b, 0x71]);
        let e = classify(
            "eth_call",
            3,
            "execution reverted",
            Some(&json!(format!("0x{}", hex::encode(&data)))),
        );
        match e {
            ChainError::Reverted { reason, .. } => assert_eq!(
                reason.as_deref(),
                Some("panic: arithmetic underflow or overflow (0x11)")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode_revert_reason(&Panic::from(U256::from(0x99)).abi_encode()).as_deref(),
            Some("panic: unknown code (0x99)")
        );
    }

    #[test]
    fn reverts_without_data_take_the_reason_from_the_message_or_none() {
        let bare = classify("eth_estimateGas", -32000, "execution reverted", None);
        assert!(bare.is_bare_revert());
        match bare {
            ChainError::Reverted { reason, data } => {
                assert_eq!(reason, None);
                assert!(data.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let custom = classify(
            "eth_call",
            3,
            "execution reverted",
            Some(&json!("0xdeadbeef")),
        );
        assert!(!custom.is_bare_revert(), "a custom error is an answer");
        assert!(!classify("eth_call", 3, "execution reverted: no", None).is_bare_revert());
        match classify(
            "eth_sendRawTransaction",
            -32000,
            "VM Exception while processing transaction: revert observations not sorted",
            None,
        ) {
            ChainError::Reverted { reason, .. } => {
                assert_eq!(reason.as_deref(), Some("observations not sorted"))
            }
            other => panic!("{other:?}"),
        }
        // Nethermind's older form and Hardhat's nested object.
        let nested = json!({"message": "reverted", "data": format!("0x{}", hex::encode(revert_bytes("configDigest mismatch")))});
        match classify(
            "eth_call",
            -32015,
            "VM execution error.",
            Some(&json!({"data": nested["data"]})),
        ) {
            ChainError::Rpc { .. } => {}
            other => panic!("no revert keyword, code -32015 stays an RPC error: {other:?}"),
        }
        match classify("eth_call", 3, "execution reverted", Some(&nested)) {
            ChainError::Reverted { reason, .. } => {
                assert_eq!(reason.as_deref(), Some("configDigest mismatch"))
            }
            other => panic!("{other:?}"),
        }
        let prefixed = format!("Reverted 0x{}", hex::encode(revert_bytes("stale report")));
        match classify(
            "eth_call",
            -32015,
            "execution reverted",
            Some(&json!(prefixed)),
        ) {
            ChainError::Reverted { reason, .. } => {
                assert_eq!(reason.as_deref(), Some("stale report"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn custom_errors_keep_their_data_and_say_so() {
        let data = Bytes::from(vec![0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);
        let e = classify(
            "eth_call",
            3,
            "execution reverted",
            Some(&json!(data.to_string())),
        );
        match &e {
            ChainError::Reverted { reason, data: d } => {
                assert_eq!(reason, &None);
                assert_eq!(d, &data);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.to_string(), "execution reverted: custom error 0xdeadbeef");
    }

    /// Real error strings, as geth (core/txpool, core/error.go, internal/ethapi) and other
    /// clients format them.
    #[test]
    fn real_node_error_strings_are_classified() {
        let cases: &[(&str, i64, &str, &str, ErrorClass)] = &[
            ("eth_sendRawTransaction", -32000, "nonce too low: address 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf, tx: 0 state: 3", "nonce_too_low", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32000, "nonce too low", "nonce_too_low", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32010, "OldNonce, Current nonce: 5, nonce of rejected tx: 3", "nonce_too_low", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32000, "replacement transaction underpriced", "replacement_underpriced", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32000, "already known", "already_known", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32000, "known transaction: 2d6a7b0f6adeff38423d4c62cd8b6ccb708ddad85da5d3d06756ad4d8a04a6a2", "already_known", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32000, "insufficient funds for gas * price + value: address 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf have 0 want 500000", "insufficient_funds", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32003, "Upfront cost exceeds account balance", "insufficient_funds", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32000, "transaction underpriced: tip needed 1, tip permitted 0", "underpriced", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32000, "max fee per gas less than block base fee: address 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf, maxFeePerGas: 1, baseFee: 7", "underpriced", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32000, "intrinsic gas too low", "rpc_error", ErrorClass::Outcome),
            ("eth_sendRawTransaction", -32000, "tx fee (1.00 ether) exceeds the configured cap (1.00 ether)", "rpc_error", ErrorClass::Outcome),
            ("eth_getLogs", -32000, "query returned more than 10000 results", "range_too_large", ErrorClass::Outcome),
            ("eth_getLogs", -32005, "limit exceeded", "range_too_large", ErrorClass::Outcome),
            ("eth_getLogs", -32000, "exceed maximum block range: 5000", "range_too_large", ErrorClass::Outcome),
            ("eth_getLogs", -32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response.", "range_too_large", ErrorClass::Outcome),
            ("eth_getLogs", -32614, "eth_getLogs is limited to a 10,000 range", "range_too_large", ErrorClass::Outcome),
            ("eth_call", -32000, "header not found", "rpc_error", ErrorClass::Transient),
            ("eth_call", -32603, "internal error: database closed", "rpc_error", ErrorClass::Transient),
            ("eth_chainId", -32005, "daily request count exceeded, request rate limited", "rpc_error", ErrorClass::Transient),
            ("eth_maxPriorityFeePerGas", -32601, "the method eth_maxPriorityFeePerGas does not exist/is not available", "rpc_error", ErrorClass::Fatal),
            ("eth_call", -32602, "invalid argument 0: json: cannot unmarshal hex string without 0x prefix", "rpc_error", ErrorClass::Fatal),
        ];
        for (method, code, message, kind, class) in cases {
            let e = classify(method, *code, message, None);
            assert_eq!(e.kind(), *kind, "{message}");
            assert_eq!(e.class(), *class, "{message}");
        }
        // "limit exceeded" outside eth_getLogs is a rate limit, to be retried.
        let e = classify("eth_call", -32005, "limit exceeded", None);
        assert_eq!((e.kind(), e.class()), ("rpc_error", ErrorClass::Transient));
    }

    #[test]
    fn http_statuses_are_classified() {
        let http = |status| ChainError::Http {
            method: "eth_chainId",
            endpoint: "https://rpc.example".into(),
            status,
        };
        assert!(http(429).is_retryable());
        assert!(http(502).is_retryable());
        assert_eq!(http(401).class(), ErrorClass::Fatal);
        assert_eq!(http(404).class(), ErrorClass::Fatal);
    }
}
