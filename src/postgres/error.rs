//! Errors of the embedded PostgreSQL, each naming the file, directory or step at fault.

use std::io;
use std::path::Path;

use thiserror::Error;

use super::binaries::BinariesError;
use super::db::DbError;
use super::pgpass::PgpassError;

#[derive(Debug, Error)]
pub enum PgError {
    #[error(transparent)]
    Binaries(#[from] BinariesError),
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("{0} is not empty and is not a PostgreSQL cluster; refusing to touch it (move its contents away or point PGDATA elsewhere)")]
    NotACluster(String),
    #[error("the cluster in {dir} is PostgreSQL {cluster} but the binaries are {binaries}; an upgrade (pg_upgrade) is needed")]
    VersionMismatch {
        dir: String,
        cluster: u32,
        binaries: u32,
    },
    #[error("initdb failed ({status}): {stderr}")]
    Initdb { status: String, stderr: String },
    #[error("the cluster in {dir} exists but its superuser password file {file} is missing; restore it from the secrets volume")]
    MissingSuperuserPassword { dir: String, file: String },
    #[error("the postgres account (PostgreSQL never runs as root) cannot reach {dir}: {blocker} does not let it through; put the enclave root where that account can traverse (scripts/run-local.sh's default, under /var/tmp, is), rather than opening up that directory")]
    Unreachable { dir: String, blocker: String },
    #[error("running as root but there is no `postgres` user to run the server as")]
    NoPostgresUser,
    #[error("{0} is not a PostgreSQL cluster yet: run `enclave postgres bootstrap` first")]
    NotBootstrapped(String),
    #[error("cannot generate a random password")]
    Random,
    #[error("{0}")]
    Privileges(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Pgpass(#[from] PgpassError),
    #[error("PostgreSQL did not accept connections on 127.0.0.1:{port} within {seconds} s")]
    NotReady { port: u16, seconds: u64 },
}

impl PgError {
    pub fn io(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PgError {
        let path = path.display().to_string();
        move |source| PgError::Io {
            context,
            path,
            source,
        }
    }
}
