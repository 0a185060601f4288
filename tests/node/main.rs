//! Integration tests of the consensus nodes: keys, consensus, P2P, byzantine members, feed health, the nodes in an enclave: one module per former test file, in one binary so the crate
//! and `tests/common` are linked once for all of them (docs/development/tests.md).

#[path = "../common/mod.rs"]
mod common;

mod byzantine;
mod consensus;
mod feed_health;
mod in_an_enclave;
mod keys;
mod p2p;
mod p2p_flood;
