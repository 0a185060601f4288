//! Turning a service's output into lines: at most `MAX_LINE` bytes each, and safe to show.

use std::borrow::Cow;

use crate::logging::untrusted::escape_all;

/// Longer lines are emitted in pieces of this size, so a line without `\n` cannot grow unbounded.
pub(super) const MAX_LINE: usize = 16 * 1024;

/// A line of a service's output as it is kept and shown: UTF-8 (invalid bytes replaced) with
/// control characters other than tab escaped, so that no output (a PostgreSQL message quoting a
/// client's input, a stray escape sequence) can rewrite the terminal or fake a line break
/// within the container's stdout or the log files.
pub(super) fn shown(line: &[u8]) -> Cow<'_, str> {
    match String::from_utf8_lossy(line) {
        Cow::Borrowed(text) => escape_all(text, |c| c == '\t'),
        Cow::Owned(text) => Cow::Owned(escape_all(&text, |c| c == '\t').into_owned()),
    }
}

/// Cuts a byte stream into lines of at most `MAX_LINE` bytes, without their `\n`.
#[derive(Default)]
pub(super) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    pub(super) fn push<F: FnMut(&[u8])>(&mut self, mut data: &[u8], emit: &mut F) {
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            let segment = &data[..newline.unwrap_or(data.len())];
            self.extend(segment, emit);
            if newline.is_some() {
                emit(&self.partial);
                self.partial.clear();
            }
            data = &data[segment.len() + usize::from(newline.is_some())..];
        }
    }

    fn extend<F: FnMut(&[u8])>(&mut self, mut segment: &[u8], emit: &mut F) {
        while !segment.is_empty() {
            // Emitting only when more bytes follow keeps a line of exactly MAX_LINE whole,
            // instead of a full piece followed by an empty line.
            if self.partial.len() == MAX_LINE {
                emit(&self.partial);
                self.partial.clear();
            }
            let take = (MAX_LINE - self.partial.len()).min(segment.len());
            self.partial.extend_from_slice(&segment[..take]);
            segment = &segment[take..];
        }
    }

    /// The output of a process that did not end its last line.
    pub(super) fn finish<F: FnMut(&[u8])>(self, emit: &mut F) {
        if !self.partial.is_empty() {
            emit(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(data: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        let mut emit = |l: &[u8]| lines.push(l.to_vec());
        for chunk in data {
            splitter.push(chunk, &mut emit);
        }
        splitter.finish(&mut emit);
        lines
    }

    #[test]
    fn long_lines_are_emitted_in_16_kib_pieces() {
        let line = vec![b'x'; 2 * MAX_LINE + 10];
        let mut input = line.clone();
        input.push(b'\n');
        let lines = split(&[&input[..1000], &input[1000..]]);
        let lens: Vec<usize> = lines.iter().map(Vec::len).collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 10]);

        let exact = [vec![b'y'; MAX_LINE], b"\nz".to_vec()].concat();
        let lines = split(&[&exact]);
        assert_eq!(lines, [vec![b'y'; MAX_LINE], b"z".to_vec()]);
        assert_eq!(split(&[b"\n\na", b"b\n"]), [&b""[..], b"", b"ab"]);
    }
}
