//! JSONL: one [`Entry`] per line, Outpost's own recording format. Reading, writing,
//! and a size-capped rotating file writer for recording production traffic.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::lines::{Line, Lines};
use crate::{Entry, InputError, Position};

/// Streams JSONL lines as entries. Blank lines are skipped; unknown fields are
/// ignored; `seq` is set from the position, whatever the line says.
pub struct JsonlReader<R> {
    lines: Lines<R>,
    seq: u64,
}

impl<R: BufRead> JsonlReader<R> {
    /// Reads `input`, named `source` in errors; lines longer than `max_line_bytes`
    /// are error items.
    pub fn new(source: &str, input: R, max_line_bytes: usize) -> Self {
        JsonlReader {
            lines: Lines::new(source, input, max_line_bytes),
            seq: 0,
        }
    }
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = Result<Entry, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next()? {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        let seq = self.seq;
        self.seq += 1;
        let source = self.lines.source();
        Some(match line {
            Line::TooLong(n) => Err(InputError::new(source, Position::Line(n), "line too long")),
            Line::Text(n, text) => serde_json::from_slice::<Entry>(&text)
                .map_err(|e| e.to_string())
                .and_then(|mut entry| {
                    check(&entry)?;
                    entry.seq = seq;
                    Ok(entry)
                })
                .map_err(|e| {
                    InputError::new(source, Position::Line(n), format!("invalid entry: {e}"))
                }),
        })
    }
}

/// What the other readers guarantee and a JSONL line could break.
fn check(entry: &Entry) -> Result<(), String> {
    if entry.scheme != "http" && entry.scheme != "https" {
        return Err(format!("scheme {:?} is not http or https", entry.scheme));
    }
    if !entry.path.starts_with('/') {
        return Err(format!("path {:?} does not start with /", entry.path));
    }
    if entry.method.is_empty() {
        return Err("empty method".to_string());
    }
    Ok(())
}

/// One entry as a JSONL line, with the trailing `\n`. Fields come in [`Entry`]'s
/// declaration order, so the same entry always gives the same bytes.
pub fn to_jsonl_line(entry: &Entry) -> String {
    // Serializing an `Entry` cannot fail: plain fields and string-keyed maps.
    let mut line = serde_json::to_string(entry).unwrap_or_default();
    line.push('\n');
    line
}

/// Writes entries as JSONL to any writer.
#[derive(Debug)]
pub struct JsonlWriter<W: Write> {
    out: W,
}

impl<W: Write> JsonlWriter<W> {
    /// Wraps `out` (buffer it yourself if it is a file or socket).
    pub fn new(out: W) -> Self {
        JsonlWriter { out }
    }

    /// Writes one entry as one line.
    pub fn write(&mut self, entry: &Entry) -> io::Result<()> {
        self.out.write_all(to_jsonl_line(entry).as_bytes())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The recording files `prefix-NNNNNNNNNN.jsonl` in `dir`, oldest first, with
/// their numbers.
fn numbered_files(dir: &Path, prefix: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let number = name
            .strip_prefix(prefix)
            .and_then(|n| n.strip_prefix('-'))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .filter(|n| n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number
            && item.file_type()?.is_file()
        {
            files.push((number, item.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// The files a [`RotatingWriter`] with this `dir` and `prefix` wrote, oldest first:
/// replay them in this order.
pub fn recorded_files(dir: impl AsRef<Path>, prefix: &str) -> io::Result<Vec<PathBuf>> {
    Ok(numbered_files(dir.as_ref(), prefix)?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// Records entries as JSONL into `dir/prefix-NNNNNNNNNN.jsonl` files of at most
/// `max_file_bytes` each, deleting the oldest files so that all of them together
/// never exceed `max_total_bytes`. Numbers go on from the files already there
/// (which count toward the total).
///
/// Lines are whole: a file is started anew rather than a line split across two. An
/// entry whose line alone is larger than `max_file_bytes` is refused
/// ([`io::ErrorKind::InvalidInput`]) and nothing is written.
#[derive(Debug)]
pub struct RotatingWriter {
    dir: PathBuf,
    prefix: String,
    max_file_bytes: u64,
    max_total_bytes: u64,
    /// Closed files, oldest first, with their sizes.
    closed: std::collections::VecDeque<(PathBuf, u64)>,
    closed_bytes: u64,
    current: Option<(BufWriter<File>, PathBuf, u64)>,
    next_number: u64,
}

impl RotatingWriter {
    /// Opens a recorder in `dir` (created if missing). Fails when `prefix` is empty
    /// or holds a path separator, or when `max_file_bytes` is 0 or larger than
    /// `max_total_bytes`.
    pub fn new(
        dir: impl Into<PathBuf>,
        prefix: &str,
        max_file_bytes: u64,
        max_total_bytes: u64,
    ) -> io::Result<Self> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_string());
        if prefix.is_empty() || prefix.contains(['/', '\\']) {
            return Err(invalid(
                "recording prefix must be a non-empty file name part",
            ));
        }
        if max_file_bytes == 0 || max_file_bytes > max_total_bytes {
            return Err(invalid(
                "recording caps: need 0 < max_file_bytes <= max_total_bytes",
            ));
        }
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let mut closed = std::collections::VecDeque::new();
        let mut closed_bytes = 0;
        let mut next_number = 0;
        for (number, path) in numbered_files(&dir, prefix)? {
            let len = fs::metadata(&path)?.len();
            closed_bytes += len;
            closed.push_back((path, len));
            next_number = number + 1;
        }
        let mut writer = RotatingWriter {
            dir,
            prefix: prefix.to_string(),
            max_file_bytes,
            max_total_bytes,
            closed,
            closed_bytes,
            current: None,
            next_number,
        };
        writer.trim(0)?;
        Ok(writer)
    }

    /// Appends one entry as one line, starting a new file and deleting old ones as
    /// the caps require. Buffered: see [`RotatingWriter::flush`].
    pub fn write(&mut self, entry: &Entry) -> io::Result<()> {
        let line = to_jsonl_line(entry);
        let len = line.len() as u64;
        if len > self.max_file_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "entry of {len} bytes is larger than the recording file cap of {} bytes",
                    self.max_file_bytes
                ),
            ));
        }
        if let Some((_, _, size)) = &self.current
            && size + len > self.max_file_bytes
        {
            self.close_current()?;
        }
        if self.current.is_none() {
            let path = self
                .dir
                .join(format!("{}-{:010}.jsonl", self.prefix, self.next_number));
            self.next_number += 1;
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            self.current = Some((BufWriter::new(file), path, 0));
        }
        self.trim(len)?;
        if let Some((out, _, size)) = &mut self.current {
            out.write_all(line.as_bytes())?;
            *size += len;
        }
        Ok(())
    }

    /// Flushes the current file to the operating system.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((out, _, _)) => out.flush(),
            None => Ok(()),
        }
    }

    /// Bytes in all recording files, the current one included.
    pub fn total_bytes(&self) -> u64 {
        self.closed_bytes + self.current.as_ref().map_or(0, |(_, _, size)| *size)
    }

    /// The recording files, oldest first, the current one last.
    pub fn files(&self) -> Vec<PathBuf> {
        self.closed
            .iter()
            .map(|(p, _)| p.clone())
            .chain(self.current.iter().map(|(_, p, _)| p.clone()))
            .collect()
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some((mut out, path, size)) = self.current.take() {
            out.flush()?;
            self.closed.push_back((path, size));
            self.closed_bytes += size;
        }
        Ok(())
    }

    /// Deletes the oldest closed files until `incoming` more bytes fit the total cap.
    fn trim(&mut self, incoming: u64) -> io::Result<()> {
        while self.total_bytes() + incoming > self.max_total_bytes {
            let Some((path, size)) = self.closed.pop_front() else {
                break;
            };
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.closed.push_front((path, size));
                    return Err(e);
                }
            }
            self.closed_bytes -= size;
        }
        Ok(())
    }
}

impl Drop for RotatingWriter {
    fn drop(&mut self) {
        // Best effort; call `flush` to see errors.
        let _ = self.flush();
    }
}
