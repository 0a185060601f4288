//! Integration tests of the price aggregator: its API, limits, market data, streams, the service in an enclave, arbitrary input, its HTTP server's hardening: one module per former test file, in one binary so the crate
//! and `tests/common` are linked once for all of them (docs/development/tests.md).

#[path = "../common/mod.rs"]
mod common;

mod api;
mod fuzz;
mod http_hardening;
mod limits;
mod market_data;
mod service;
mod streams;
mod support;
