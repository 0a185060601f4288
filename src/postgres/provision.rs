//! `enclave postgres init`: one role `node_<i>` and one database `<pgDatabase>_<i>` per node,
//! each database reachable only by its own role (and the superuser). Every boot gives every role
//! a new password; the databases and their data are kept.
//!
//! No SQL is built from values on our side: names and password verifiers are bound as
//! parameters and quoted by the server's `format(%I, %L)`. The password itself never reaches the
//! server: only its SCRAM verifier does.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

use super::db::{connect_options, DbError};
use super::error::PgError;
use super::layout::{Credentials, Layout, LISTEN_ADDRESS, SUPERUSER};
use super::pgpass;
use super::scram::{generate_password, verifier};
use crate::config::secret::Secret;

/// How long `init` waits for the server to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A temporary function, private to our session, that creates or updates a node role and
/// locks its database down to it.
const ENSURE_NODE: &str = r#"
CREATE FUNCTION pg_temp.enclave_ensure_node(role_name text, verifier text, db text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
    EXECUTE format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', role_name, verifier);
  ELSE
    EXECUTE format('CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', role_name, verifier);
  END IF;
  IF EXISTS (SELECT 1 FROM pg_database WHERE datname = db) THEN
    EXECUTE format('ALTER DATABASE %I OWNER TO %I', db, role_name);
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', db);
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', db, role_name);
  END IF;
END
$fn$
"#;

/// Roles of nodes that are no longer configured lose their login.
const DISABLE_STALE: &str = r#"
CREATE FUNCTION pg_temp.enclave_disable_stale(max_node integer) RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE r text;
BEGIN
  FOR r IN SELECT rolname FROM pg_roles
           WHERE rolname ~ '^node_[0-9]+$' AND substring(rolname from 6)::integer > max_node AND rolcanlogin
  LOOP
    EXECUTE format('ALTER ROLE %I NOLOGIN', r);
    RETURN NEXT r;
  END LOOP;
END
$fn$
"#;

pub fn superuser_credentials(layout: &Layout, password: Secret<String>) -> Credentials {
    Credentials {
        host: LISTEN_ADDRESS.to_owned(),
        port: layout.port,
        database: "postgres".to_owned(),
        user: SUPERUSER.to_owned(),
        password,
    }
}

/// Connects as the superuser, retrying until the server accepts connections or `timeout`.
pub async fn connect_when_ready(
    c: &Credentials,
    timeout: Duration,
) -> Result<PgConnection, PgError> {
    let deadline = Instant::now() + timeout;
    loop {
        match PgConnection::connect_with(&connect_options(c)).await {
            Ok(conn) => return Ok(conn),
            Err(e) if Instant::now() >= deadline => {
                tracing::error!(error = %e, "PostgreSQL not ready");
                return Err(PgError::NotReady {
                    port: c.port,
                    seconds: timeout.as_secs(),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Provisions nodes `1..=nodes` and writes their credentials.
pub async fn provision(
    conn: &mut PgConnection,
    layout: &Layout,
    nodes: u32,
) -> Result<(), PgError> {
    let q = |e: sqlx::Error| PgError::Db(DbError::query("provisioning", e));
    conn.execute(ENSURE_NODE).await.map_err(q)?;
    conn.execute(DISABLE_STALE).await.map_err(q)?;
    // Node roles must not reach the maintenance database either.
    conn.execute("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
        .await
        .map_err(q)?;
    for node in 1..=nodes {
        provision_node(conn, layout, node).await?;
    }
    let disabled: Vec<String> = sqlx::query_scalar("SELECT pg_temp.enclave_disable_stale($1)")
        .bind(nodes as i32)
        .fetch_all(&mut *conn)
        .await
        .map_err(q)?;
    for role in disabled {
        tracing::info!(role = %role, "disabled the login of a node that is no longer configured");
    }
    tracing::info!(nodes, "provisioned one database and role per node");
    Ok(())
}

async fn provision_node(
    conn: &mut PgConnection,
    layout: &Layout,
    node: u32,
) -> Result<(), PgError> {
    let q = |e: sqlx::Error| PgError::Db(DbError::query("provisioning", e));
    let role = Layout::role(node);
    let database = layout.database(node);
    let (password, salt) = generate_password().map_err(|_| PgError::Random)?;
    let scram = verifier(&password, &salt);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&database)
            .fetch_one(&mut *conn)
            .await
            .map_err(q)?;
    // The role first (the database's owner), then, for a new database, again to lock it down.
    ensure_node(conn, &role, &scram, &database).await?;
    if !exists {
        // CREATE DATABASE cannot run inside a function: the server quotes, we execute.
        let create: String =
            sqlx::query_scalar("SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)")
                .bind(&database)
                .bind(&role)
                .fetch_one(&mut *conn)
                .await
                .map_err(q)?;
        conn.execute(create.as_str()).await.map_err(q)?;
        ensure_node(conn, &role, &scram, &database).await?;
        tracing::info!(database = %database, role = %role, "created node database");
    }
    pgpass::write(
        &layout.pgpass(node),
        &Credentials {
            host: LISTEN_ADDRESS.to_owned(),
            port: layout.port,
            database,
            user: role,
            password,
        },
    )?;
    Ok(())
}

async fn ensure_node(
    conn: &mut PgConnection,
    role: &str,
    scram: &str,
    database: &str,
) -> Result<(), PgError> {
    sqlx::query("SELECT pg_temp.enclave_ensure_node($1, $2, $3)")
        .bind(role)
        .bind(scram)
        .bind(database)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| PgError::Db(DbError::query("provisioning", e)))
}
