//! The writer thread: takes lines off the recorder's queue, redacts their bodies, and writes
//! them to one file per tape, flushing whenever the queue runs dry.
//!
//! Bounds: a tape's file past `max_bytes_per_tape` is closed and the tape continues in a new
//! part (its own header, `part` counting up); the tape files in the directory (those found at
//! start included) stay within `max_total_bytes` by deleting the oldest closed ones, and a
//! line that still does not fit is dropped (`over_total`). A write that fails (a full disk)
//! drops the line (`write_error`) and closes the file; the tape goes on in a new part. Files
//! idle for [`IDLE_CLOSE`] are closed (a sessionless client's tape has no end).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::Digest;

use super::format::{Header, Line, FORMAT};
use super::recorder::{Origin, Pending, Record, Settings, TapeKey};

/// A tape file with no new line for this long is closed.
pub const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// Lines reach the disk within this (the writer flushes at most this often while busy, and
/// at once when the queue runs dry for as long).
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Each open file's write buffer.
const FILE_BUFFER: usize = 64 << 10;
/// Files open at once; past it the least recently written is closed.
const MAX_OPEN: usize = 256;

pub(super) fn spawn(
    rx: Receiver<Record>,
    settings: Settings,
    dropped: prometheus::IntCounterVec,
) -> std::io::Result<()> {
    let mut writer = Writer::new(settings, dropped)?;
    std::thread::Builder::new()
        .name("shadowcat-tapes".into())
        .spawn(move || writer.run(rx))?;
    Ok(())
}

struct Writer {
    settings: Settings,
    dropped: prometheus::IntCounterVec,
    open: HashMap<TapeKey, OpenTape>,
    /// Closed tape files, oldest first, with their sizes.
    closed: VecDeque<(PathBuf, u64)>,
    /// Bytes of every tape file, open and closed.
    total: u64,
    /// Tapes closed while idle (not ended): the part and start they continue with.
    resume: HashMap<TapeKey, (u32, SystemTime)>,
    last_sweep: Instant,
    /// Lines written since the last flush.
    dirty: bool,
    last_flush: Instant,
}

struct OpenTape {
    file: BufWriter<File>,
    path: PathBuf,
    bytes: u64,
    part: u32,
    started: SystemTime,
    last: Instant,
}

impl Writer {
    fn new(settings: Settings, dropped: prometheus::IntCounterVec) -> std::io::Result<Self> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&settings.dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                let meta = entry.metadata()?;
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((modified, path, meta.len()));
            }
        }
        found.sort();
        let total = found.iter().map(|f| f.2).sum();
        Ok(Self {
            settings,
            dropped,
            open: HashMap::new(),
            closed: found.into_iter().map(|(_, p, n)| (p, n)).collect(),
            total,
            resume: HashMap::new(),
            last_sweep: Instant::now(),
            dirty: false,
            last_flush: Instant::now(),
        })
    }

    fn run(&mut self, rx: Receiver<Record>) {
        loop {
            let wait = match self.dirty {
                true => FLUSH_EVERY.saturating_sub(self.last_flush.elapsed()),
                false => Duration::from_secs(1),
            };
            match rx.recv_timeout(wait) {
                Ok(record) => {
                    self.handle(record);
                    while let Ok(record) = rx.try_recv() {
                        self.handle(record);
                    }
                    self.dirty = true;
                    if self.last_flush.elapsed() >= FLUSH_EVERY {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.dirty {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            }
            if self.last_sweep.elapsed() >= Duration::from_secs(1) {
                self.close_idle();
            }
        }
    }

    fn handle(&mut self, record: Record) {
        match record {
            Record::Line(p) => self.write(*p),
            Record::End(key) => self.close(&key),
        }
    }

    fn write(&mut self, p: Pending) {
        let (message, body) = match &p.body {
            Some(b) => self.settings.redact.message(b),
            None => (None, None),
        };
        let resumed = match self.open.contains_key(&p.key) {
            true => None,
            false => self.resume.remove(&p.key),
        };
        let started = match (self.open.get(&p.key), resumed) {
            (Some(t), _) => t.started,
            (None, Some((_, started))) => started,
            (None, None) => p.at,
        };
        let t_ms = p.at.duration_since(started).unwrap_or_default().as_millis() as u64;
        let line = Line {
            dir: p.dir,
            exchange: p.exchange,
            t_ms,
            http: p.http.map(str::to_owned),
            status: p.status,
            headers: p.headers,
            message,
            body,
            sse: p.sse,
        };
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            return self.drop_line("write_error");
        };
        bytes.push(b'\n');
        let n = bytes.len() as u64;
        let rotate = self.open.get(&p.key).is_some_and(|t| {
            t.bytes + n > self.settings.max_bytes_per_tape && t.bytes > header_len_bound()
        });
        if rotate {
            let part = self.open.get(&p.key).map_or(0, |t| t.part + 1);
            self.close(&p.key);
            if self.open_tape(&p.key, &p.origin, started, part).is_err() {
                return self.drop_line("write_error");
            }
        }
        let part = resumed.map_or(0, |(part, _)| part + 1);
        if !self.open.contains_key(&p.key)
            && self.open_tape(&p.key, &p.origin, started, part).is_err()
        {
            return self.drop_line("write_error");
        }
        if !self.make_room(n) {
            return self.drop_line("over_total");
        }
        let Some(tape) = self.open.get_mut(&p.key) else {
            return;
        };
        match tape.file.write_all(&bytes) {
            Ok(()) => {
                tape.bytes += n;
                tape.last = Instant::now();
                self.total += n;
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %tape.path.display(), "tape write failed");
                self.drop_line("write_error");
                self.close(&p.key);
            }
        }
    }

    /// Opens a tape's file (part `part`) and writes its header.
    fn open_tape(
        &mut self,
        key: &TapeKey,
        origin: &Arc<Origin>,
        started: SystemTime,
        part: u32,
    ) -> std::io::Result<()> {
        if self.open.len() >= MAX_OPEN {
            if let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, t)| t.last)
                .map(|(k, _)| k.clone())
            {
                self.pause(&oldest);
            }
        }
        let header = header(origin, started, part);
        let mut text = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
        text.push(b'\n');
        let n = text.len() as u64;
        if !self.make_room(n) {
            self.dropped.with_label_values(&["over_total"]).inc();
            return Err(std::io::Error::other("max_total_bytes reached"));
        }
        // A tape ended and begun again within a second gets a file of its own, never a
        // second header inside the first one's.
        let name = file_name(key, started, part);
        let (mut path, mut again) = (self.settings.dir.join(&name), 1);
        let file = loop {
            match private_file().open(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && again < 100 => {
                    let stem = name.trim_end_matches(".jsonl");
                    path = self.settings.dir.join(format!("{stem}-{again}.jsonl"));
                    again += 1;
                }
                other => break other?,
            }
        };
        let mut file = BufWriter::with_capacity(FILE_BUFFER, file);
        file.write_all(&text)?;
        self.total += n;
        self.open.insert(
            key.clone(),
            OpenTape {
                file,
                path,
                bytes: n,
                part,
                started,
                last: Instant::now(),
            },
        );
        Ok(())
    }

    /// Deletes the oldest closed files until `n` more bytes fit; `false` if they cannot.
    fn make_room(&mut self, n: u64) -> bool {
        while self.total + n > self.settings.max_total_bytes {
            let Some((path, len)) = self.closed.pop_front() else {
                return false;
            };
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::debug!(error = %e, path = %path.display(), "cannot delete an old tape");
            }
            self.total = self.total.saturating_sub(len);
        }
        true
    }

    /// Closes a tape that may go on (idle, or too many open): its next line opens the next
    /// part, so its offsets and exchanges continue.
    fn pause(&mut self, key: &TapeKey) {
        if let Some(tape) = self.open.get(key) {
            if self.resume.len() >= 65_536 {
                self.resume.clear();
            }
            self.resume.insert(key.clone(), (tape.part, tape.started));
        }
        self.close(key);
    }

    fn close(&mut self, key: &TapeKey) {
        if let Some(mut tape) = self.open.remove(key) {
            if let Err(e) = tape.file.flush() {
                tracing::warn!(error = %e, path = %tape.path.display(), "tape flush failed");
            }
            self.closed.push_back((tape.path, tape.bytes));
        }
    }

    fn close_idle(&mut self) {
        self.last_sweep = Instant::now();
        let idle: Vec<TapeKey> = self
            .open
            .iter()
            .filter(|(_, t)| t.last.elapsed() >= IDLE_CLOSE)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            self.pause(&key);
        }
    }

    fn flush(&mut self) {
        self.dirty = false;
        self.last_flush = Instant::now();
        let mut failed = Vec::new();
        for (key, tape) in &mut self.open {
            if let Err(e) = tape.file.flush() {
                tracing::warn!(error = %e, path = %tape.path.display(), "tape flush failed");
                failed.push(key.clone());
            }
        }
        for key in failed {
            self.dropped.with_label_values(&["write_error"]).inc();
            self.close(&key);
        }
    }

    fn drop_line(&self, reason: &str) {
        self.dropped.with_label_values(&[reason]).inc();
    }
}

/// Tapes hold what clients and servers said: readable by the proxy's user only.
fn private_file() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// A header is at most this long; a file holding no more is never rotated (its line could
/// never fit anywhere).
fn header_len_bound() -> u64 {
    512
}

fn header(origin: &Origin, started: SystemTime, part: u32) -> Header {
    let unix = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Header {
        tape: FORMAT.to_owned(),
        proxy_version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: origin.protocol_version.to_owned(),
        upstream: origin.upstream.to_string(),
        started: rfc3339(started),
        started_unix_ms: unix.as_millis() as u64,
        principal: origin.principal.map(|p| hex(&p)),
        session: origin.session,
        part,
    }
}

/// `20261203T190102Z-<16 hex of the key's SHA-256>[-pN].jsonl`: the key (a session id) never
/// shows in a file name.
fn file_name(key: &str, started: SystemTime, part: u32) -> String {
    let stamp = time::OffsetDateTime::from(started)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let digest = sha2::Sha256::digest(key.as_bytes());
    let id = hex(&digest[..8]);
    match part {
        0 => format!("{stamp}-{id}.jsonl"),
        n => format!("{stamp}-{id}-p{n}.jsonl"),
    }
}

/// RFC 3339 in UTC, milliseconds.
pub fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests;
