//! The proxy's side of recording: a [`Recorder`] (shared) hands out a [`Tap`] per HTTP
//! exchange, and each tap queues that exchange's lines for the writer thread.
//!
//! Nothing here waits: a line goes into a bounded queue with `try_send`, and when the queue
//! is full it is dropped and counted (`shadowcat_tape_dropped_total{reason="queue_full"}`).
//! Headers are filtered and redacted here, before the queue (credentials never enter it);
//! bodies are redacted by the writer thread, before anything is written. A line carries the
//! body as refcounted `Bytes`: the request's held body and the response's reads are not
//! copied on the proxy's side.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::format::{Direction, Headers, SseMark};
use super::redact::Redaction;
use super::writer;

/// Lines queued for the writer before new ones are dropped.
pub const QUEUE: usize = 8192;

/// `recording:`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub dir: PathBuf,
    pub sample: Sample,
    pub redact: Redaction,
    /// A tape's file is rotated (continued in a new part) past this.
    pub max_bytes_per_tape: u64,
    /// Tape files in `dir` together; the oldest are deleted to stay within it.
    pub max_total_bytes: u64,
}

/// Which sessions (or sessionless clients) are recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    All,
    /// This share of them (0 < ratio < 1), decided once per tape key.
    Ratio(f64),
}

/// Which tape a line belongs to: `s:<session id>` or `c:<client>`.
pub type TapeKey = Arc<str>;

/// What a tape's header says about where it came from (from its first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub protocol_version: &'static str,
    pub upstream: Arc<str>,
    pub principal: Option<[u8; 32]>,
    pub session: bool,
}

/// One line for the writer, before redaction of its body.
#[derive(Debug)]
pub(super) struct Pending {
    pub key: TapeKey,
    pub origin: Arc<Origin>,
    pub at: SystemTime,
    pub dir: Direction,
    pub exchange: u64,
    pub http: Option<&'static str>,
    pub status: Option<u16>,
    pub headers: Headers,
    pub body: Option<Bytes>,
    pub sse: Option<SseMark>,
}

#[derive(Debug)]
pub(super) enum Record {
    Line(Box<Pending>),
    /// The tape is done (its session was deleted): its file is closed.
    End(TapeKey),
}

/// Records tapes into `settings.dir`.
#[derive(Debug)]
pub struct Recorder {
    shared: Arc<Shared>,
    sample: Sample,
}

#[derive(Debug)]
struct Shared {
    tx: SyncSender<Record>,
    redact: Redaction,
    dropped: prometheus::IntCounterVec,
    next_exchange: AtomicU64,
}

// === impl Recorder ===

impl Recorder {
    /// Creates the directory and starts the writer thread. `dropped` counts lines not
    /// written, by `reason` (`queue_full`, `write_error`, `over_total`).
    pub fn start(settings: Settings, dropped: prometheus::IntCounterVec) -> std::io::Result<Self> {
        // The directory the proxy creates is its user's only (tapes hold what was said).
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(&settings.dir)?;
        let (tx, rx) = sync_channel(QUEUE);
        let sample = settings.sample;
        let redact = settings.redact.clone();
        writer::spawn(rx, settings, dropped.clone())?;
        Ok(Self {
            shared: Arc::new(Shared {
                tx,
                redact,
                dropped,
                next_exchange: AtomicU64::new(1),
            }),
            sample,
        })
    }

    /// A recorder whose queue holds `capacity` lines and whose writer never runs (tests: a
    /// writer that cannot keep up). The receiver is returned so the queue stays open.
    #[doc(hidden)]
    pub fn stalled(
        capacity: usize,
        dropped: prometheus::IntCounterVec,
    ) -> (Self, std::sync::mpsc::Receiver<impl Sized>) {
        let (tx, rx) = sync_channel::<Record>(capacity);
        let shared = Shared {
            tx,
            redact: Redaction::default(),
            dropped,
            next_exchange: AtomicU64::new(1),
        };
        let recorder = Self {
            shared: Arc::new(shared),
            sample: Sample::All,
        };
        (recorder, rx)
    }

    /// Is this tape key recorded? The same answer for every request of a key, so a sampled
    /// session is recorded whole.
    pub fn wants(&self, key: &str) -> bool {
        match self.sample {
            Sample::All => true,
            Sample::Ratio(r) => {
                // SipHash with fixed keys: the same key gives the same answer in every run.
                let mut h = std::hash::DefaultHasher::new();
                key.hash(&mut h);
                (h.finish() as f64 / u64::MAX as f64) < r
            }
        }
    }

    /// A tap for one HTTP exchange of tape `key`.
    pub fn tap(&self, key: TapeKey, origin: Arc<Origin>) -> Tap {
        Tap {
            shared: self.shared.clone(),
            key,
            origin,
            exchange: self.shared.next_exchange.fetch_add(1, Ordering::Relaxed),
            events: 0,
        }
    }

    /// The headers a tape keeps (credentials and configured names redacted).
    pub fn headers<'a>(&self, all: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Headers {
        self.shared.redact.headers(all)
    }
}

/// One HTTP exchange on its way to a tape.
#[derive(Debug)]
pub struct Tap {
    shared: Arc<Shared>,
    key: TapeKey,
    origin: Arc<Origin>,
    exchange: u64,
    /// SSE events recorded so far.
    events: u64,
}

// === impl Tap ===

impl Tap {
    /// The request: its HTTP method, headers and body.
    pub fn request(&self, http: &'static str, headers: Headers, body: Option<Bytes>) {
        self.send(
            Direction::ClientToServer,
            Some(http),
            None,
            headers,
            body,
            None,
        );
    }

    /// A JSON (or empty, or any non-SSE) response, whole.
    pub fn response(&self, status: u16, headers: Headers, body: Option<Bytes>) {
        self.send(
            Direction::ServerToClient,
            None,
            Some(status),
            headers,
            body,
            None,
        );
    }

    /// The head of an SSE response is kept with its first event (or its end).
    pub fn event(
        &mut self,
        status: u16,
        headers: Headers,
        id: Option<String>,
        event: Option<String>,
        retry: Option<u64>,
        data: Option<Bytes>,
    ) {
        let mark = SseMark {
            n: self.events,
            id,
            event,
            retry,
            end: false,
        };
        self.events += 1;
        self.send(
            Direction::ServerToClient,
            None,
            Some(status),
            headers,
            data,
            Some(mark),
        );
    }

    /// The SSE response ended.
    pub fn end_of_stream(&self, status: u16, headers: Headers) {
        let mark = SseMark {
            n: self.events,
            end: true,
            ..SseMark::default()
        };
        self.send(
            Direction::ServerToClient,
            None,
            Some(status),
            headers,
            None,
            Some(mark),
        );
    }

    /// The tape is done (its session ended): the writer closes it.
    pub fn end_tape(&self) {
        if self
            .shared
            .tx
            .try_send(Record::End(self.key.clone()))
            .is_err()
        {
            // The file is then closed when idle.
            self.shared.dropped.with_label_values(&["queue_full"]).inc();
        }
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    fn send(
        &self,
        dir: Direction,
        http: Option<&'static str>,
        status: Option<u16>,
        headers: Headers,
        body: Option<Bytes>,
        sse: Option<SseMark>,
    ) {
        let line = Pending {
            key: self.key.clone(),
            origin: self.origin.clone(),
            at: SystemTime::now(),
            dir,
            exchange: self.exchange,
            http,
            status,
            headers,
            body,
            sse,
        };
        match self.shared.tx.try_send(Record::Line(Box::new(line))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.dropped.with_label_values(&["queue_full"]).inc();
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared
                    .dropped
                    .with_label_values(&["write_error"])
                    .inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_decided_once_per_key() {
        let dropped =
            prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["reason"]).unwrap();
        let dir = std::env::temp_dir().join(format!("shadowcat-sample-{}", std::process::id()));
        let settings = |sample| Settings {
            dir: dir.clone(),
            sample,
            redact: Redaction::default(),
            max_bytes_per_tape: 1 << 20,
            max_total_bytes: 1 << 30,
        };
        let half = Recorder::start(settings(Sample::Ratio(0.5)), dropped.clone()).unwrap();
        let picked = (0..1000).filter(|i| half.wants(&format!("s:{i}"))).count();
        assert!((350..650).contains(&picked), "{picked}");
        for i in 0..50 {
            let k = format!("s:{i}");
            assert_eq!(half.wants(&k), half.wants(&k));
        }
        let all = Recorder::start(settings(Sample::All), dropped).unwrap();
        assert!(all.wants("anything"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_writer_that_falls_behind_drops_lines_and_never_blocks() {
        let dropped =
            prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["reason"]).unwrap();
        let (recorder, _queue) = Recorder::stalled(4, dropped.clone());
        let origin = Arc::new(Origin {
            protocol_version: "2025-11-25",
            upstream: "u".into(),
            principal: None,
            session: true,
        });
        for _ in 0..10 {
            let tap = recorder.tap("s:x".into(), origin.clone());
            tap.request("POST", Headers::new(), Some(Bytes::from_static(b"{}")));
        }
        assert_eq!(dropped.with_label_values(&["queue_full"]).get(), 6);
    }
}
