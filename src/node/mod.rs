//! Consensus node (`enclave node`): node 1 is the bootstrap (peer discovery), nodes 2..N are the
//! oracles that agree on every feed's price through OCR1 and produce reports the on-chain
//! `OffchainAggregator` accepts.
//!
//! One folder per concern:
//! - [`runtime`]: the process: starting node i (bootstrap or oracle), its API, why it stops.
//! - [`feed`]: one feed's task: observing, driving its protocol instance, storing what it finalizes.
//! - [`protocol`]: the OCR1 protocol instance as a pure state machine, and the rollback fence.
//! - [`ocr1`]: OCR1's byte formats (reports, signatures, digests), shared by protocol and chain.
//! - [`p2p`]: the nodes' network (mutual TLS, one connection per peer pair) and its metrics.
//! - [`transmission`]: deciding whether, when and how to send a finalized report, and sending it.
//! - [`contract`]: the feeds' contracts: their DON configuration, what they last accepted, payees
//!   and funding of the transmitters.
//! - [`evm`]: the EVM client: JSON-RPC, transactions, the `OffchainAggregator` interface.
//!
//! And the leaves several folders share: [`store`] (the node's database), [`metrics`] (the
//! node's Prometheus metrics) and [`tasks`] (who owns every task the node spawns).

pub mod contract;
pub mod evm;
pub mod feed;
pub mod metrics;
pub mod ocr1;
pub mod p2p;
pub mod protocol;
pub mod runtime;
pub mod store;
pub mod tasks;
pub mod transmission;
