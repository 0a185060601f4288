//! Finding the PostgreSQL server binaries: `PG_BIN`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's layout), else `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

pub const MIN_MAJOR: u32 = 15;
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

#[derive(Debug, Error)]
pub enum BinariesError {
    #[error("no PostgreSQL server binaries found (looked in PG_BIN, {DEBIAN_ROOT}/<version>/bin and PATH); install the `postgresql` package")]
    NotFound,
    #[error("PG_BIN={0} does not contain `postgres` and `initdb`")]
    BadPgBin(String),
    #[error("cannot run {path} --version: {message}")]
    Version { path: String, message: String },
    #[error("PostgreSQL {found} at {dir} is too old: version {MIN_MAJOR} or newer is required")]
    TooOld { found: u32, dir: String },
}

/// A directory holding `postgres` and `initdb` of one major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub dir: PathBuf,
    pub major: u32,
}

impl Binaries {
    pub fn postgres(&self) -> PathBuf {
        self.dir.join("postgres")
    }

    pub fn initdb(&self) -> PathBuf {
        self.dir.join("initdb")
    }
}

pub fn locate() -> Result<Binaries, BinariesError> {
    let dir = match std::env::var_os("PG_BIN") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if !has_server(&dir) {
                return Err(BinariesError::BadPgBin(dir.display().to_string()));
            }
            dir
        }
        None => newest_debian(Path::new(DEBIAN_ROOT))
            .or_else(on_path)
            .ok_or(BinariesError::NotFound)?,
    };
    let major = major_version(&dir.join("postgres"))?;
    if major < MIN_MAJOR {
        return Err(BinariesError::TooOld {
            found: major,
            dir: dir.display().to_string(),
        });
    }
    Ok(Binaries { dir, major })
}

fn has_server(dir: &Path) -> bool {
    dir.join("postgres").is_file() && dir.join("initdb").is_file()
}

/// The highest numbered `<root>/<version>/bin` with a server in it.
fn newest_debian(root: &Path) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| has_server(dir))
}

/// Parses `postgres (PostgreSQL) 15.18 (Debian …)` → 15.
pub fn parse_major(version_output: &str) -> Option<u32> {
    let after = version_output.split(')').nth(1)?.trim();
    after.split(['.', ' ']).next()?.parse().ok()
}

fn major_version(postgres: &Path) -> Result<u32, BinariesError> {
    let err = |message: String| BinariesError::Version {
        path: postgres.display().to_string(),
        message,
    };
    let output = Command::new(postgres)
        .arg("--version")
        .output()
        .map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_major(&text).ok_or_else(|| err(format!("unexpected output {:?}", text.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 17.2\n"), Some(17));
        assert_eq!(parse_major("postgres (PostgreSQL) 18beta1\n"), None);
        assert_eq!(parse_major("nonsense"), None);
    }

    #[test]
    fn the_newest_debian_version_wins() {
        let tmp = tempfile::tempdir().expect("tmp");
        for v in ["9", "15", "17"] {
            let bin = tmp.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).expect("mkdir");
            if v != "17" {
                std::fs::write(bin.join("postgres"), "").expect("write");
                std::fs::write(bin.join("initdb"), "").expect("write");
            }
        }
        // 17 has no server in it, so 15 is the newest usable one.
        assert_eq!(newest_debian(tmp.path()), Some(tmp.path().join("15/bin")));
    }
}
