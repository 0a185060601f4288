//! Text from outside the trust boundary, made fit for a log line or a terminal.
//!
//! Anything an attacker may have written — configuration member names and values (the members
//! beside `solution` are not even signed), error messages that quote input, HTTP request data,
//! upstream answers, peer data, the environment — can carry a newline that starts a forged log
//! line, or an escape sequence that rewrites the operator's terminal. [`Untrusted`] shows such
//! text with every control character escaped and its length bounded, so it can never become
//! more than a part of one line.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

/// Characters shown by default before the rest is cut off.
pub const DEFAULT_MAX_CHARS: usize = 256;

/// Text shown with control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`, …) and at most a
/// bounded number of characters, the cut marked with how much was left out.
///
/// `Display` writes the escaped text; `Debug` the same between double quotes.
#[derive(Clone, Copy)]
pub struct Untrusted<T> {
    text: T,
    max_chars: usize,
}

impl<T: AsRef<str>> Untrusted<T> {
    /// At most [`DEFAULT_MAX_CHARS`] characters.
    pub fn new(text: T) -> Self {
        Self::bounded(text, DEFAULT_MAX_CHARS)
    }

    /// At most `max_chars` characters.
    pub fn bounded(text: T, max_chars: usize) -> Self {
        Self { text, max_chars }
    }
}

impl Untrusted<String> {
    /// A path (a command-line or environment value, or a name read from a directory), lossily
    /// as UTF-8.
    pub fn path(path: &Path) -> Self {
        Self::bounded(path.to_string_lossy().into_owned(), 1024)
    }
}

/// Whether `c` must not reach a log line or a terminal as it is: C0 and C1 controls and DEL
/// (newlines, carriage returns, escape sequences), and the invisible characters that reorder
/// or break what a terminal or an editor shows (bidirectional overrides, line separators).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// Writes `c`, escaped when [`needs_escape`] says so.
pub fn write_char(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    if !needs_escape(c) {
        return out.write_char(c);
    }
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c => write!(out, "\\u{{{:x}}}", u32::from(c)),
    }
}

impl<T: AsRef<str>> fmt::Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text.as_ref();
        for (shown, (at, c)) in text.char_indices().enumerate() {
            if shown == self.max_chars {
                return write!(f, "…[+{} bytes]", text.len() - at);
            }
            write_char(f, c)?;
        }
        Ok(())
    }
}

impl<T: AsRef<str>> fmt::Debug for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// `text` with every character that [`needs_escape`] escaped except those `keep` lets through,
/// whole (no bound); borrowed when nothing needed escaping.
pub fn escape_all(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let passes = |c: char| !needs_escape(c) || keep(c);
    if text.chars().all(passes) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if passes(c) {
            out.push(c);
        } else {
            // Writing into a String cannot fail.
            let _ = write_char(&mut out, c);
        }
    }
    Cow::Owned(out)
}

/// Escapes `text` like [`Untrusted`], keeping at most `max_chars` characters.
pub fn escaped(text: &str, max_chars: usize) -> String {
    Untrusted::bounded(text, max_chars).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else_is_changed() {
        let cases = [
            ("plain text, ünïcödé €", "plain text, ünïcödé €"),
            ("a\nb", "a\\nb"),
            ("a\r\nb\tc", "a\\r\\nb\\tc"),
            ("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m"),
            ("bell\u{7}del\u{7f}nul\0", "bell\\u{7}del\\u{7f}nul\\u{0}"),
            ("c1 csi \u{9b}2J", "c1 csi \\u{9b}2J"),
            ("rtl \u{202e}gnp.exe", "rtl \\u{202e}gnp.exe"),
            ("line\u{2028}separator", "line\\u{2028}separator"),
            ("back\\slash", "back\\slash"),
        ];
        for (input, shown) in cases {
            assert_eq!(Untrusted::new(input).to_string(), shown, "{input:?}");
        }
    }

    #[test]
    fn long_text_is_cut_with_a_marker_saying_how_much_was_left_out() {
        let long = "x".repeat(300);
        let shown = Untrusted::new(&long).to_string();
        assert_eq!(shown, format!("{}…[+44 bytes]", "x".repeat(256)));
        assert_eq!(Untrusted::bounded("héllo", 2).to_string(), "hé…[+3 bytes]");
        assert_eq!(Untrusted::bounded("abc", 3).to_string(), "abc");
        assert_eq!(Untrusted::bounded("abc", 0).to_string(), "…[+3 bytes]");
    }

    #[test]
    fn the_bound_counts_characters_before_escaping() {
        // 10 newlines shown as 20 characters: still whole, never cut inside an escape.
        let shown = Untrusted::bounded("\n".repeat(10), 10).to_string();
        assert_eq!(shown, "\\n".repeat(10));
        let shown = Untrusted::bounded("\n".repeat(11), 10).to_string();
        assert_eq!(shown, format!("{}…[+1 bytes]", "\\n".repeat(10)));
    }

    #[test]
    fn debug_quotes_the_escaped_text() {
        assert_eq!(format!("{:?}", Untrusted::new("a\"b\n")), "\"a\"b\\n\"");
    }

    #[test]
    fn escape_all_keeps_what_it_is_told_and_borrows_clean_text() {
        assert!(matches!(
            escape_all("clean\ttext", |c| c == '\t'),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_all("a\tb\rc\u{1b}", |c| c == '\t'),
            "a\tb\\rc\\u{1b}"
        );
    }

    #[test]
    fn paths_are_escaped_too() {
        let path = Path::new("/tmp/evil\nname");
        assert_eq!(Untrusted::path(path).to_string(), "/tmp/evil\\nname");
    }
}
