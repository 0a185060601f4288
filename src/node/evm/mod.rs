//! The EVM client: JSON-RPC reads, transaction signing and sending, and the OCR1
//! `OffchainAggregator` contract interface the oracles transmit to (opBNB in production).
//!
//! - [`rpc`]: [`RpcClient`], typed JSON-RPC calls over HTTP(S); [`chain_id`]: the chain check.
//! - [`logs`]: eth_getLogs, paged over long ranges.
//! - [`gas`]: [`GasPolicy`], first-attempt fees and replacement bumps.
//! - [`nonce`]: [`NonceManager`], one nonce sequence per key.
//! - [`signing`]: legacy (EIP-155) and EIP-1559 transactions via alloy-consensus, signed with k256.
//! - [`sender`]: [`TxSender`], send, wait for the receipt, re-send or replace.
//! - [`aggregator_contract`]: [`AggregatorContract`] reads, events and calldata.
//! - [`error`]: [`ChainError`] and its [`ErrorClass`]; [`metrics`]: [`ChainMetrics`].
//!
//! Documentation: docs/design/onchain.md (what the oracles do on chain) and the `chain` section of
//! docs/operator/configuration.md.

pub mod aggregator_contract;
pub mod chain_id;
pub mod error;
pub mod gas;
pub mod logs;
pub mod metrics;
pub mod nonce;
pub mod rpc;
pub mod sender;
pub mod signing;
pub mod types;

#[cfg(test)]
pub(crate) mod test_support;

pub use aggregator_contract::AggregatorContract;
pub use error::{ChainError, ErrorClass};
pub use gas::{Fees, GasKind, GasPolicy};
pub use metrics::ChainMetrics;
pub use nonce::NonceManager;
pub use rpc::RpcClient;
pub use sender::{Outcome, Sent, TxSender, TxStatus};
