//! Streaming line source for the line formats: numbered lines, a cap on line length,
//! blank lines skipped, I/O errors reported once.

use std::io::BufRead;

use crate::{InputError, Position};

/// One line, or why it could not be had.
pub(crate) enum Line {
    /// A non-blank line without its line ending, with its 1-based number.
    Text(u64, Vec<u8>),
    /// The line was longer than the cap; the rest of it was skipped.
    TooLong(u64),
}

pub(crate) struct Lines<R> {
    input: R,
    source: String,
    max: usize,
    number: u64,
    done: bool,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(source: &str, input: R, max: usize) -> Self {
        Lines {
            input,
            source: source.to_string(),
            max,
            number: 0,
            done: false,
        }
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Reads up to and including the next `\n`, keeping at most `max` bytes.
    /// Returns `Ok(None)` at end of input, else whether the line was cut.
    fn read_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
        buf.clear();
        let mut read_any = false;
        let mut too_long = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(read_any.then_some(too_long));
            }
            read_any = true;
            let (take, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = self.max.saturating_sub(buf.len());
            if take > room + usize::from(found) {
                too_long = true;
            }
            if !too_long {
                buf.extend_from_slice(&chunk[..take]);
            }
            self.input.consume(take);
            if found {
                return Ok(Some(too_long));
            }
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<Line, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        loop {
            if self.done {
                return None;
            }
            let line = match self.read_line(&mut buf) {
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(too_long)) => {
                    self.number += 1;
                    too_long
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(InputError::new(
                        &self.source,
                        Position::Line(self.number + 1),
                        format!("read error: {e}"),
                    )));
                }
            };
            if line {
                return Some(Ok(Line::TooLong(self.number)));
            }
            while buf.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                buf.pop();
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(Ok(Line::Text(self.number, std::mem::take(&mut buf))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize) -> Vec<String> {
        Lines::new("t", std::io::BufReader::with_capacity(4, input), max)
            .map(|l| match l {
                Ok(Line::Text(n, t)) => format!("{n}:{}", String::from_utf8_lossy(&t)),
                Ok(Line::TooLong(n)) => format!("{n}:too long"),
                Err(e) => e.to_string(),
            })
            .collect()
    }

    #[test]
    fn numbers_skips_blank_caps() {
        assert_eq!(
            collect(b"ab\r\n\n  \nabcdefghij\nxyz", 5),
            ["1:ab", "4:too long", "5:xyz"]
        );
        assert_eq!(collect(b"abcde\nabcdef\n", 5), ["1:abcde", "2:too long"]);
        assert_eq!(collect(b"", 5), Vec::<String>::new());
    }
}
