//! What every supervised service shares with its supervisor, and nothing else: the s6 readiness
//! notification and the termination signal a service waits for ([`readiness`]), and the
//! per-service state files the supervisor writes and `enclave status`, the process-metrics
//! exporter and the live view read ([`state`]). Services depend on this module, never on
//! `supervisor`, so the supervisor can use any of them without a cycle.

pub mod readiness;
pub mod state;
