//! `enclave status --watch`: the enclave's state refreshed in place every second — services with
//! their state, restarts, CPU and memory; each feed's latest answer, round, age, on-chain answer
//! and whether they match, its health and its sources; the nodes and their peers; the
//! attestation. On a terminal the frame is redrawn in place with coloured state words; otherwise
//! (a pipe, a file) each frame is printed as plain text after the previous one.

pub mod render;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::exit;
use crate::paths::Root;
use crate::snapshot::Collector;

pub use render::{render, Style};

/// Each local request of a refresh gets at most this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Home, then each line followed by "clear to the end of the line", then "clear below": the
/// frame replaces the previous one without flicker.
fn terminal_frame(text: &str) -> String {
    let mut out = String::from("\x1b[H");
    for line in text.lines() {
        out.push_str(line);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    out
}

/// Runs until SIGINT/SIGTERM (or stdout closes); returns the exit code.
pub fn run(root: Root, config: Config, interval: Duration) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(watch(root, config, interval))
}

async fn watch(root: Root, config: Config, interval: Duration) -> anyhow::Result<u8> {
    let collector = Collector::new(root, Arc::new(config), REQUEST_TIMEOUT)?;
    let stop = crate::service::readiness::termination()?;
    tokio::pin!(stop);
    let tty = std::io::stdout().is_terminal();
    let color = tty
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb");
    let mut ticker = tokio::time::interval(interval.max(MIN_INTERVAL));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if tty {
        print_or_stop("\x1b[2J")?;
    }
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stop => return Ok(exit::OK),
        }
        let snapshot = tokio::select! {
            s = collector.collect() => s,
            _ = &mut stop => return Ok(exit::OK),
        };
        let style = Style {
            color,
            width: if tty { terminal_width() } else { None },
        };
        let text = render(&snapshot, style);
        let frame = if tty {
            terminal_frame(&text)
        } else {
            format!("{text}\n\n")
        };
        if !print_or_stop(&frame)? {
            return Ok(exit::OK);
        }
    }
}

/// Writes and flushes; `Ok(false)` when the reader has gone (`| head`).
fn print_or_stop(text: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::anyhow!("cannot write to stdout: {e}")),
    }
}

fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; stdout is a terminal here.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_frame_redraws_in_place() {
        assert_eq!(terminal_frame("a\nbc"), "\x1b[Ha\x1b[K\nbc\x1b[K\n\x1b[J");
    }
}
