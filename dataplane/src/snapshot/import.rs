//! Reading a snapshot stream back: the NDJSON split into lines as bytes arrive, the header line
//! checked, and each key's line turned into a put the store would accept — as given, or, when
//! seeding a region from another region's snapshot, with each plain value's clock kept.

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::Header;
use crate::crdt::{self, Hlc};
use crate::region::{self, REGION_NS, WATERMARK_PREFIX};
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

/// One key's line as import reads it (its version is the source's and is not kept; its time
/// only becomes a plain value's clock when seeding).
#[derive(Deserialize)]
struct EntryIn {
    namespace: String,
    key: String,
    #[serde(default)]
    timestamp: Option<String>,
    value: Box<RawValue>,
}

/// An import of another region's raw, internal snapshot into a region of the same global
/// database (`?source_region=`): what it keeps of the lines and the latest clock it saw.
#[derive(Debug)]
pub struct Seeding {
    /// The region the snapshot was taken in.
    pub source: String,
    /// This region, whose own watermark in the source's snapshot is not imported.
    pub here: String,
    /// The latest commit time among the lines read (this region's clock is raised past it).
    pub latest_micros: i64,
}

impl Seeding {
    /// A seeding import from `source` into `here`.
    pub fn new(source: &str, here: &str) -> Seeding {
        Seeding {
            source: source.to_owned(),
            here: here.to_owned(),
            latest_micros: 0,
        }
    }

    /// What a line becomes here: None for the source's region-local records (its heartbeat,
    /// its progress reading this region); a plain value of a replicated namespace becomes a
    /// register at its commit time in the source (`(timestamp, source)`, the clock the source
    /// decides with), so the streams order it as the source does; the rest is kept as given
    /// (CRDT states and registers carry their clocks, the other watermarks say where each
    /// origin resumes).
    fn convert(&mut self, e: EntryIn) -> Result<Option<WriteOp>, String> {
        let micros = match &e.timestamp {
            Some(t) => crate::clock::parse_micros(t)
                .map_err(|err| format!("bad timestamp {t:?}: {err}"))?,
            None => return Err("a seeding import needs each line's timestamp".into()),
        };
        self.latest_micros = self.latest_micros.max(micros);
        if e.namespace == REGION_NS
            && (e.key == "heartbeat" || e.key == format!("{WATERMARK_PREFIX}{}", self.here))
        {
            return Ok(None);
        }
        let value = if region::replicated(&e.namespace) && !crdt::is_crdt(e.value.get()) {
            let hlc = Hlc {
                micros,
                region: self.source.clone(),
            };
            RawValue::from_string(crdt::register(&e.value, &hlc))
                .map_err(|err| format!("register not JSON: {err}"))?
        } else {
            e.value
        };
        Ok(Some(WriteOp::put(e.namespace, e.key, value)))
    }
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

/// Parses a key's line into the put that writes it here (None: a seeding import leaves it
/// out), checked as the store would check it.
pub fn entry(
    store: &Store,
    line: u64,
    text: &[u8],
    seeding: Option<&mut Seeding>,
) -> Result<Option<WriteOp>, LineError> {
    let bad = |reason: String| LineError { line, reason };
    let e: EntryIn = serde_json::from_slice(text).map_err(|e| {
        bad(format!(
            "expected {{\"namespace\", \"key\", \"value\", …}}: {e}"
        ))
    })?;
    let op = match seeding {
        None => WriteOp::put(e.namespace, e.key, e.value),
        Some(s) => match s.convert(e).map_err(bad)? {
            Some(op) => op,
            None => return Ok(None),
        },
    };
    store
        .validate(std::slice::from_ref(&op))
        .map_err(|e| bad(e.to_string()))?;
    Ok(Some(op))
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
    fn a_seed_keeps_plain_values_clocks_and_leaves_the_source_local_records_out() {
        let mut seed = Seeding::new("a", "d");
        let line = |ns: &str, key: &str, value: &str| EntryIn {
            namespace: ns.into(),
            key: key.into(),
            timestamp: Some("2026-01-01T00:00:01Z".into()),
            value: RawValue::from_string(value.into()).unwrap(),
        };
        let op = seed
            .convert(line("app", "k", "{\"x\":1}"))
            .unwrap()
            .unwrap();
        let text = op.value.as_ref().unwrap().get();
        assert_eq!(
            crdt::register_hlc(text),
            Some(Hlc {
                micros: 1_767_225_601_000_000,
                region: "a".into()
            })
        );
        assert_eq!(crdt::render(text).unwrap(), "{\"x\":1}");
        assert_eq!(seed.latest_micros, 1_767_225_601_000_000);
        let mark = r#"{"lsn":7}"#;
        for (key, kept) in [
            ("heartbeat", false),
            ("watermark/d", false),
            ("watermark/b", true),
        ] {
            let op = seed.convert(line(REGION_NS, key, mark)).unwrap();
            assert_eq!(op.is_some(), kept, "{key}");
        }
        let op = seed
            .convert(line(REGION_NS, "watermark/b", mark))
            .unwrap()
            .unwrap();
        assert_eq!(op.value.unwrap().get(), mark);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused() {
        let mut lines = Lines::new(4);
        lines.push(b"123456");
        assert_eq!(lines.next_line(false).unwrap_err().line, 1);
    }
}
