//! Integration tests of the platform around the services: configuration and signing, PostgreSQL, telemetry, alerts, the live view, `scripts/run-local.sh`, the documentation's links: one module per former test file, in one binary so the crate
//! and `tests/common` are linked once for all of them (docs/development/tests.md).

#[path = "../common/mod.rs"]
mod common;

mod alerts_enclave;
mod architecture;
mod config_cli;
mod config_signature;
mod config_validation;
mod docs_links;
mod postgres_cluster;
mod run_local;
mod status_watch;
mod telemetry_enclave;
mod telemetry_push;
