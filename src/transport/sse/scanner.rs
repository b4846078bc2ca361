//! Incremental, bounded SSE framer.
//!
//! `response_body_filter` hands us the upstream body one read at a time, and reads do not follow
//! event boundaries. [`SseScanner`] finds the blank lines that end events (LF, CRLF or CR line
//! ends, as the SSE grammar allows) with `memchr2`, and yields each event block as the exact
//! bytes the upstream sent:
//!
//! * an event that lies inside one chunk is a `Bytes::slice` of that chunk: no copy, no
//!   allocation;
//! * an event that straddles chunks is assembled in a carry buffer, which is the only copy the
//!   scanner ever makes and is bounded by `max_event` (past it, [`ScanError::EventTooLarge`]).
//!
//! The scanner never changes bytes. The proxy forwards the original chunks itself; the scanner
//! only tells it where events are (metrics now; interceptors and replay later).

use bytes::{Bytes, BytesMut};
use memchr::memchr2;

use super::event::RawEvent;

const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// The stream cannot be framed within the configured bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    /// One event (or the unterminated tail of one) is larger than the limit.
    EventTooLarge { limit: usize },
    /// An event a filter let flow while incomplete turned out to need judging (see
    /// `filter::Judge::verify`); the stream ends before the event does.
    Refused,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::EventTooLarge { limit } => {
                write!(f, "SSE event larger than the {limit}-byte limit")
            }
            ScanError::Refused => {
                f.write_str("SSE event passed early but its end needs the rules; stream ended")
            }
        }
    }
}

impl std::error::Error for ScanError {}

/// Push-based SSE framer; one per SSE response.
#[derive(Debug)]
pub struct SseScanner {
    max_event: usize,
    /// Bytes of the current, unfinished event that arrived in earlier chunks.
    carry: BytesMut,
    /// Bytes of the current line seen in earlier chunks (0 = the next byte starts a line).
    line_len: usize,
    /// The first line of the stream, whose leading BOM does not count as content.
    first_line: bool,
    /// The start of the first line (up to 3 bytes), to recognise a BOM split across chunks.
    first_line_head: [u8; 3],
    /// The previous chunk ended with CR: a leading LF in the next chunk belongs to it.
    pending_cr: bool,
    /// That CR was the blank line that ended an event.
    pending_cr_ended_event: bool,
    /// No event has been emitted yet (the first one may carry the stream's BOM).
    at_stream_start: bool,
    failed: bool,
}

// === impl SseScanner ===

impl SseScanner {
    /// A scanner that refuses events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            max_event,
            carry: BytesMut::new(),
            line_len: 0,
            first_line: true,
            first_line_head: [0; 3],
            pending_cr: false,
            pending_cr_ended_event: false,
            at_stream_start: true,
            failed: false,
        }
    }

    /// True between events: nothing of a next event has arrived yet. Bytes that are injected
    /// here (a `:` keep-alive comment block) cannot corrupt an event.
    pub fn at_event_boundary(&self) -> bool {
        self.carry.is_empty() && self.line_len == 0
    }

    /// Bytes of the unfinished event held back for framing (bounded by `max_event`).
    pub fn buffered(&self) -> usize {
        self.carry.len()
    }

    /// The unfinished event's bytes so far.
    pub fn partial(&self) -> &[u8] {
        &self.carry
    }

    /// Feeds one chunk and calls `on_event` for every event block it completes, in order.
    ///
    /// After an error the scanner stays failed; the caller ends the stream.
    pub fn feed(
        &mut self,
        chunk: &Bytes,
        mut on_event: impl FnMut(RawEvent),
    ) -> Result<(), ScanError> {
        if self.failed {
            return Err(ScanError::EventTooLarge {
                limit: self.max_event,
            });
        }
        if chunk.is_empty() {
            // Nothing arrived: above all, a CR pending from the last read stays pending.
            return Ok(());
        }
        let buf = &chunk[..];
        let mut pos = 0;
        let mut event_start = 0;

        if std::mem::take(&mut self.pending_cr) && buf.first() == Some(&b'\n') {
            // The LF of a CRLF split across reads.
            pos = 1;
            if std::mem::take(&mut self.pending_cr_ended_event) {
                // Its event was already emitted at the CR (emitting it then keeps the event
                // from waiting for the next read). The lone LF is accounted for as a blank
                // block, which carries no fields.
                on_event(RawEvent::new(chunk.slice(0..1), false));
                event_start = 1;
            }
        }
        self.pending_cr_ended_event = false;

        let mut line_start = pos;
        while let Some(off) = memchr2(b'\n', b'\r', &buf[pos..]) {
            let t = pos + off;
            let term_len = if buf[t] == b'\r' {
                match buf.get(t + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    None => {
                        self.pending_cr = true;
                        1
                    }
                }
            } else {
                1
            };
            let blank = self.line_is_blank(&buf[line_start..t]);
            self.line_len = 0;
            self.first_line = false;
            pos = t + term_len;
            line_start = pos;
            if blank {
                let event = self.take_event(chunk, event_start, pos)?;
                on_event(event);
                event_start = pos;
                self.pending_cr_ended_event = self.pending_cr;
            }
        }

        // The rest of the chunk is an unfinished line of an unfinished event.
        let tail = &buf[line_start..];
        if self.first_line {
            let have = self.line_len.min(3);
            let take = (3 - have).min(tail.len());
            self.first_line_head[have..have + take].copy_from_slice(&tail[..take]);
        }
        self.line_len += tail.len();
        if event_start < buf.len() {
            if self.carry.len() + (buf.len() - event_start) > self.max_event {
                return Err(self.fail());
            }
            self.carry.extend_from_slice(&buf[event_start..]);
        }
        Ok(())
    }

    /// The stream ended: returns the bytes of an unterminated last event, if any. The SSE
    /// grammar discards such an event; the proxy has already forwarded its bytes.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.line_len = 0;
        self.pending_cr = false;
        (!self.carry.is_empty()).then(|| self.carry.split().freeze())
    }

    /// A line is blank when it has no bytes, or when it is the stream's first line and holds
    /// nothing but the byte-order mark.
    fn line_is_blank(&self, in_chunk: &[u8]) -> bool {
        let len = self.line_len + in_chunk.len();
        if len == 0 {
            return true;
        }
        if !self.first_line || len != 3 {
            return false;
        }
        let mut head = self.first_line_head;
        let have = self.line_len.min(3);
        head[have..].copy_from_slice(&in_chunk[..3 - have]);
        &head == BOM
    }

    fn take_event(
        &mut self,
        chunk: &Bytes,
        start: usize,
        end: usize,
    ) -> Result<RawEvent, ScanError> {
        let len = self.carry.len() + (end - start);
        if len > self.max_event {
            return Err(self.fail());
        }
        let bytes = if self.carry.is_empty() {
            chunk.slice(start..end)
        } else {
            self.carry.extend_from_slice(&chunk[start..end]);
            self.carry.split().freeze()
        };
        let first = std::mem::replace(&mut self.at_stream_start, false);
        Ok(RawEvent::new(bytes, first))
    }

    fn fail(&mut self) -> ScanError {
        self.failed = true;
        self.carry = BytesMut::new();
        ScanError::EventTooLarge {
            limit: self.max_event,
        }
    }
}
