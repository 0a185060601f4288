//! PID 1: verifies the configuration, reads the s6-rc service definitions, starts services in
//! dependency order, restarts crashed longruns within limits, reaps every child and shuts down
//! in reverse order.

pub mod definition;
mod early_signals;
pub mod graph;
mod init;
pub mod logs;
pub mod metrics;
mod orchestrator;
pub mod process;
pub mod restart;
mod state_files;
pub mod status;

pub use init::{run, InitOptions, DEFAULT_SERVICES_DIR};
pub use orchestrator::Shutdown;
