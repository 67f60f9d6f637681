//! Reading client and event files into the store: streaming, validating
//! every field, and reporting each bad row with its line and field.

pub mod clients;
pub mod events;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Rows are handed to the store in batches of this many.
pub const BATCH_ROWS: usize = 4000;

/// At most this many rejected rows are kept for the report; the rest are
/// only counted, so that a file of garbage cannot exhaust memory.
pub const MAX_REPORTED: usize = 10_000;

/// A file format herald reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// From the extension: `.jsonl`/`.ndjson`/`.json` are JSON lines,
    /// anything else CSV.
    pub fn of(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson" | "json") => Format::Jsonl,
            _ => Format::Csv,
        }
    }
}

/// One bad field of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The line the row starts on (1-based, header included).
    pub line: u64,
    /// The row's id where it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.reason)?;
        if let Some(id) = &self.id {
            write!(f, " (id {id})")?;
        }
        Ok(())
    }
}

/// Bad rows seen so far: every one counted, the first [`MAX_REPORTED`]
/// fields kept.
#[derive(Debug, Default, Serialize)]
pub struct Rejections {
    pub rows: u64,
    pub details: Vec<Rejection>,
    pub details_omitted: u64,
}

impl Rejections {
    pub fn add_row(&mut self, fields: impl IntoIterator<Item = Rejection>) {
        self.rows += 1;
        for r in fields {
            if self.details.len() < MAX_REPORTED {
                self.details.push(r);
            } else {
                self.details_omitted += 1;
            }
        }
    }
}

/// A file import that could not run at all (as opposed to bad rows).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("{path}: {rows} bad row(s) with --strict; nothing was written")]
    StrictRejected { path: String, rows: u64 },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// Brings the database's statistics up to date after an import wrote
/// something. What was imported is committed by then: a failure here
/// (a lock timeout, say) is reported and the import stands.
pub async fn refresh(store: &dyn crate::store::Store, imported: crate::store::Imported) {
    if let Err(e) = store.after_import(imported).await {
        tracing::warn!(
            error = %e,
            "the import is stored, but the database's statistics of it were not refreshed; the next plans may be slower until the database analyzes the tables itself"
        );
    }
}

/// Opens a file for streaming, with its size for the progress bar.
pub fn open(path: &Path) -> Result<(BufReader<File>, u64), ImportError> {
    let io = |source| ImportError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    Ok((BufReader::with_capacity(1 << 16, file), size))
}

/// A byte-counting progress bar, drawn only on a terminal.
pub fn progress(total_bytes: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Drops a UTF-8 byte order mark at the start of a stream.
pub fn skip_bom<R: Read>(reader: R) -> impl Read {
    BomSkipper {
        inner: reader,
        checked: false,
        pending: Vec::new(),
    }
}

struct BomSkipper<R> {
    inner: R,
    checked: bool,
    pending: Vec<u8>,
}

impl<R: Read> Read for BomSkipper<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            self.checked = true;
            let mut head = [0u8; 3];
            let mut n = 0;
            while n < 3 {
                let got = self.inner.read(&mut head[n..])?;
                if got == 0 {
                    break;
                }
                n += got;
            }
            if head[..n] != [0xEF, 0xBB, 0xBF] {
                self.pending.extend_from_slice(&head[..n]);
            }
        }
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// A batch of parsed rows on its way from the parsing thread to the store:
/// the good rows with their line numbers, and the bad rows' reports.
pub struct Parsed<T> {
    pub items: Vec<(u64, T)>,
    pub rejected: Vec<Vec<Rejection>>,
    /// How far into the file the parser is, for the progress bar.
    pub bytes_read: u64,
}

impl<T> Parsed<T> {
    fn new() -> Self {
        Self {
            items: Vec::with_capacity(BATCH_ROWS),
            rejected: Vec::new(),
            bytes_read: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.items.len() + self.rejected.len() >= BATCH_ROWS
    }
}

/// Sends full batches down the channel; the receiving end going away means
/// the import stopped, so parsing stops too.
pub struct BatchSender<T> {
    tx: tokio::sync::mpsc::Sender<Result<Parsed<T>, String>>,
    current: Parsed<T>,
}

impl<T> BatchSender<T> {
    pub fn new(tx: tokio::sync::mpsc::Sender<Result<Parsed<T>, String>>) -> Self {
        Self {
            tx,
            current: Parsed::new(),
        }
    }

    /// Adds a good row; returns false when the import has stopped.
    pub fn item(&mut self, line: u64, item: T, bytes_read: u64) -> bool {
        self.current.items.push((line, item));
        self.flush_if_full(bytes_read)
    }

    /// Adds a bad row's report; returns false when the import has stopped.
    pub fn reject(&mut self, fields: Vec<Rejection>, bytes_read: u64) -> bool {
        self.current.rejected.push(fields);
        self.flush_if_full(bytes_read)
    }

    fn flush_if_full(&mut self, bytes_read: u64) -> bool {
        if !self.current.is_full() {
            return true;
        }
        self.current.bytes_read = bytes_read;
        let batch = std::mem::replace(&mut self.current, Parsed::new());
        self.tx.blocking_send(Ok(batch)).is_ok()
    }

    /// Sends what is left.
    pub fn finish(mut self, bytes_read: u64) {
        self.current.bytes_read = bytes_read;
        let _ = self.tx.blocking_send(Ok(self.current));
    }

    /// Reports a problem with the whole file.
    pub fn fail(self, message: String) {
        let _ = self.tx.blocking_send(Err(message));
    }
}

/// Calls `row` for each non-blank line of a JSON-lines stream with its line
/// number, the parsed object (or why the line is not one), and the bytes read
/// so far. Stops when `row` returns false; returns the bytes read.
pub fn for_each_json_object<R: std::io::BufRead>(
    mut reader: R,
    mut row: impl FnMut(u64, Result<serde_json::Map<String, serde_json::Value>, Rejection>, u64) -> bool,
) -> std::io::Result<u64> {
    let mut buf = Vec::with_capacity(1024);
    let (mut line, mut bytes) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(bytes);
        }
        line += 1;
        bytes += n as u64;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |reason: String| Rejection {
            line,
            id: None,
            field: "(line)".into(),
            reason,
        };
        let parsed = match serde_json::from_slice::<serde_json::Value>(&buf) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(bad("is not a JSON object".into())),
            Err(e) => Err(bad(format!("is not valid JSON: {e}"))),
        };
        if !row(line, parsed, bytes) {
            return Ok(bytes);
        }
    }
}

/// Streams a JSON-lines file into batches: each object goes through `row`,
/// which validates it into an item or the rejections of its fields.
pub fn parse_jsonl<R: Read, T>(
    reader: R,
    mut out: BatchSender<T>,
    mut row: impl FnMut(serde_json::Map<String, serde_json::Value>, u64) -> Result<T, Vec<Rejection>>,
) {
    let reader = std::io::BufReader::new(skip_bom(reader));
    let mut stopped = false;
    let result = for_each_json_object(reader, |line, parsed, bytes| {
        let go_on = match parsed.map_err(|r| vec![r]).and_then(|map| row(map, line)) {
            Ok(item) => out.item(line, item, bytes),
            Err(rejections) => out.reject(rejections, bytes),
        };
        stopped = !go_on;
        go_on
    });
    match result {
        Ok(bytes) if !stopped => out.finish(bytes),
        Ok(_) => {}
        Err(e) => out.fail(format!("cannot read on: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        skip_bom(bytes).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn a_bom_is_dropped_and_nothing_else() {
        assert_eq!(read_all(b"\xEF\xBB\xBFid,name\n"), b"id,name\n");
        assert_eq!(read_all(b"id,name\n"), b"id,name\n");
        assert_eq!(read_all(b"i"), b"i");
        assert_eq!(read_all(b""), b"");
    }
}
