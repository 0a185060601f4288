//! Termination signals that arrive before the supervisor's event loop listens: during
//! configuration verification, key generation and the identity (a few hundred ms, longer on a
//! slow first boot). Without a handler, SIGTERM's default action would kill PID 1 outright, with
//! whatever it had half-written. Recorded here from the first instruction of `enclave init`, such
//! a request is honoured as soon as the event loop runs: nothing is started, the exit is clean.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::Signal;

/// The last termination signal received (0: none).
static REQUESTED: AtomicI32 = AtomicI32::new(0);

const TERMINATION: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Records SIGTERM, SIGINT and SIGHUP from now on. Handlers registered later (tokio's) run too.
pub fn install() -> std::io::Result<()> {
    for signal in TERMINATION {
        let number = signal as i32;
        // SAFETY: the action only stores into an atomic, which is async-signal-safe.
        unsafe {
            signal_hook_registry::register(number, move || {
                REQUESTED.store(number, Ordering::SeqCst);
            })?;
        }
    }
    Ok(())
}

/// The termination signal received so far, if any.
pub fn requested() -> Option<Signal> {
    match REQUESTED.load(Ordering::SeqCst) {
        0 => None,
        number => Signal::try_from(number).ok(),
    }
}
