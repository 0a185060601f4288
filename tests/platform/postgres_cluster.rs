//! The embedded PostgreSQL, real server from Debian's packages, run by the real supervisor with
//! the repository's service definitions: bootstrap, isolation per node, restart, clean shutdown.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::harness::{free_port, wait_until, Enclave};
use common::{assert_contains, code, stderr};
use enclave::config::secret::Secret;
use enclave::paths::Root;
use enclave::postgres::layout::Credentials;
use enclave::postgres::{binaries, pgpass};
use enclave::service::state::Status;
use nix::sys::signal::Signal;
use serde_json::json;

const T: Duration = Duration::from_secs(120);

fn postgres_enclave(nodes: u32) -> (Enclave, u16) {
    let mut e = Enclave::new();
    e.use_repo_services();
    let port = free_port();
    configure(&e, port, nodes);
    (e, port)
}

fn configure(e: &Enclave, port: u16, nodes: u32) {
    e.configure(|s| {
        s["pgPort"] = json!(port);
        s["totalNodes"] = json!(nodes.to_string());
        let all: Vec<String> = (1..=nodes).map(|i| i.to_string()).collect();
        s["nodesList"] = json!(all.join(" "));
        s["primaryNodes"] = json!(all.join(" "));
        // Nodes 2..N are oracles; the schedule must not name more stages than oracles.
        s["consensus"]["transmissionSchedule"] = json!([1, 2, 2, 2]);
    });
}

fn boot(e: &mut Enclave) {
    e.start(&["--only", "postgres-init"]);
    e.wait_status("postgres-init", Status::Finished, T);
    assert_eq!(
        e.state("postgres-bootstrap").expect("state").status,
        Status::Finished
    );
    assert_eq!(e.state("postgres").expect("state").status, Status::Up);
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Opens and closes a connection: Ok when the credentials reach the database.
fn connect(c: &Credentials) -> Result<(), String> {
    use sqlx::Connection;
    block_on(async {
        let conn =
            sqlx::PgConnection::connect_with(&enclave::postgres::db::connect_options(c)).await?;
        conn.close().await
    })
    .map_err(|e| e.to_string())
}

fn query_one(c: &Credentials, sql: &str) -> String {
    use sqlx::Connection;
    block_on(async {
        let mut conn = sqlx::PgConnection::connect_with(&enclave::postgres::db::connect_options(c))
            .await
            .expect("connects");
        sqlx::query_scalar::<_, String>(sql)
            .fetch_one(&mut conn)
            .await
            .expect("query")
    })
}

fn node_credentials(e: &Enclave, node: u32) -> Credentials {
    pgpass::read(
        &e.root
            .join(format!("run/enclave/secrets/node-{node}.pgpass")),
    )
    .expect("pgpass")
}

fn superuser(e: &Enclave, port: u16) -> Credentials {
    let password = fs::read_to_string(e.root.join("sp/secrets/postgres/superuser.password"))
        .expect("password");
    Credentials {
        host: "127.0.0.1".into(),
        port,
        database: "postgres".into(),
        user: "postgres".into(),
        password: Secret::new(password.trim().to_owned()),
    }
}

/// Local addresses of sockets listening on `port` (IPv4 and IPv6).
fn listeners(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                continue;
            };
            let Some((addr, p)) = local.split_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(p, 16) == Ok(port) {
                out.push(addr.to_owned());
            }
        }
    }
    out
}

fn controldata(e: &Enclave) -> String {
    let bins = binaries::locate().expect("postgres binaries");
    let out = Command::new(bins.dir.join("pg_controldata"))
        .arg(e.root.join("sp/postgresql/data"))
        .env("LC_ALL", "C")
        .output()
        .expect("pg_controldata");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn controldata_field(text: &str, field: &str) -> String {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .map(|v| v.trim_start_matches(':').trim().to_owned())
        })
        .unwrap_or_default()
}

fn enclave_cli(e: &Enclave, args: &[&str]) -> std::process::Output {
    let root = e.root.to_str().expect("utf-8").to_owned();
    let mut all = vec!["--root", root.as_str()];
    all.extend_from_slice(args);
    common::enclave(&all)
}

#[test]
fn a_cluster_boots_isolated_survives_a_crash_and_stops_cleanly() {
    let (mut e, port) = postgres_enclave(5);
    boot(&mut e);
    let su = superuser(&e, port);

    // Bootstrap's promises.
    assert_eq!(query_one(&su, "SHOW data_checksums"), "on");
    let addresses = listeners(port);
    assert!(!addresses.is_empty(), "nothing listens on {port}");
    assert!(
        addresses.iter().all(|a| a == "0100007F"),
        "listening beyond 127.0.0.1: {addresses:?}"
    );

    // One database per node, reachable by its own role only.
    for node in 1..=5 {
        let c = node_credentials(&e, node);
        let mode = fs::metadata(
            e.root
                .join(format!("run/enclave/secrets/node-{node}.pgpass")),
        )
        .expect("pgpass")
        .permissions()
        .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(c.database, format!("chainlink_node_{node}"));
        assert_eq!(c.user, format!("node_{node}"));
        connect(&c).unwrap_or_else(|err| panic!("node {node} cannot reach its database: {err}"));
    }
    let node2 = node_credentials(&e, 2);
    for other in ["chainlink_node_3", "postgres"] {
        let mut wrong_db = node2.clone();
        wrong_db.database = other.into();
        let err = connect(&wrong_db).expect_err("node 2 must not reach another database");
        assert_contains(&err, "permission denied");
    }
    let mut wrong_password = node2.clone();
    wrong_password.password = Secret::from("not-the-password");
    let err = connect(&wrong_password).expect_err("wrong password");
    assert_contains(&err, "password authentication failed");
    assert!(!err.contains("not-the-password"));

    // kill -9 of the postmaster: the supervisor restarts it and nodes connect again.
    let before = e.state("postgres").expect("state").pid.expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(before as i32), Signal::SIGKILL)
        .expect("kill");
    wait_until(T, "postgres restarted", || {
        e.state("postgres")
            .is_some_and(|s| s.status == Status::Up && s.pid.is_some_and(|p| p != before))
    });
    wait_until(T, "node 2 reconnects", || connect(&node2).is_ok());

    // SIGTERM: the cluster is shut down cleanly (no crash recovery on the next start).
    e.stop_cleanly(T);
    let control = controldata(&e);
    assert_eq!(
        controldata_field(&control, "Database cluster state"),
        "shut down",
        "{control}"
    );
    let identifier = controldata_field(&control, "Database system identifier");

    // Bootstrap again: same cluster, nothing changed.
    let data = e.root.join("sp/postgresql/data");
    let mtimes = |d: &Path| -> Vec<_> {
        ["postgresql.conf", "enclave.conf", "pg_hba.conf"]
            .iter()
            .map(|f| {
                fs::metadata(d.join(f))
                    .and_then(|m| m.modified())
                    .expect("mtime")
            })
            .collect()
    };
    let before = mtimes(&data);
    let out = enclave_cli(&e, &["postgres", "bootstrap"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("created=false") && stderr(&out).contains("settings_changed=false"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mtimes(&data), before);
    assert_eq!(
        controldata_field(&controldata(&e), "Database system identifier"),
        identifier
    );

    // A new boot of the same cluster does no recovery.
    let log = e.root.join("var/log/postgres/current");
    let log_before = fs::read_to_string(&log).unwrap_or_default().len();
    boot(&mut e);
    let log_text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !log_text[log_before..].contains("not properly shut down"),
        "{}",
        &log_text[log_before..]
    );
    e.stop_cleanly(T);
}

#[test]
fn seven_nodes_get_seven_databases_and_a_smaller_set_disables_the_rest() {
    let (mut e, port) = postgres_enclave(7);
    boot(&mut e);
    for node in 1..=7 {
        connect(&node_credentials(&e, node)).unwrap_or_else(|err| panic!("node {node}: {err}"));
    }
    let old_node6 = node_credentials(&e, 6);
    let old_node2 = node_credentials(&e, 2);
    e.stop_cleanly(T);

    configure(&e, port, 5);
    boot(&mut e);
    // Every boot rotates the passwords; the old one no longer works.
    let new_node2 = node_credentials(&e, 2);
    assert_ne!(new_node2.password.expose(), old_node2.password.expose());
    assert!(connect(&old_node2).is_err());
    connect(&new_node2).expect("node 2 with its new password");
    let err = connect(&old_node6).expect_err("node 6 is no longer configured");
    assert!(
        err.contains("not permitted to log in") || err.contains("password authentication failed"),
        "{err}"
    );
    e.stop_cleanly(T);
}

#[test]
fn a_non_empty_directory_that_is_not_a_cluster_is_refused_and_kept() {
    let (e, _) = postgres_enclave(5);
    let data = Root::new(&e.root).map("/sp/postgresql/data");
    fs::create_dir_all(&data).expect("mkdir");
    fs::write(data.join("precious.txt"), "do not delete").expect("write");
    let out = enclave_cli(&e, &["postgres", "bootstrap"]);
    assert_ne!(code(&out), 0);
    assert_contains(&stderr(&out), "is not a PostgreSQL cluster");
    assert_eq!(
        fs::read_to_string(data.join("precious.txt")).expect("kept"),
        "do not delete"
    );
}

#[test]
fn a_root_the_postgres_account_cannot_reach_is_refused_in_one_line_before_initdb() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: only root makes the enclave run PostgreSQL as another account");
        return;
    }
    // The root inside a directory of mode 0700, as a clone in root's home directory would be.
    let (e, _) = postgres_enclave(5);
    let home = e.root.parent().expect("the root's parent");
    fs::set_permissions(home, fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    let out = enclave_cli(&e, &["postgres", "bootstrap"]);
    assert_ne!(code(&out), 0);
    let text = stderr(&out);
    let error: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cannot reach"))
        .collect();
    assert_eq!(error.len(), 1, "{text}");
    assert!(
        error[0].contains(&format!("{} (mode 0700, owner uid 0)", home.display())),
        "names the directory in the way: {}",
        error[0]
    );
    let data = Root::new(&e.root).map("/sp/postgresql/data");
    assert!(
        !data.join("PG_VERSION").exists(),
        "initdb never ran: the refusal comes first"
    );
    // The server refuses the same way (its socket directory is under the same root).
    fs::set_permissions(home, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    let out = enclave_cli(&e, &["postgres", "bootstrap"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    fs::set_permissions(home, fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    let out = enclave_cli(&e, &["postgres", "run"]);
    assert_ne!(code(&out), 0);
    assert_contains(&stderr(&out), "cannot reach");
    fs::set_permissions(home, fs::Permissions::from_mode(0o755)).expect("chmod back");
}
