//! Where the embedded cluster keeps its files, and the connection details of each database.

use std::path::PathBuf;

use crate::config::schema::Config;
use crate::config::secret::Secret;
use crate::paths::Root;

pub const DATA_DIR: &str = "/sp/postgresql/data";
pub const SOCKET_DIR: &str = "/run/postgresql";
/// Per-boot node passwords, one pgpass file per node.
pub const NODE_SECRETS_DIR: &str = "/run/enclave/secrets";
pub const SUPERUSER: &str = "postgres";
pub const LISTEN_ADDRESS: &str = "127.0.0.1";

/// The cluster's paths under a root.
#[derive(Debug, Clone)]
pub struct Layout {
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub node_secrets_dir: PathBuf,
    /// The superuser's password lives with the persistent secrets, beside the persistent data.
    pub superuser_password_file: PathBuf,
    pub port: u16,
    pub database_prefix: String,
}

impl Layout {
    /// `PGDATA` overrides the data directory (as for any PostgreSQL tool).
    pub fn new(root: &Root, config: &Config) -> Self {
        let data_dir = std::env::var_os("PGDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.map(DATA_DIR));
        Self {
            data_dir,
            socket_dir: root.map(SOCKET_DIR),
            node_secrets_dir: root.map(NODE_SECRETS_DIR),
            superuser_password_file: root
                .map(&config.secrets_dir)
                .join("postgres/superuser.password"),
            port: config.postgres.port,
            database_prefix: config.postgres.database_prefix.clone(),
        }
    }

    /// Node i's database: `<pgDatabase>_<i>`.
    pub fn database(&self, node: u32) -> String {
        format!("{}_{node}", self.database_prefix)
    }

    /// Node i's role: `node_<i>`.
    pub fn role(node: u32) -> String {
        format!("node_{node}")
    }

    pub fn pgpass(&self, node: u32) -> PathBuf {
        self.node_secrets_dir.join(format!("node-{node}.pgpass"))
    }
}

/// Everything needed to open a connection: always TCP to 127.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Secret<String>,
}
