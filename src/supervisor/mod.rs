//! PID 1: verifies the configuration, reads the s6-rc service definitions, starts services in
//! dependency order, restarts crashed longruns within limits, reaps every child and shuts down
//! in reverse order.
//!
//! Decisions and actions are apart: [`engine`] is a pure state machine (events in, commands
//! out) and [`executor`] performs its commands and feeds back what happened; `init` is the boot
//! sequence around them.

pub mod definition;
mod early_signals;
pub mod engine;
pub mod executor;
pub mod graph;
mod init;
mod journal;
pub mod logs;
pub mod metrics;
pub mod process;
pub mod restart;
mod state_files;
pub mod status;
mod watch;

pub use executor::{Stopper, Supervisor};
pub use init::{run, InitOptions, DEFAULT_SERVICES_DIR};
