//! The database layer a consensus node uses on its own database: connect, migrate, and make sure
//! the database belongs to this node before anything else touches it.

use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use thiserror::Error;

use super::layout::Credentials;

/// Connections a node keeps open at most: the node is one process with a handful of concurrent
/// writers, and every node shares the server's `max_connections`.
const MAX_CONNECTIONS: u32 = 5;
/// Long enough for a server that is still starting up (sqlx retries refused connections until
/// then), short enough that a node stuck without a database fails visibly.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Embedded at build time so that a node binary always carries the schema it was written for.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot connect to database {database} as {user}: {source}")]
    Connect {
        database: String,
        user: String,
        source: sqlx::Error,
    },
    #[error("cannot migrate database {database} as {user}: {source}")]
    Migrate {
        database: String,
        user: String,
        source: MigrateError,
    },
    #[error("{what} failed on database {database} as {user}: {source}")]
    Query {
        what: &'static str,
        database: String,
        user: String,
        source: sqlx::Error,
    },
    /// A statement on a connection whose database the caller's context already names
    /// (provisioning runs as the superuser on the maintenance database).
    #[error("{what} failed: {source}")]
    Statement {
        what: &'static str,
        source: sqlx::Error,
    },
    #[error(
        "database {database} belongs to node {found}, not to node {expected}: \
         a node must never run on another node's database"
    )]
    IdentityMismatch {
        database: String,
        expected: u32,
        found: i64,
    },
    #[error(
        "database {database} has lost its node identity (table enclave_node is empty): \
         refusing to use it as node {expected}"
    )]
    IdentityMissing { database: String, expected: u32 },
}

impl DbError {
    /// A failed statement, for callers that use `map_err` on many statements in one step.
    pub fn query(what: &'static str, source: sqlx::Error) -> Self {
        Self::Statement { what, source }
    }
}

/// Connection options for `credentials`, built field by field so that the password never
/// passes through a URL (which ends up in logs and error messages).
pub fn connect_options(credentials: &Credentials) -> PgConnectOptions {
    // `new_without_pgpass`: the password is given explicitly, so no pgpass file may override it.
    PgConnectOptions::new_without_pgpass()
        .host(&credentials.host)
        .port(credentials.port)
        .database(&credentials.database)
        .username(&credentials.user)
        .password(credentials.password.expose())
        // The server listens on loopback only, and the build has no TLS.
        .ssl_mode(PgSslMode::Disable)
}

/// Connects with the node's credentials, runs the migrations, then records the node's identity
/// in a fresh database or verifies it in an existing one.
pub async fn connect(credentials: &Credentials, node: u32) -> Result<PgPool, DbError> {
    let options = connect_options(credentials).application_name(&format!("enclave-node-{node}"));
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| DbError::Connect {
            database: credentials.database.clone(),
            user: credentials.user.clone(),
            source,
        })?;
    match prepare(&pool, credentials, node).await {
        Ok(()) => Ok(pool),
        Err(e) => {
            // A rejected node must not keep connections to a database it may not use.
            pool.close().await;
            Err(e)
        }
    }
}

async fn prepare(pool: &PgPool, credentials: &Credentials, node: u32) -> Result<(), DbError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|source| DbError::Migrate {
            database: credentials.database.clone(),
            user: credentials.user.clone(),
            source,
        })?;
    let query_error = |what| {
        move |source| DbError::Query {
            what,
            database: credentials.database.clone(),
            user: credentials.user.clone(),
            source,
        }
    };
    // The singleton primary key makes this race-free: of two nodes starting on the same empty
    // database, exactly one row is written and the loser sees the winner's number below.
    let inserted = sqlx::query(
        "INSERT INTO enclave_node (node_number) VALUES ($1) ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(i64::from(node))
    .execute(pool)
    .await
    .map_err(query_error("recording the node identity"))?;
    if inserted.rows_affected() == 1 {
        tracing::info!(
            database = %credentials.database,
            node,
            "new database recorded as this node's"
        );
    }
    let found: Option<i64> = sqlx::query_scalar("SELECT node_number FROM enclave_node")
        .fetch_optional(pool)
        .await
        .map_err(query_error("reading the node identity"))?;
    check_identity(&credentials.database, node, found)
}

/// A round trip to the server, and proof that the database still belongs to `node`.
pub async fn health(pool: &PgPool, node: u32) -> Result<(), DbError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT node_number FROM enclave_node")
        .fetch_optional(pool)
        .await
        .map_err(|source| {
            let (database, user) = target(pool);
            DbError::Query {
                what: "the health check",
                database,
                user,
                source,
            }
        })?;
    check_identity(&target(pool).0, node, found)
}

fn check_identity(database: &str, expected: u32, found: Option<i64>) -> Result<(), DbError> {
    match found {
        Some(found) if found == i64::from(expected) => Ok(()),
        Some(found) => Err(DbError::IdentityMismatch {
            database: database.to_owned(),
            expected,
            found,
        }),
        None => Err(DbError::IdentityMissing {
            database: database.to_owned(),
            expected,
        }),
    }
}

/// The database and user a pool connects to, for error messages.
pub(crate) fn target(pool: &PgPool) -> (String, String) {
    let options = pool.connect_options();
    let database = options.get_database().unwrap_or("(default)").to_owned();
    (database, options.get_username().to_owned())
}

/// A throwaway PostgreSQL server for tests: its own data directory and a free loopback port,
/// run as the `postgres` user when the tests run as root (the server refuses to run as root).
#[cfg(test)]
pub(crate) mod test_server {
    use std::fs::{self, File, Permissions};
    use std::net::TcpListener;
    use std::os::unix::fs::{chown, PermissionsExt};
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::{Pid, Uid, User};
    use sqlx::{Connection, PgConnection};
    use tempfile::TempDir;

    use crate::postgres::layout::Credentials;

    pub(crate) const SUPERUSER_PASSWORD: &str = "test-superuser-password-5e1f";
    const START_DEADLINE: Duration = Duration::from_secs(60);
    const STOP_DEADLINE: Duration = Duration::from_secs(30);
    const POLL: Duration = Duration::from_millis(25);

    pub(crate) struct TestServer {
        port: u16,
        child: Option<Child>,
        log: PathBuf,
        // Removed only after `Drop` has stopped the server that writes into it.
        _dir: TempDir,
    }

    /// The newest installed PostgreSQL, unless `PG_BIN` names one.
    fn bin_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("PG_BIN") {
            return PathBuf::from(dir);
        }
        let newest = fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed under /usr/lib/postgresql (Debian package postgresql)")
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .max();
        newest
            .expect("a PostgreSQL version under /usr/lib/postgresql")
            .1
    }

    /// Who the server runs as: `postgres` when we are root, else ourselves.
    fn owner() -> Option<(u32, u32)> {
        if !Uid::effective().is_root() {
            return None;
        }
        let user = User::from_name("postgres")
            .expect("look up the postgres user")
            .expect("the postgres user exists (tests run as root)");
        Some((user.uid.as_raw(), user.gid.as_raw()))
    }

    fn give(path: &Path, owner: Option<(u32, u32)>) {
        if let Some((uid, gid)) = owner {
            chown(path, Some(uid), Some(gid)).expect("chown to postgres");
        }
    }

    fn command(program: &str, dir: &Path, owner: Option<(u32, u32)>) -> Command {
        let mut command = Command::new(bin_dir().join(program));
        // The server's user may not be able to enter our working directory.
        command.current_dir(dir);
        if let Some((uid, gid)) = owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn free_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener.local_addr().expect("local address").port()
    }

    impl TestServer {
        /// initdb and start; returns once the server accepts connections.
        pub(crate) async fn start() -> TestServer {
            let dir = tempfile::tempdir().expect("temp dir");
            let owner = owner();
            // tempdir is 0700; the server's user must be able to traverse it.
            fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).expect("chmod");
            let data = dir.path().join("data");
            let sockets = dir.path().join("sockets");
            let pwfile = dir.path().join("superuser.password");
            fs::create_dir(&data).expect("data dir");
            fs::set_permissions(&data, Permissions::from_mode(0o700)).expect("chmod data");
            fs::create_dir(&sockets).expect("socket dir");
            fs::write(&pwfile, SUPERUSER_PASSWORD).expect("password file");
            fs::set_permissions(&pwfile, Permissions::from_mode(0o600)).expect("chmod pwfile");
            for path in [&data, &sockets, &pwfile] {
                give(path, owner);
            }

            let output = command("initdb", dir.path(), owner)
                .arg("-D")
                .arg(&data)
                .args([
                    "--auth=scram-sha-256",
                    "--username=postgres",
                    "--encoding=UTF8",
                ])
                .args(["--locale=C", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display()))
                .output()
                .expect("run initdb");
            assert!(
                output.status.success(),
                "initdb failed: {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );

            let log = dir.path().join("postgres.log");
            // The port is free when picked but may be taken before the server binds it: retry.
            for _ in 0..3 {
                let port = free_port();
                let log_file = File::options()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("log file");
                let mut child = command("postgres", dir.path(), owner)
                    .arg("-D")
                    .arg(&data)
                    .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
                    .arg("-k")
                    .arg(&sockets)
                    .arg("-F")
                    .stdin(Stdio::null())
                    .stdout(log_file.try_clone().expect("log file"))
                    .stderr(log_file)
                    .spawn()
                    .expect("start postgres");
                match wait_ready(&mut child, port).await {
                    Start::Ready => {
                        return TestServer {
                            port,
                            child: Some(child),
                            log,
                            _dir: dir,
                        }
                    }
                    Start::Exited => continue,
                    Start::TimedOut => {
                        stop(child);
                        panic!(
                            "postgres not ready after {START_DEADLINE:?}:\n{}",
                            fs::read_to_string(&log).unwrap_or_default()
                        );
                    }
                }
            }
            panic!(
                "postgres did not start:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }

        pub(crate) fn log(&self) -> String {
            fs::read_to_string(&self.log).unwrap_or_default()
        }

        pub(crate) fn superuser(&self) -> Credentials {
            superuser(self.port)
        }

        /// Provisions node `node` as the real cluster does: its own login role owning its own
        /// database, which no one else may connect to.
        pub(crate) async fn create_node(&self, node: u32) -> Credentials {
            let credentials = Credentials {
                host: "127.0.0.1".into(),
                port: self.port,
                database: format!("test_node_{node}"),
                user: format!("node_{node}"),
                password: format!("node-{node}-test-password").into(),
            };
            let mut connection =
                PgConnection::connect_with(&super::connect_options(&self.superuser()))
                    .await
                    .expect("connect as superuser");
            let statements = [
                format!(
                    "CREATE ROLE {} LOGIN PASSWORD '{}'",
                    credentials.user,
                    credentials.password.expose()
                ),
                format!(
                    "CREATE DATABASE {} OWNER {}",
                    credentials.database, credentials.user
                ),
                format!(
                    "REVOKE CONNECT ON DATABASE {} FROM PUBLIC",
                    credentials.database
                ),
            ];
            for statement in &statements {
                sqlx::raw_sql(statement)
                    .execute(&mut connection)
                    .await
                    .expect("provision node");
            }
            let _ = connection.close().await;
            credentials
        }

        /// Fast shutdown (SIGINT), waiting for the server to exit.
        pub(crate) fn stop(&mut self) {
            if let Some(child) = self.child.take() {
                stop(child);
            }
        }
    }

    enum Start {
        Ready,
        Exited,
        TimedOut,
    }

    async fn wait_ready(child: &mut Child, port: u16) -> Start {
        let deadline = Instant::now() + START_DEADLINE;
        let options = super::connect_options(&superuser(port));
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return Start::Exited;
            }
            if let Ok(connection) = PgConnection::connect_with(&options).await {
                let _ = connection.close().await;
                return Start::Ready;
            }
            if Instant::now() >= deadline {
                return Start::TimedOut;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn stop(mut child: Child) {
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn superuser(port: u16) -> Credentials {
        Credentials {
            host: "127.0.0.1".into(),
            port,
            database: "postgres".into(),
            user: "postgres".into(),
            password: SUPERUSER_PASSWORD.into(),
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::TestServer;
    use super::*;
    use crate::config::secret::Secret;

    #[tokio::test]
    async fn connect_migrates_and_records_the_identity() {
        let server = TestServer::start().await;
        let credentials = server.create_node(3).await;

        let pool = connect(&credentials, 3).await.expect("first connect");
        let applied: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&pool)
        .await
        .expect("migrations table");
        assert_eq!(applied.first(), Some(&1));
        let recorded: i64 = sqlx::query_scalar("SELECT node_number FROM enclave_node")
            .fetch_one(&pool)
            .await
            .expect("identity row");
        assert_eq!(recorded, 3);
        health(&pool, 3).await.expect("healthy");

        // The table can never hold a second row.
        for insert in [
            "INSERT INTO enclave_node (node_number) VALUES (4)",
            "INSERT INTO enclave_node (node_number, singleton) VALUES (4, false)",
        ] {
            assert!(
                sqlx::query(insert).execute(&pool).await.is_err(),
                "{insert}"
            );
        }
        pool.close().await;

        let again = connect(&credentials, 3)
            .await
            .expect("reconnect as the same node");
        health(&again, 3).await.expect("healthy after reconnect");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM enclave_node")
            .fetch_one(&again)
            .await
            .expect("count");
        assert_eq!(rows, 1);
    }

    #[tokio::test]
    async fn another_node_number_is_refused() {
        let server = TestServer::start().await;
        let credentials = server.create_node(1).await;
        let pool = connect(&credentials, 1).await.expect("connect as node 1");

        match connect(&credentials, 2).await {
            Err(DbError::IdentityMismatch {
                database,
                expected,
                found,
            }) => {
                assert_eq!((database.as_str(), expected, found), ("test_node_1", 2, 1));
            }
            other => panic!("expected an identity mismatch, got {other:?}"),
        }
        let err = health(&pool, 2)
            .await
            .expect_err("node 2 on node 1's database");
        assert!(matches!(
            err,
            DbError::IdentityMismatch {
                expected: 2,
                found: 1,
                ..
            }
        ));
        assert!(err.to_string().contains("test_node_1"), "{err}");

        // The refused attempt changed nothing.
        health(&pool, 1).await.expect("still node 1's database");
    }

    #[tokio::test]
    async fn health_fails_when_the_identity_is_gone_or_the_server_is() {
        let mut server = TestServer::start().await;
        let credentials = server.create_node(5).await;
        let pool = connect(&credentials, 5).await.expect("connect");
        sqlx::query("DELETE FROM enclave_node")
            .execute(&pool)
            .await
            .expect("delete identity");
        let err = health(&pool, 5).await.expect_err("identity gone");
        assert!(
            matches!(err, DbError::IdentityMissing { expected: 5, .. }),
            "{err}"
        );

        server.stop();
        let err = health(&pool, 5).await.expect_err("server gone");
        assert!(matches!(err, DbError::Query { .. }), "{err}");
        assert!(err.to_string().contains("test_node_5"), "{err}");
    }

    #[tokio::test]
    async fn nodes_racing_for_a_fresh_database_get_one_owner() {
        let server = TestServer::start().await;
        let credentials = server.create_node(7).await;
        let (a, b) = tokio::join!(connect(&credentials, 7), connect(&credentials, 7));
        a.expect("first");
        b.expect("second, same node");

        let fresh = server.create_node(8).await;
        let (a, b) = tokio::join!(connect(&fresh, 8), connect(&fresh, 9));
        let (winner, loser) = match (a, b) {
            (Ok(pool), Err(err)) => (pool, (err, 8)),
            (Err(err), Ok(pool)) => (pool, (err, 9)),
            other => panic!("expected exactly one owner, got {other:?}"),
        };
        let (err, owner) = loser;
        assert!(
            matches!(err, DbError::IdentityMismatch { found, .. } if found == owner),
            "{err}"
        );
        let recorded: i64 = sqlx::query_scalar("SELECT node_number FROM enclave_node")
            .fetch_one(&winner)
            .await
            .expect("identity");
        assert_eq!(recorded, owner);
    }

    #[tokio::test]
    async fn a_wrong_password_is_reported_without_revealing_it() {
        let server = TestServer::start().await;
        let mut credentials = server.create_node(2).await;
        let wrong = "wrong-password-7c0ffee";
        credentials.password = Secret::from(wrong);

        let err = connect(&credentials, 2).await.expect_err("wrong password");
        assert!(matches!(err, DbError::Connect { .. }), "{err}");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(wrong), "password leaked: {text}");
            assert!(
                !text.contains("node-2-test-password"),
                "password leaked: {text}"
            );
        }
        let text = err.to_string();
        assert!(
            text.contains("database test_node_2") && text.contains("as node_2"),
            "{text}"
        );
        assert!(!server.log().contains(wrong), "password in the server log");
    }
}
