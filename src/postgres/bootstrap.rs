//! `enclave postgres bootstrap`: create the cluster when the data directory is empty, and keep
//! its settings and client authentication as this project wants them. Idempotent: on an existing
//! cluster with unchanged settings it changes nothing.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::account::Account;
use super::binaries::Binaries;
use super::error::PgError;
use super::layout::{Layout, LISTEN_ADDRESS, SUPERUSER};
use super::scram::generate_password;
use crate::config::secret::Secret;

/// The include line added once to postgresql.conf; our settings live in their own file so
/// that initdb's file stays as initdb wrote it.
const INCLUDE_LINE: &str = "include_if_exists = 'enclave.conf'";
const SETTINGS_FILE: &str = "enclave.conf";

/// What the data directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    Missing,
    Empty,
    Cluster {
        major: u32,
    },
    /// Not empty and not a cluster: never touched.
    Foreign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub created: bool,
    pub files_changed: bool,
}

pub fn inspect(dir: &Path) -> Result<DataDir, PgError> {
    let mut entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DataDir::Missing),
        Err(e) => return Err(PgError::io("cannot read data directory", dir)(e)),
    };
    if entries.next().is_none() {
        return Ok(DataDir::Empty);
    }
    match fs::read_to_string(dir.join("PG_VERSION")) {
        Ok(v) => match v.trim().parse() {
            Ok(major) if dir.join("global").is_dir() => Ok(DataDir::Cluster { major }),
            _ => Ok(DataDir::Foreign),
        },
        Err(_) => Ok(DataDir::Foreign),
    }
}

pub fn bootstrap(
    layout: &Layout,
    binaries: &Binaries,
    account: &Account,
) -> Result<Outcome, PgError> {
    let dir = &layout.data_dir;
    let created = match inspect(dir)? {
        DataDir::Foreign => return Err(PgError::NotACluster(dir.display().to_string())),
        DataDir::Cluster { major } if major != binaries.major => {
            return Err(PgError::VersionMismatch {
                dir: dir.display().to_string(),
                cluster: major,
                binaries: binaries.major,
            })
        }
        DataDir::Cluster { .. } => {
            account.check_reaches(dir, &binaries.initdb())?;
            if !layout.superuser_password_file.exists() {
                return Err(PgError::MissingSuperuserPassword {
                    dir: dir.display().to_string(),
                    file: layout.superuser_password_file.display().to_string(),
                });
            }
            false
        }
        DataDir::Missing | DataDir::Empty => {
            let password = superuser_password(layout)?;
            initdb(layout, binaries, account, &password)?;
            true
        }
    };
    let mut files_changed = ensure_include(dir, account)?;
    files_changed |= write_if_changed(&dir.join(SETTINGS_FILE), &settings(layout), account)?;
    files_changed |= write_if_changed(&dir.join("pg_hba.conf"), HBA, account)?;
    Ok(Outcome {
        created,
        files_changed,
    })
}

/// The superuser's password: read if it exists (a cluster and its password persist together),
/// else generated and stored 0600 with the persistent secrets.
pub fn superuser_password(layout: &Layout) -> Result<Secret<String>, PgError> {
    if let Some(password) = superuser_password_if_present(layout)? {
        return Ok(password);
    }
    let file = &layout.superuser_password_file;
    let (password, _) = generate_password().map_err(|_| PgError::Random)?;
    if let Some(parent) = file.parent() {
        fs::create_dir_all(parent).map_err(PgError::io("cannot create", parent))?;
        fs::set_permissions(parent, fs::Permissions::from_mode(0o700))
            .map_err(PgError::io("cannot chmod", parent))?;
    }
    write_private(file, password.expose().as_bytes())?;
    Ok(password)
}

/// The superuser's password if the cluster has one yet (readers such as the metrics exporter
/// must never create it).
pub fn superuser_password_if_present(layout: &Layout) -> Result<Option<Secret<String>>, PgError> {
    let file = &layout.superuser_password_file;
    match fs::read_to_string(file) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(Secret::new(text.trim().to_owned()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PgError::io("cannot read", file)(e)),
    }
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), PgError> {
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(PgError::io("cannot create", path))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(PgError::io("cannot write", path))
}

fn initdb(
    layout: &Layout,
    binaries: &Binaries,
    account: &Account,
    password: &Secret<String>,
) -> Result<(), PgError> {
    let dir = &layout.data_dir;
    account.private_dir(dir, "cannot create data directory", &binaries.initdb())?;
    // initdb runs as the server's account and must read the password: a private scratch
    // directory of that account, removed right after.
    let scratch = tempfile::Builder::new()
        .prefix(".enclave-initdb-")
        .tempdir_in(dir.parent().unwrap_or(Path::new("/tmp")))
        .map_err(PgError::io("cannot create a scratch directory beside", dir))?;
    account.own(scratch.path())?;
    let pwfile = scratch.path().join("pwfile");
    write_private(&pwfile, password.expose().as_bytes())?;
    account.own(&pwfile)?;
    let mut command = Command::new(binaries.initdb());
    command
        .arg("-D")
        .arg(dir)
        .args([
            "--data-checksums",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--username",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    if account.switch {
        command.uid(account.uid.as_raw()).gid(account.gid.as_raw());
    }
    let output = command
        .output()
        .map_err(PgError::io("cannot run", &binaries.initdb()))?;
    drop(scratch);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(PgError::Initdb {
            status: output.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    tracing::info!(dir = %dir.display(), major = binaries.major, "created the PostgreSQL cluster (data checksums on)");
    Ok(())
}

fn ensure_include(dir: &Path, account: &Account) -> Result<bool, PgError> {
    let conf = dir.join("postgresql.conf");
    let text = fs::read_to_string(&conf).map_err(PgError::io("cannot read", &conf))?;
    if text.lines().any(|l| l.trim() == INCLUDE_LINE) {
        return Ok(false);
    }
    let mut updated = text;
    if !updated.ends_with('\n') {
        updated.push('\n');
    }
    updated.push_str("\n# Settings managed by enclave (rewritten at every bootstrap).\n");
    updated.push_str(INCLUDE_LINE);
    updated.push('\n');
    write_if_changed(&conf, &updated, account)
}

/// Replaces a file only when its content differs, keeping it private to the server's account.
fn write_if_changed(path: &Path, contents: &str, account: &Account) -> Result<bool, PgError> {
    if fs::read_to_string(path).is_ok_and(|current| current == contents) {
        return Ok(false);
    }
    let tmp = path.with_extension("enclave-tmp");
    write_private(&tmp, contents.as_bytes())?;
    account.own(&tmp)?;
    fs::rename(&tmp, path).map_err(PgError::io("cannot replace", path))?;
    Ok(true)
}

/// Only password (SCRAM) authentication, only over the local socket and 127.0.0.1: no trust,
/// no peer, no replication.
const HBA: &str = "\
# Managed by enclave (rewritten at every bootstrap). No trust, no replication.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
";

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The TEE settings of the original architecture (§3.2): crash-safe, bounded WAL, no
/// replication; listening on 127.0.0.1 only.
fn settings(layout: &Layout) -> String {
    format!(
        "\
# Managed by enclave (rewritten at every bootstrap).
listen_addresses = {listen}
port = {port}
unix_socket_directories = {socket}
unix_socket_permissions = 0700
max_connections = 200
password_encryption = 'scram-sha-256'
fsync = on
full_page_writes = on
synchronous_commit = on
wal_level = replica
archive_mode = off
wal_keep_size = 0
max_wal_size = 256MB
min_wal_size = 64MB
checkpoint_timeout = 5min
checkpoint_completion_target = 0.9
shared_buffers = 128MB
autovacuum = on
max_wal_senders = 0
max_replication_slots = 0
logging_collector = off
log_destination = 'stderr'
log_statement = 'none'
log_line_prefix = '%m [%p] %q%u@%d '
",
        listen = quote(LISTEN_ADDRESS),
        port = layout.port,
        socket = quote(&layout.socket_dir.display().to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_told_apart() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        assert_eq!(inspect(&d.join("nope")).expect("inspect"), DataDir::Missing);
        fs::create_dir(d.join("empty")).expect("mkdir");
        assert_eq!(inspect(&d.join("empty")).expect("inspect"), DataDir::Empty);
        fs::create_dir_all(d.join("foreign")).expect("mkdir");
        fs::write(d.join("foreign/notes.txt"), "mine").expect("write");
        assert_eq!(
            inspect(&d.join("foreign")).expect("inspect"),
            DataDir::Foreign
        );
        fs::create_dir_all(d.join("cluster/global")).expect("mkdir");
        fs::write(d.join("cluster/PG_VERSION"), "15\n").expect("write");
        assert_eq!(
            inspect(&d.join("cluster")).expect("inspect"),
            DataDir::Cluster { major: 15 }
        );
    }

    #[test]
    fn settings_quote_paths() {
        let layout = Layout {
            data_dir: "/d".into(),
            socket_dir: "/tmp/it's".into(),
            node_secrets_dir: "/s".into(),
            superuser_password_file: "/p".into(),
            port: 5433,
            database_prefix: "x".into(),
        };
        let s = settings(&layout);
        assert!(s.contains("unix_socket_directories = '/tmp/it''s'"));
        assert!(s.contains("port = 5433"));
        assert!(s.contains("listen_addresses = '127.0.0.1'"));
    }
}
