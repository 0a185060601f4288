//! The OS account the server runs as: `postgres` when we are root (PostgreSQL refuses to run as
//! root), else whoever runs us (local mode).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

    /// Makes `dir` (created if missing, `create_error` when it cannot be) private to the
    /// account, mode 0700, and checks that the account reaches it with `program`.
    pub fn private_dir(
        &self,
        dir: &Path,
        create_error: &'static str,
        program: &Path,
    ) -> Result<(), PgError> {
        fs::create_dir_all(dir).map_err(PgError::io(create_error, dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(PgError::io("cannot chmod", dir))?;
        self.own(dir)?;
        self.check_reaches(dir, program)
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

    /// Fails with a one-line explanation when the account cannot reach `dir` (a clone in a 0700
    /// home directory, say): without this, initdb or the server fails later with a bare
    /// "Permission denied" on a file inside it. `program` is any binary the account may run
    /// (`initdb`), started with `--version`.
    pub fn check_reaches(&self, dir: &Path, program: &Path) -> Result<(), PgError> {
        if !self.switch {
            return Ok(());
        }
        // std's Command switches to the account before it changes into `dir`, so the spawn
        // fails with EACCES exactly when the account cannot get there: the kernel's answer,
        // ACLs included, rather than a guess from mode bits.
        let probe = Command::new(program)
            .arg("--version")
            .current_dir(dir)
            .uid(self.uid.as_raw())
            .gid(self.gid.as_raw())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match probe {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(PgError::Unreachable {
                dir: dir.display().to_string(),
                blocker: blocking_ancestor(dir, self.uid.as_raw(), self.gid.as_raw())
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "a directory on the way (ACL or mount option)".to_owned()),
            }),
            Err(e) => Err(PgError::io("cannot run", program)(e)),
        }
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

/// The first directory on the way to a path that an account may not pass through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub dir: PathBuf,
    pub mode: u32,
    pub owner: u32,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (mode {:04o}, owner uid {})",
            self.dir.display(),
            self.mode & 0o7777,
            self.owner
        )
    }
}

/// Whether an account (`uid`, primary group `gid`, no supplementary groups: what
/// [`Account::become_it`] leaves) may search a directory with `mode` owned by `owner`:`group`.
/// The classic check: the owner's bits if it is the owner, else the group's if it is the group,
/// else the others'.
pub fn may_traverse(mode: u32, owner: u32, group: u32, uid: u32, gid: u32) -> bool {
    let bit = if uid == owner {
        0o100
    } else if gid == group {
        0o010
    } else {
        0o001
    };
    mode & bit != 0
}

/// The first ancestor of `path` (or `path` itself) that the account may not traverse, judged
/// by mode bits; `None` when none is found that way.
pub fn blocking_ancestor(path: &Path, uid: u32, gid: u32) -> Option<Blocker> {
    let mut dirs: Vec<&Path> = path.ancestors().collect();
    dirs.reverse();
    dirs.into_iter().find_map(|dir| {
        let meta = fs::metadata(dir).ok()?;
        (!may_traverse(meta.mode(), meta.uid(), meta.gid(), uid, gid)).then(|| Blocker {
            dir: dir.to_path_buf(),
            mode: meta.mode(),
            owner: meta.uid(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn traversal_follows_the_owner_then_the_group_then_the_others() {
        // (mode, owner, group, uid, gid, may traverse)
        let table = [
            (0o700, 0, 0, 101, 104, false), // root's home, postgres outside it
            (0o711, 0, 0, 101, 104, true),  // search-only for others
            (0o755, 0, 0, 101, 104, true),
            (0o750, 0, 104, 101, 104, true),  // postgres's group may
            (0o705, 0, 104, 101, 104, false), // the group's bits win over the others'
            (0o700, 101, 0, 101, 104, true),  // its own directory
            (0o070, 101, 104, 101, 104, false), // the owner's bits win over the group's
            (0o1777, 0, 0, 101, 104, true),   // /tmp, /var/tmp
            (0o766, 0, 0, 101, 104, false),   // readable, not searchable
        ];
        for (mode, owner, group, uid, gid, want) in table {
            assert_eq!(
                may_traverse(mode, owner, group, uid, gid),
                want,
                "mode {mode:o} owner {owner} group {group} for {uid}:{gid}"
            );
        }
    }

    #[test]
    fn the_blocking_ancestor_is_the_first_closed_directory_on_the_way() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("home");
        let deep = home.join("clone/.local/root");
        fs::create_dir_all(&deep).expect("mkdir");
        for dir in [tmp.path(), deep.as_path()] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod");
        let me = nix::unistd::Uid::effective().as_raw();
        let stranger = me.wrapping_add(4242);
        let found = blocking_ancestor(&deep, stranger, stranger).expect("a blocker");
        assert_eq!(found.dir, home);
        assert_eq!(found.mode & 0o7777, 0o700);
        assert!(found.to_string().contains("mode 0700"), "{found}");
        assert_eq!(blocking_ancestor(&deep, me, me), None, "the owner passes");
    }
}
