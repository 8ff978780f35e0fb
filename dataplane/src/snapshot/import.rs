//! Reading a snapshot stream back: the NDJSON split into lines as bytes arrive, the header line
//! checked, and each key's line turned into a put the store would accept.

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::Header;
use crate::store::{Store, WriteOp};

/// Why an import stopped at a line; lines before it were written, it and those after were not.
#[derive(Debug, Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// The line's number, from 1 (the header).
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// One key's line as import reads it (its version and time are the source's and are not kept).
#[derive(Deserialize)]
struct EntryIn {
    namespace: String,
    key: String,
    value: Box<RawValue>,
}

/// Parses the header line.
pub fn header(line: u64, text: &[u8]) -> Result<Header, LineError> {
    serde_json::from_slice(text).map_err(|e| LineError {
        line,
        reason: format!(
            "the first line must be the snapshot header {{\"snapshot_at\", \"lsn\"}}: {e}"
        ),
    })
}

/// Parses a key's line into the put that writes it here, checked as the store would check it.
pub fn entry(store: &Store, line: u64, text: &[u8]) -> Result<WriteOp, LineError> {
    let bad = |reason: String| LineError { line, reason };
    let e: EntryIn = serde_json::from_slice(text).map_err(|e| {
        bad(format!(
            "expected {{\"namespace\", \"key\", \"value\", …}}: {e}"
        ))
    })?;
    let op = WriteOp::put(e.namespace, e.key, e.value);
    store
        .validate(std::slice::from_ref(&op))
        .map_err(|e| bad(e.to_string()))?;
    Ok(op)
}

/// Splits bytes arriving in chunks into lines (blank ones skipped), numbering them from 1.
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    start: usize,
    number: u64,
    max_line: usize,
}

impl Lines {
    /// A splitter refusing lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Lines {
        Lines {
            max_line,
            ..Lines::default()
        }
    }

    /// Adds bytes that arrived.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line (number, bytes), or None until more bytes arrive; `end` says the
    /// stream is over, so a last line without a newline counts.
    pub fn next_line(&mut self, end: bool) -> Result<Option<(u64, Vec<u8>)>, LineError> {
        loop {
            let rest = &self.buf[self.start..];
            let (line, used) = match rest.iter().position(|&b| b == b'\n') {
                Some(n) => (&rest[..n], n + 1),
                None if end && !rest.is_empty() => (rest, rest.len()),
                None => {
                    if rest.len() > self.max_line {
                        return Err(self.too_long(self.number + 1));
                    }
                    return Ok(None);
                }
            };
            self.number += 1;
            if line.len() > self.max_line {
                return Err(self.too_long(self.number));
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
            self.start += used;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.number, line)));
        }
    }

    fn too_long(&self, line: u64) -> LineError {
        LineError {
            line,
            reason: format!("longer than {} bytes", self.max_line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_and_keep_their_numbers() {
        let mut lines = Lines::new(100);
        lines.push(b"{\"a\":1}\n{\"b\"");
        assert_eq!(lines.next_line(false).unwrap().unwrap().0, 1);
        assert!(lines.next_line(false).unwrap().is_none());
        lines.push(b":2}\r\n\n{\"c\":3}");
        let (n, text) = lines.next_line(false).unwrap().unwrap();
        assert_eq!((n, text.as_slice()), (2, b"{\"b\":2}".as_slice()));
        assert!(lines.next_line(false).unwrap().is_none());
        let (n, text) = lines.next_line(true).unwrap().unwrap();
        assert_eq!((n, text.as_slice()), (4, b"{\"c\":3}".as_slice()));
        assert!(lines.next_line(true).unwrap().is_none());
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused() {
        let mut lines = Lines::new(4);
        lines.push(b"123456");
        assert_eq!(lines.next_line(false).unwrap_err().line, 1);
    }
}
