//! The OS account the server runs as: `postgres` when we are root (PostgreSQL refuses to run as
//! root), else whoever runs us (local mode).

use std::path::Path;

use nix::unistd::{chown, Gid, Uid, User};

use super::error::PgError;

#[derive(Debug, Clone)]
pub struct Account {
    pub uid: Uid,
    pub gid: Gid,
    /// Only when we must switch to it.
    pub switch: bool,
}

impl Account {
    pub fn for_server() -> Result<Self, PgError> {
        if !Uid::effective().is_root() {
            return Ok(Self {
                uid: Uid::effective(),
                gid: Gid::effective(),
                switch: false,
            });
        }
        let user = User::from_name("postgres")
            .map_err(|e| PgError::Privileges(format!("cannot look up the postgres user: {e}")))?
            .ok_or(PgError::NoPostgresUser)?;
        Ok(Self {
            uid: user.uid,
            gid: user.gid,
            switch: true,
        })
    }

    /// Gives `path` to the account (a no-op when we already are it).
    pub fn own(&self, path: &Path) -> Result<(), PgError> {
        if !self.switch {
            return Ok(());
        }
        chown(path, Some(self.uid), Some(self.gid)).map_err(|e| {
            PgError::Privileges(format!("cannot chown {} to postgres: {e}", path.display()))
        })
    }

    /// Drops this process to the account for good: groups, then gid, then uid.
    pub fn become_it(&self) -> Result<(), PgError> {
        if !self.switch {
            return Ok(());
        }
        let fail = |what: &str, e: nix::Error| {
            PgError::Privileges(format!("cannot drop privileges ({what}): {e}"))
        };
        nix::unistd::setgroups(&[self.gid]).map_err(|e| fail("setgroups", e))?;
        nix::unistd::setgid(self.gid).map_err(|e| fail("setgid", e))?;
        nix::unistd::setuid(self.uid).map_err(|e| fail("setuid", e))?;
        Ok(())
    }
}
