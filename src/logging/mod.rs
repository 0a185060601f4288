//! Structured logs with `tracing`, to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Every event is written as exactly one line: whatever a field or message holds, a control
//! character in it is escaped (see [`untrusted`]) and the line is bounded, so text from outside
//! (a configuration member name, an upstream error, a peer's data) can never start a line of
//! its own that looks like ours. Places that log such text also wrap it in [`Untrusted`], which
//! bounds each value on its own; this writer is the guarantee for the places that do not.

pub mod untrusted;

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub use untrusted::Untrusted;

/// The longest log line written; the rest of a longer event is cut, the cut marked. Room for
/// the longest legitimate event (the identity of 32 nodes, about 14 KB), and below the
/// supervisor's 16 KiB line limit: an event is never split into two lines of a service's log,
/// whose second could then start with whatever text an attacker placed there.
pub const MAX_EVENT_BYTES: usize = 15 * 1024;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never in captured service logs.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // A second initialisation (tests) is harmless, so its error is ignored on purpose.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(OneLinePerEvent {
            inner: std::io::stderr,
            colour: ansi,
        })
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// Wraps a writer so that each formatted event becomes exactly one bounded line.
struct OneLinePerEvent<M> {
    inner: M,
    /// Whether the formatter's own colour codes (ESC) pass; tracing escapes ESC in values.
    colour: bool,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLinePerEvent<M> {
    type Writer = OneLineWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter {
            inner: self.inner.make_writer(),
            colour: self.colour,
        }
    }
}

struct OneLineWriter<W> {
    inner: W,
    colour: bool,
}

impl<W: Write> Write for OneLineWriter<W> {
    /// tracing-subscriber formats an event into one buffer and hands it over with a single
    /// `write_all`, so each call here is one whole event.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(&one_line(buf, self.colour))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One formatted event as one line: the trailing newline kept, every other control character
/// escaped (ESC too unless `colour`), at most [`MAX_EVENT_BYTES`] before the newline.
fn one_line(event: &[u8], colour: bool) -> Vec<u8> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    let text = String::from_utf8_lossy(body);
    let passes = |c: char| !untrusted::needs_escape(c) || (colour && c == '\u{1b}');
    if body.len() <= MAX_EVENT_BYTES && text.chars().all(passes) {
        let mut line = text.into_owned().into_bytes();
        line.push(b'\n');
        return line;
    }
    let mut line = String::with_capacity(body.len().min(MAX_EVENT_BYTES) + 32);
    for (at, c) in text.char_indices() {
        if line.len() >= MAX_EVENT_BYTES {
            line.push_str(&format!("…[+{} bytes]", text.len() - at));
            break;
        }
        if passes(c) {
            line.push(c);
        } else {
            // Writing into a String cannot fail.
            let _ = untrusted::write_char(&mut line, c);
        }
    }
    line.push('\n');
    line.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: &str, colour: bool) -> String {
        String::from_utf8(one_line(event.as_bytes(), colour)).expect("utf-8")
    }

    #[test]
    fn an_event_with_newlines_inside_becomes_one_line() {
        let forged =
            "2025-01-01T00:00:00Z  WARN ignored field=x\n2025-01-01T00:00:00Z ERROR FORGED\r\n";
        let shown = line(forged, false);
        assert_eq!(shown.matches('\n').count(), 1, "{shown:?}");
        assert!(shown.ends_with("FORGED\\r\n"), "{shown:?}");
        assert!(shown.contains("x\\n2025"), "{shown:?}");
    }

    #[test]
    fn escape_sequences_are_escaped_unless_they_are_our_own_colours() {
        assert_eq!(line("a\u{1b}[2Jb\n", false), "a\\u{1b}[2Jb\n");
        assert_eq!(line("a\u{1b}[2mb\n", true), "a\u{1b}[2mb\n");
        assert_eq!(line("a\u{7}\u{9b}b\n", true), "a\\u{7}\\u{9b}b\n");
    }

    #[test]
    fn a_clean_line_is_unchanged() {
        assert_eq!(
            line("INFO all good: ünïcödé\n", false),
            "INFO all good: ünïcödé\n"
        );
    }

    #[test]
    fn a_huge_event_is_cut_with_a_marker() {
        let event = format!("{}\n", "y".repeat(MAX_EVENT_BYTES + 100));
        let shown = line(&event, false);
        assert!(
            shown.ends_with("…[+100 bytes]\n"),
            "{}",
            &shown[shown.len() - 40..]
        );
        assert_eq!(shown.matches('\n').count(), 1);
    }

    #[test]
    fn the_writer_passes_each_event_through_as_one_line() {
        let mut out = OneLineWriter {
            inner: Vec::new(),
            colour: false,
        };
        out.write_all(b"one\ntwo\n").expect("write");
        out.write_all(b"three\n").expect("write");
        assert_eq!(
            String::from_utf8(out.inner).expect("utf-8"),
            "one\\ntwo\nthree\n"
        );
    }
}
