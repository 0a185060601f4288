//! Consensus node (`enclave node`): node 1 is the bootstrap (peer discovery), nodes 2..N are the
//! oracles that agree on every feed's price through OCR1 and produce reports the on-chain
//! `OffchainAggregator` accepts.

pub mod api;
pub mod chain;
pub mod contract_state;
pub mod don_config;
pub mod error;
pub mod feed_health;
pub mod feed_task;
pub mod fence;
pub mod metrics;
pub mod observe;
pub mod ocr1;
pub mod onchain;
pub mod oracle;
pub mod oracle_set;
pub mod p2p;
pub mod p2p_metrics;
pub mod protocol;
pub mod service;
pub mod status;
pub mod store;
pub mod tasks;
pub mod transmission;
pub mod writes;
