//! Spawning supervised processes and reaping every child, orphans included.
//!
//! One reaper owns `waitpid(-1)`: a PID 1 must reap orphans, and a second waiter (such as
//! `std::process::Child::wait`) would have its statuses stolen. Children are therefore never
//! waited for directly; the reaper hands each status to whoever spawned that pid. Spawning and
//! registering happen under the reaper's lock, so a child that dies at once cannot be reaped
//! before its waiter is registered.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

use crate::service::state::Exit;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Spawn {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    /// s6 readiness: the child gets the write end of a pipe on this descriptor.
    pub notification_fd: Option<i32>,
}

/// A running child: its pid (also its process group) and where its exit status will arrive.
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    pub exit: oneshot::Receiver<Exit>,
    /// The read end of the readiness pipe, when `notification_fd` was asked for.
    pub notification: Option<OwnedFd>,
}

#[derive(Default)]
struct Waiters {
    pending: HashMap<Pid, oneshot::Sender<Exit>>,
}

/// The one place that waits for children. There is one per process ([`Reaper::global`]): two
/// reapers would steal each other's statuses.
#[derive(Default)]
pub struct Reaper {
    waiters: Mutex<Waiters>,
}

impl Reaper {
    pub fn global() -> &'static Reaper {
        static REAPER: OnceLock<Reaper> = OnceLock::new();
        REAPER.get_or_init(Reaper::default)
    }

    /// Starts `spec` in its own process group with stdin from /dev/null and stdout and stderr
    /// on `output` (the write end of the service's log pipe).
    pub fn spawn(&self, spec: &Spawn, output: &OwnedFd) -> io::Result<Child> {
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .current_dir(&spec.cwd)
            .env_clear()
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(output.try_clone()?))
            .stderr(Stdio::from(output.try_clone()?))
            .process_group(0);
        let (notification, notify_write) = match spec.notification_fd {
            Some(target) => {
                let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                let raw = write.as_raw_fd();
                // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
                unsafe {
                    command.pre_exec(move || place_fd(raw, target));
                }
                (Some(read), Some(write))
            }
            None => (None, None),
        };
        let mut waiters = self.lock();
        let child = command.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        // The std handle would only offer wait(), which the reaper does instead.
        drop(child);
        let (tx, rx) = oneshot::channel();
        waiters.pending.insert(pid, tx);
        drop(waiters);
        drop(notify_write);
        Ok(Child {
            pid,
            exit: rx,
            notification,
        })
    }

    /// Reaps every child that has exited and delivers the statuses of the ones we spawned.
    /// Orphans re-parented to us (as PID 1 or subreaper) are reaped and forgotten.
    pub fn reap(&self) {
        loop {
            let mut waiters = self.lock();
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed");
                    return;
                }
                Ok(status) => status,
            };
            let (pid, exit) = match status {
                WaitStatus::Exited(pid, code) => (pid, Exit::Code(code)),
                WaitStatus::Signaled(pid, signal, _) => (pid, Exit::Signal(signal as i32)),
                _ => continue,
            };
            match waiters.pending.remove(&pid) {
                Some(tx) => {
                    let _ = tx.send(exit);
                }
                None => tracing::debug!(pid = pid.as_raw(), %exit, "reaped an orphan"),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Puts `fd` on `target` in the child, without close-on-exec.
fn place_fd(fd: i32, target: i32) -> io::Result<()> {
    // SAFETY: plain syscalls on descriptors this process owns.
    unsafe {
        if fd == target {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        } else if libc::dup2(fd, target) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends `signal` to one process; a process that is already gone is not an error.
pub fn signal_process(pid: Pid, signal: Signal) {
    match kill(pid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pid = pid.as_raw(), %signal, error = %e, "kill failed"),
    }
}

/// Sends `signal` to a whole process group; an empty group is not an error.
pub fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid = pgid.as_raw(), %signal, error = %e, "killpg failed"),
    }
}

/// A pipe for a service's output: (read end for the log hub, write end for children).
pub fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Outside PID 1, become the reaper of orphaned descendants so local runs behave like the
/// container.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
