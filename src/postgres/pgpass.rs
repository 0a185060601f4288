//! Node credentials in libpq's `.pgpass` format (`host:port:database:user:password`), one file
//! per node, written 0600 and atomically.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use thiserror::Error;

use super::layout::Credentials;
use crate::config::secret::Secret;

#[derive(Debug, Error)]
pub enum PgpassError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("{path}: not a host:port:database:user:password line")]
    Format { path: String },
}

fn escape(field: &str) -> String {
    field.replace('\\', "\\\\").replace(':', "\\:")
}

/// Splits on unescaped `:` and unescapes.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), fields.last_mut()) {
                    last.push(next);
                }
            }
            ':' => fields.push(String::new()),
            other => {
                if let Some(last) = fields.last_mut() {
                    last.push(other);
                }
            }
        }
    }
    fields
}

pub fn write(path: &Path, c: &Credentials) -> Result<(), PgpassError> {
    let err = |source| PgpassError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let line = format!(
        "{}:{}:{}:{}:{}\n",
        escape(&c.host),
        c.port,
        escape(&c.database),
        escape(&c.user),
        escape(c.password.expose())
    );
    let tmp = path.with_extension("pgpass.tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(line.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

pub fn read(path: &Path) -> Result<Credentials, PgpassError> {
    let text = fs::read_to_string(path).map_err(|source| PgpassError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let format = || PgpassError::Format {
        path: path.display().to_string(),
    };
    let line = text.lines().next().ok_or_else(format)?;
    let mut fields = split_fields(line).into_iter();
    let (Some(host), Some(port), Some(database), Some(user), Some(password), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(format());
    };
    Ok(Credentials {
        host,
        port: port.parse().map_err(|_| format())?,
        database,
        user,
        password: Secret::new(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trips_with_escapes_and_is_private() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sub/node-2.pgpass");
        let c = Credentials {
            host: "127.0.0.1".into(),
            port: 5432,
            database: "chainlink_node_2".into(),
            user: "node_2".into(),
            password: Secret::from("a:b\\c"),
        };
        write(&path, &c).expect("write");
        assert_eq!(read(&path).expect("read"), c);
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::write(&path, "garbage\n").expect("write");
        assert!(matches!(read(&path), Err(PgpassError::Format { .. })));
    }
}
