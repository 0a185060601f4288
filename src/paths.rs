//! Where things live. In the container every path is absolute; a local run maps them all under
//! one root directory (`--root`, env `ENCLAVE_ROOT`) so that no root access is needed.

use std::path::{Path, PathBuf};

pub const CONFIGURATION_PATH: &str = "/sp/configurations/configuration.json";
pub const CONFIGURATION_PUBLIC_KEY_PATH: &str = "/etc/enclave/configuration.pub";

/// The filesystem root the enclave runs in: `/` in the container, a directory in a local run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Default for Root {
    fn default() -> Self {
        Self(PathBuf::from("/"))
    }
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// Maps an absolute container path under the root: `/sp/x` → `<root>/sp/x`.
    pub fn map(&self, absolute: impl AsRef<Path>) -> PathBuf {
        let p = absolute.as_ref();
        self.0.join(p.strip_prefix("/").unwrap_or(p))
    }

    pub fn configuration(&self) -> PathBuf {
        self.map(CONFIGURATION_PATH)
    }

    pub fn configuration_public_key(&self) -> PathBuf {
        self.map(CONFIGURATION_PUBLIC_KEY_PATH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_under_the_root() {
        assert_eq!(
            Root::default().configuration(),
            PathBuf::from(CONFIGURATION_PATH)
        );
        assert_eq!(
            Root::new("/tmp/x").configuration(),
            PathBuf::from("/tmp/x/sp/configurations/configuration.json")
        );
    }
}
