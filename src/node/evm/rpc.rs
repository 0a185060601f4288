//! JSON-RPC 2.0 over HTTP(S) to one EVM node, with typed calls for what the oracle needs.
//!
//! One request per call, no retries inside: every error says through
//! [`ChainError::class`] whether repeating is worthwhile, and the caller (the transmission
//! loop, the sender's receipt polling) owns the schedule. The RPC URL is treated as a secret
//! (providers put API keys in its path or query): it is never logged or put into an error;
//! only `scheme://host:port` is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes, B256, U128, U256, U64};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use url::Url;

use super::error::{classify, ChainError};
use super::metrics::ChainMetrics;
use super::types::{quantity, BlockHeader, BlockTag, Receipt};

/// Answers larger than this are refused (a huge eth_getLogs page should be split instead).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Connecting should not take the whole request budget.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An `eth_call` / `eth_estimateGas` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    /// Sender seen by the contract (`msg.sender`, `tx.origin`); `None` lets the node choose
    /// (usually the zero address).
    pub from: Option<Address>,
    pub to: Address,
    pub data: Bytes,
    pub value: Option<U256>,
    pub gas: Option<u64>,
}

impl CallRequest {
    pub fn new(from: Option<Address>, to: Address, data: Bytes) -> Self {
        Self {
            from,
            to,
            data,
            value: None,
            gas: None,
        }
    }

    fn to_json(&self) -> Value {
        let mut call = serde_json::Map::new();
        if let Some(from) = self.from {
            call.insert("from".into(), json!(from));
        }
        call.insert("to".into(), json!(self.to));
        // "data", not "input": every node accepts it, some older ones only it.
        call.insert("data".into(), json!(self.data));
        if let Some(value) = self.value {
            call.insert("value".into(), json!(value));
        }
        if let Some(gas) = self.gas {
            call.insert("gas".into(), json!(quantity(gas)));
        }
        Value::Object(call)
    }
}

pub struct RpcClient {
    http: reqwest::Client,
    url: Url,
    endpoint: String,
    timeout: Duration,
    next_id: AtomicU64,
    metrics: Option<Arc<ChainMetrics>>,
}

/// Only the endpoint label: the URL itself may hold an API key.
impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client for `url` (http or https) that goes direct, ignoring `HTTP(S)_PROXY`
    /// variables: the enclave only uses a proxy when it is configured.
    pub fn new(url: Url, timeout: Duration) -> Result<Self, ChainError> {
        Self::build(url, timeout, None)
    }

    /// Like [`RpcClient::new`], through an HTTP(S) `proxy` (CONNECT for https endpoints).
    pub fn with_proxy(url: Url, timeout: Duration, proxy: &Url) -> Result<Self, ChainError> {
        Self::build(url, timeout, Some(proxy))
    }

    fn build(url: Url, timeout: Duration, proxy: Option<&Url>) -> Result<Self, ChainError> {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ChainError::Config(format!(
                "the RPC URL must be http(s)://host…, not {}",
                endpoint_label(&url)
            )));
        }
        if timeout.is_zero() {
            return Err(ChainError::Config(
                "the RPC timeout must be positive".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("enclave-oracle/", env!("CARGO_PKG_VERSION")));
        builder = match proxy {
            Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy.clone()).map_err(|_| {
                ChainError::Config(format!("unusable proxy {}", endpoint_label(proxy)))
            })?),
            None => builder.no_proxy(),
        };
        let http = builder.build().map_err(|e| {
            ChainError::Config(format!(
                "cannot build the HTTP client: {}",
                describe(&e.without_url())
            ))
        })?;
        Ok(Self {
            endpoint: endpoint_label(&url),
            http,
            url,
            timeout,
            next_id: AtomicU64::new(1),
            metrics: None,
        })
    }

    pub fn with_metrics(mut self, metrics: Arc<ChainMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// `scheme://host:port` of the node: safe to log.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One JSON-RPC call. `T` may be an `Option` for methods that answer `null`.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<T, ChainError> {
        let started = Instant::now();
        let result = self.request_once(method, params).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        if let Some(m) = &self.metrics {
            m.rpc(method, outcome, started.elapsed().as_secs_f64());
        }
        if let Err(e) = &result {
            tracing::debug!(method, endpoint = %self.endpoint, error = %e, "JSON-RPC call failed");
        }
        result
    }

    async fn request_once<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<T, ChainError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let body = serde_json::to_vec(&body).map_err(|e| ChainError::Malformed {
            method,
            reason: format!("cannot encode the request: {e}"),
        })?;
        let mut response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(method, e))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(method, e))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ChainError::Malformed {
                    method,
                    reason: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        parse_response(method, status.as_u16(), &self.endpoint, &bytes)
    }

    fn transport_error(&self, method: &'static str, e: reqwest::Error) -> ChainError {
        if e.is_timeout() {
            return ChainError::Timeout {
                method,
                endpoint: self.endpoint.clone(),
                after: self.timeout,
            };
        }
        ChainError::Transport {
            method,
            endpoint: self.endpoint.clone(),
            reason: scrub(&describe(&e.without_url()), &self.url),
        }
    }

    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        let id: U64 = self.request("eth_chainId", json!([])).await?;
        Ok(id.to())
    }

    pub async fn block_number(&self) -> Result<u64, ChainError> {
        let n: U64 = self.request("eth_blockNumber", json!([])).await?;
        Ok(n.to())
    }

    pub async fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.request("eth_getBalance", json!([address, "latest"]))
            .await
    }

    /// The next nonce of `address`: counting its pool transactions (`pending`) or only mined
    /// ones (`latest`).
    pub async fn nonce(&self, address: Address, pending: bool) -> Result<u64, ChainError> {
        let tag = if pending { "pending" } else { "latest" };
        let n: U64 = self
            .request("eth_getTransactionCount", json!([address, tag]))
            .await?;
        Ok(n.to())
    }

    pub async fn gas_price(&self) -> Result<u128, ChainError> {
        let p: U128 = self.request("eth_gasPrice", json!([])).await?;
        Ok(p.to())
    }

    pub async fn max_priority_fee(&self) -> Result<u128, ChainError> {
        let p: U128 = self.request("eth_maxPriorityFeePerGas", json!([])).await?;
        Ok(p.to())
    }

    /// `baseFeePerGas` of the latest block; `None` on chains without EIP-1559.
    pub async fn base_fee(&self) -> Result<Option<u128>, ChainError> {
        let block: Option<BlockHeader> = self
            .request("eth_getBlockByNumber", json!(["latest", false]))
            .await?;
        let block = block.ok_or(ChainError::Malformed {
            method: "eth_getBlockByNumber",
            reason: "no latest block".into(),
        })?;
        Ok(block.base_fee_per_gas)
    }

    pub async fn estimate_gas(&self, call: &CallRequest) -> Result<u64, ChainError> {
        let gas: U64 = self
            .request("eth_estimateGas", json!([call.to_json()]))
            .await?;
        Ok(gas.to())
    }

    /// `eth_call` against the latest block. A revert is [`ChainError::Reverted`].
    pub async fn call(
        &self,
        from: Option<Address>,
        to: Address,
        data: Bytes,
    ) -> Result<Bytes, ChainError> {
        self.call_at(&CallRequest::new(from, to, data), BlockTag::Latest)
            .await
    }

    pub async fn call_at(&self, call: &CallRequest, block: BlockTag) -> Result<Bytes, ChainError> {
        self.request("eth_call", json!([call.to_json(), block.to_json()]))
            .await
    }

    /// Submits a signed transaction (EIP-2718 bytes); returns the hash the node computed.
    pub async fn send_raw(&self, raw: &[u8]) -> Result<B256, ChainError> {
        self.request(
            "eth_sendRawTransaction",
            json!([format!("0x{}", hex::encode(raw))]),
        )
        .await
    }

    /// The receipt, or `None` while the transaction is pending or unknown.
    pub async fn receipt(&self, hash: B256) -> Result<Option<Receipt>, ChainError> {
        self.request("eth_getTransactionReceipt", json!([hash]))
            .await
    }

    /// Whether the node knows the transaction (pending in its pool, or mined). `false` after
    /// a pending transaction was dropped from the pool.
    pub async fn transaction_known(&self, hash: B256) -> Result<bool, ChainError> {
        let tx: Option<IgnoredAny> = self
            .request("eth_getTransactionByHash", json!([hash]))
            .await?;
        Ok(tx.is_some())
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<RpcErrorObject>,
}

#[derive(Deserialize)]
struct RpcErrorObject {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

/// Reads one JSON-RPC answer. Providers return errors both with HTTP 200 and with 4xx/5xx
/// statuses, so a JSON-RPC error in the body wins over the status.
pub(crate) fn parse_response<T: DeserializeOwned>(
    method: &'static str,
    status: u16,
    endpoint: &str,
    body: &[u8],
) -> Result<T, ChainError> {
    let http_error = || ChainError::Http {
        method,
        endpoint: endpoint.to_owned(),
        status,
    };
    let envelope: Envelope<'_> = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(_) if !(200..300).contains(&status) => return Err(http_error()),
        Err(e) => {
            return Err(ChainError::Malformed {
                method,
                reason: format!("not a JSON-RPC answer: {e}"),
            })
        }
    };
    if let Some(error) = envelope.error {
        return Err(classify(
            method,
            error.code,
            &error.message,
            error.data.as_ref(),
        ));
    }
    if !(200..300).contains(&status) {
        return Err(http_error());
    }
    // A `null` result comes through as `None`; `T = Option<…>` accepts it, others do not.
    let raw = envelope.result.map_or("null", RawValue::get);
    serde_json::from_str(raw).map_err(|e| ChainError::Malformed {
        method,
        reason: format!("unexpected result {}: {e}", abbreviate(raw)),
    })
}

fn abbreviate(text: &str) -> String {
    const MAX: usize = 120;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `scheme://host[:port]`: identifies the node without its path or query, where API keys go.
pub fn endpoint_label(url: &Url) -> String {
    let mut label = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?"));
    if let Some(port) = url.port() {
        label.push_str(&format!(":{port}"));
    }
    label
}

/// A reqwest error and its causes in one line. Callers pass the error through `without_url`
/// first; [`scrub`] then removes anything of the URL a cause might still repeat.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_connect() {
        "cannot connect".to_owned()
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Removes the URL's secret-bearing parts (user-info, path, query) from `text`.
fn scrub(text: &str, url: &Url) -> String {
    let mut secrets: Vec<String> = vec![url.as_str().to_owned()];
    if let Some(query) = url.query() {
        secrets.push(query.to_owned());
    }
    if let Some(password) = url.password() {
        secrets.push(password.to_owned());
    }
    if !url.username().is_empty() {
        secrets.push(url.username().to_owned());
    }
    secrets.extend(
        url.path_segments()
            .into_iter()
            .flatten()
            .filter(|s| s.len() >= 8)
            .map(str::to_owned),
    );
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::evm::test_support::MockNode;

    const SECRET: &str = "sk_live_0123456789abcdef";

    #[test]
    fn typed_results_and_null_results_are_read() {
        let n: U64 = parse_response(
            "eth_chainId",
            200,
            "e",
            br#"{"jsonrpc":"2.0","id":1,"result":"0xcc"}"#,
        )
        .expect("ok");
        assert_eq!(n.to::<u64>(), 204);
        let r: Option<Receipt> = parse_response(
            "eth_getTransactionReceipt",
            200,
            "e",
            br#"{"jsonrpc":"2.0","id":1,"result":null}"#,
        )
        .expect("ok");
        assert_eq!(r, None);
        let e = parse_response::<U64>(
            "eth_chainId",
            200,
            "e",
            br#"{"jsonrpc":"2.0","id":1,"result":null}"#,
        )
        .expect_err("null is not a number");
        assert_eq!(e.kind(), "malformed");
        let e = parse_response::<U64>("eth_chainId", 200, "e", b"<html>gateway</html>")
            .expect_err("html");
        assert_eq!(e.kind(), "malformed");
    }

    #[test]
    fn errors_in_the_body_win_over_the_http_status() {
        let body =
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"limit exceeded"}}"#;
        let e = parse_response::<Vec<Value>>("eth_getLogs", 400, "e", body).expect_err("error");
        assert_eq!(e.kind(), "range_too_large");
        let e = parse_response::<U64>(
            "eth_chainId",
            503,
            "https://rpc.example",
            b"Service Unavailable",
        )
        .expect_err("error");
        assert!(matches!(e, ChainError::Http { status: 503, .. }));
        assert!(e.is_retryable());
    }

    #[test]
    fn endpoint_labels_and_scrubbing_drop_keys() {
        let url = Url::parse(&format!(
            "https://user:pw@opbnb.example:8545/v2/{SECRET}?apikey={SECRET}"
        ))
        .expect("url");
        assert_eq!(endpoint_label(&url), "https://opbnb.example:8545");
        let scrubbed = scrub(&format!("error for url ({url}) with {SECRET}"), &url);
        assert!(!scrubbed.contains(SECRET), "{scrubbed}");
        assert!(!scrubbed.contains("pw@"), "{scrubbed}");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let ws = Url::parse(&format!("wss://node.example/{SECRET}")).expect("url");
        let e = RpcClient::new(ws, Duration::from_secs(1)).expect_err("ws");
        assert!(matches!(e, ChainError::Config(_)));
        assert!(!e.to_string().contains(SECRET));
    }

    #[tokio::test]
    async fn transport_errors_never_show_the_secret_url() {
        // Port 9 on localhost: nothing listens, the connection is refused.
        let url = Url::parse(&format!(
            "http://user:{SECRET}@127.0.0.1:9/v3/{SECRET}?key={SECRET}"
        ))
        .expect("url");
        let client = RpcClient::new(url, Duration::from_secs(2)).expect("client");
        assert!(!format!("{client:?}").contains(SECRET));
        let e = client.chain_id().await.expect_err("refused");
        assert!(e.is_retryable(), "{e:?}");
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains("http://127.0.0.1:9"), "{text}");
        }
    }

    #[tokio::test]
    async fn slow_nodes_time_out() {
        let node = MockNode::start(|_, _| {
            std::thread::sleep(Duration::from_millis(600));
            json!({"result": "0x1"})
        })
        .await;
        let client = RpcClient::new(node.url(), Duration::from_millis(200)).expect("client");
        let e = client.chain_id().await.expect_err("timeout");
        assert!(matches!(e, ChainError::Timeout { .. }), "{e:?}");
        assert!(e.is_retryable());
    }

    #[tokio::test]
    async fn typed_calls_send_the_right_requests() {
        let node = MockNode::start(|method, params| match method {
            "eth_chainId" => json!({"result": "0xcc"}),
            "eth_blockNumber" => json!({"result": "0x10"}),
            "eth_getBalance" => json!({"result": "0xde0b6b3a7640000"}),
            "eth_getTransactionCount" => {
                if params[1] == "pending" {
                    json!({"result": "0x5"})
                } else {
                    json!({"result": "0x4"})
                }
            }
            "eth_gasPrice" => json!({"result": "0x1"}),
            "eth_maxPriorityFeePerGas" => json!({"result": "0x3b9aca00"}),
            "eth_getBlockByNumber" => json!({"result": {"number": "0x10", "baseFeePerGas": "0x7"}}),
            "eth_estimateGas" => json!({"result": "0x5208"}),
            "eth_call" => {
                assert_eq!(
                    params[0]["from"],
                    "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
                );
                assert_eq!(params[0]["data"], "0xe5fe4577");
                assert_eq!(params[1], "latest");
                json!({"result": "0x01"})
            }
            "eth_getTransactionByHash" => json!({"result": null}),
            other => panic!("unexpected {other}"),
        })
        .await;
        let rpc = RpcClient::new(node.url(), Duration::from_secs(5)).expect("client");
        let who: Address = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
            .parse()
            .expect("addr");
        assert_eq!(rpc.chain_id().await.expect("chain id"), 204);
        assert_eq!(rpc.block_number().await.expect("block"), 16);
        assert_eq!(
            rpc.balance(who).await.expect("balance"),
            U256::from(10u64.pow(18))
        );
        assert_eq!(rpc.nonce(who, true).await.expect("nonce"), 5);
        assert_eq!(rpc.nonce(who, false).await.expect("nonce"), 4);
        assert_eq!(rpc.gas_price().await.expect("price"), 1);
        assert_eq!(rpc.max_priority_fee().await.expect("tip"), 1_000_000_000);
        assert_eq!(rpc.base_fee().await.expect("base fee"), Some(7));
        let call = CallRequest::new(Some(who), who, Bytes::from(vec![0xe5, 0xfe, 0x45, 0x77]));
        assert_eq!(rpc.estimate_gas(&call).await.expect("gas"), 21_000);
        assert_eq!(
            rpc.call(Some(who), who, call.data.clone())
                .await
                .expect("call"),
            Bytes::from(vec![1])
        );
        assert!(!rpc.transaction_known(B256::ZERO).await.expect("known"));
    }
}
