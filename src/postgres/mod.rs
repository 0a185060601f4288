//! The embedded PostgreSQL: locate the binaries, bootstrap the cluster, run the server, provision
//! one isolated database and role per node, and the database layer the nodes use.

pub(crate) mod account;
pub mod binaries;
pub mod bootstrap;
pub mod db;
pub mod error;
pub mod layout;
pub mod metrics;
pub mod pgpass;
pub mod probe;
pub mod provision;
pub mod scram;
pub mod server;

pub use error::PgError;
