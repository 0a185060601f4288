//! Integration tests of attestation: the identity at boot, collateral, quote verification, `enclave verify-identity`, the release binary without test support: one module per former test file, in one binary so the crate
//! and `tests/common` are linked once for all of them (docs/development/tests.md).

#[path = "../common/mod.rs"]
mod common;

mod boot;
mod collateral_fetch;
mod don_members;
mod evidence;
mod quote_verify;
mod release_binary;
mod support;
mod verify_identity;
