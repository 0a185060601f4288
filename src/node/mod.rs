//! Consensus node (`enclave node`): node 1 is the bootstrap (peer discovery), nodes 2..N are the
//! oracles that agree on every feed's price through OCR1 and produce reports the on-chain
//! `OffchainAggregator` accepts.

pub mod peer_id;
