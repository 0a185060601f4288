//! Integration tests of the chain: the EVM dev chain, the enclave's EVM client, the nodes transmitting on chain, the DON configuration, rollbacks: one module per former test file, in one binary so the crate
//! and `tests/common` are linked once for all of them (docs/development/tests.md).

#[path = "../common/mod.rs"]
mod common;

mod client;
mod devchain_contract;
mod devchain_rpc;
mod node_chain;
mod node_don_config;
mod node_reconfiguration;
mod node_rollback;
