//! PID 1: verifies the configuration, reads the s6-rc service definitions, starts services in
//! dependency order, restarts crashed longruns within limits, reaps every child and shuts down
//! in reverse order.
//!
//! Decisions and actions are apart: [`engine`] is a pure state machine (events in, commands
//! out) and [`executor`] performs its commands and feeds back what happened; `init` is the boot
//! sequence around them.
//!
//! | module | job |
//! |---|---|
//! | `init` | `enclave init`: verify the configuration, load the graph, state the identity, run the tree, return the exit code |
//! | [`definition`], [`graph`] | s6-rc service folders read and checked; dependencies resolved, cycles refused |
//! | [`engine`] | every decision: start order, readiness, restarts, shutdown order, exit code |
//! | [`restart`] | the windowed restart limit and its backoff |
//! | [`executor`] | performs the engine's commands; owns every task it starts |
//! | `watch` | per-process tasks turning a child's readiness and exit into events |
//! | `journal` | the engine's notes as log lines |
//! | [`process`] | spawning in process groups, the one reaper, signals |
//! | `state_files` | writing the state files, and the state page when they lag |
//! | [`logs`] | capturing service output to stdout and rotating files |
//! | [`metrics`] | the supervisor's own metrics |
//! | `early_signals` | a stop asked for before the event loop runs |
//! | [`status`] | `enclave status`: what the state files and the identity document say |

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
