//! Text an attacker would put where the enclave might print it: line breaks that start a forged
//! log line, terminal escape sequences, invisible reordering characters, and sheer length.

use enclave::logging::untrusted::needs_escape;

/// Each forges a line starting with `FORGED`, or tries to.
pub const HOSTILE_TEXTS: [&str; 6] = [
    "x\nFORGED 2025-01-01T00:00:00.000000Z ERROR the enclave was compromised",
    "x\r\nFORGED \u{1b}[31mred\u{1b}[0m",
    "x\u{1b}[2K\rFORGED over the real line",
    "x\u{9b}2J\u{85}FORGED after a C1 control and a next-line",
    "x\u{2028}FORGED after a line separator \u{202e}desrever",
    "x\u{0}\u{7}\u{8}\u{7f}FORGED with nul, bell, backspace and delete",
];

/// A name far longer than any log line should carry.
pub fn long_text() -> String {
    format!("long{}", "y".repeat(100_000))
}

/// Fails when `output` holds a raw control character other than the newlines between lines (and
/// tabs), a line that starts with the forged text, or a line longer than `max_line` characters.
pub fn assert_escaped(what: &str, output: &str, max_line: usize) {
    // Not `lines()`: it would hide a raw `\r` before a newline.
    for (number, line) in output.split('\n').enumerate() {
        let raw: Vec<char> = line
            .chars()
            .filter(|&c| c != '\t' && needs_escape(c))
            .collect();
        assert!(
            raw.is_empty(),
            "{what}: line {number} holds raw {raw:?}: {line:?}"
        );
        assert!(
            !line.trim_start().starts_with("FORGED"),
            "{what}: line {number} is forged: {line:?}"
        );
        let length = line.chars().count();
        assert!(
            length <= max_line,
            "{what}: line {number} is {length} characters long"
        );
    }
}
