//! The node as a process: `enclave node` starts node i ([`service`]) with its settings derived
//! once from the configuration ([`settings`]): the bootstrap, or an oracle with all its parts
//! ([`oracle`]), serves its HTTP API ([`api`]) and reports why it could not start or had to stop
//! ([`error`]).

pub mod api;
pub mod don;
pub mod error;
pub mod members;
pub mod oracle;
pub mod service;
pub mod settings;
