//! `enclave`: an all-in-one confidential price-oracle container. One binary runs as PID 1 and as
//! each service below it; see docs/design/architecture.md for the design, README.md and
//! docs/operator/ for operators.

pub mod aggregator;
pub mod alerts;
pub mod attestation;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod exit;
pub mod keys;
pub mod live_view;
pub mod logging;
pub mod net;
pub mod node;
pub mod paths;
pub mod postgres;
pub mod process_metrics;
pub mod service;
pub mod snapshot;
pub mod supervisor;
pub mod telemetry;
