//! Errors of the key store. Every variant names the file or directory at fault, and none carries
//! key material: a malformed key file is described by its shape, never by its content.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `error` is part of the message rather than a `#[source]`, so `{:#}` does not print it twice.
    #[error("{context} {}: {error}", .path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error(
        "{}: {reason}; refusing to replace it, as a new key would change this node's identity: \
         restore the file from a backup",
        .path.display()
    )]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "{} is missing although {} exists, so this node's keys were generated before: restore \
         the file from a backup (a new key would change the node's identity)",
        .path.display(), .public.display()
    )]
    Missing { path: PathBuf, public: PathBuf },
    #[error(
        "{} does not match the private keys beside it (differs in {fields}): restore the \
         matching files from a backup",
        .path.display()
    )]
    PublicMismatch { path: PathBuf, fields: String },
    #[error("{}: not a valid public key file: {reason}", .path.display())]
    PublicMalformed { path: PathBuf, reason: String },
    #[error("{}: no keys yet; run `enclave keys init`", .path.display())]
    NotGenerated { path: PathBuf },
    #[error("cannot draw random bytes from the operating system for {}", .path.display())]
    Random { path: PathBuf },
    #[error("{}: node numbers start at 1", .path.display())]
    NodeZero { path: PathBuf },
}

impl KeyError {
    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            KeyError::Io { path, .. }
            | KeyError::Malformed { path, .. }
            | KeyError::Missing { path, .. }
            | KeyError::PublicMismatch { path, .. }
            | KeyError::PublicMalformed { path, .. }
            | KeyError::NotGenerated { path }
            | KeyError::Random { path }
            | KeyError::NodeZero { path } => path,
        }
    }

    pub(crate) fn io(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> KeyError {
        let path = path.to_owned();
        move |error| KeyError::Io {
            context,
            path,
            error,
        }
    }

    pub(crate) fn malformed(path: &Path, reason: impl Into<String>) -> KeyError {
        KeyError::Malformed {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}
