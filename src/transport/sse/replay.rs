//! Proxy event ids and the bounded per-stream replay buffer.
//!
//! Every event of a session's SSE streams leaves the proxy with the proxy's own id,
//! `<stream>-<seq>`: unique in the session (streams are numbered per session), it names the
//! stream the event belongs to (a resuming client gets only that stream's events, as the spec
//! requires), and it never shows the upstream's id. The upstream's id, when it sent one, is
//! kept beside the event so the proxy can resume the upstream itself.
//!
//! The buffer holds encoded events as `Bytes` (a replay is a list of refcounted slices), bounded
//! by events and bytes, whichever hits first. Bytes are counted in a shared total so memory of
//! every buffer is one number (`shadowcat_replay_buffer_bytes`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memchr2;

/// A proxy event id: stream number and sequence number within it (both from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventId {
    pub stream: u32,
    pub seq: u64,
}

impl EventId {
    /// Parses `<stream>-<seq>`; anything else is not an id this proxy issued.
    pub fn parse(text: &str) -> Option<Self> {
        let (stream, seq) = text.trim().split_once('-')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(stream) || !digits(seq) {
            return None;
        }
        Some(Self {
            stream: stream.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.stream, self.seq)
    }
}

/// The event block `raw` with its `id:` lines replaced by `id: <id>` (first line); every other line is
/// kept byte for byte, line ends included.
pub fn with_id(raw: &[u8], id: EventId) -> Bytes {
    let mut rest = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let mut out = BytesMut::with_capacity(raw.len() + 24);
    out.put_slice(b"id: ");
    // `itoa`, not `to_string`: the formatting machinery was a third of this function's cost.
    let mut digits = itoa::Buffer::new();
    out.put_slice(digits.format(id.stream).as_bytes());
    out.put_u8(b'-');
    out.put_slice(digits.format(id.seq).as_bytes());
    out.put_u8(b'\n');
    while !rest.is_empty() {
        let (line_len, end_len) = match memchr2(b'\n', b'\r', rest) {
            Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (i, 2),
            Some(i) => (i, 1),
            None => (rest.len(), 0),
        };
        let line = &rest[..line_len];
        let is_id = line == b"id" || line.starts_with(b"id:");
        if !is_id {
            out.put_slice(&rest[..line_len + end_len]);
        }
        rest = &rest[line_len + end_len..];
    }
    out.freeze()
}

/// Limits of one stream's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLimits {
    pub events: usize,
    pub bytes: usize,
}

#[derive(Debug)]
struct Buffered {
    seq: u64,
    bytes: Bytes,
}

/// Upstream ids of events no longer buffered, kept (small) so the upstream can still be
/// resumed from them.
const EVICTED_IDS: usize = 4096;

/// One stream's buffered events, oldest first.
#[derive(Debug)]
pub struct ReplayBuffer {
    limits: ReplayLimits,
    events: VecDeque<Buffered>,
    bytes: usize,
    /// (seq, upstream id) for every event the upstream gave an id, buffered or not (bounded).
    upstream_ids: VecDeque<(u64, Box<str>)>,
    /// The highest sequence number pushed.
    last_seq: u64,
    total: Arc<AtomicI64>,
}

/// Why a replay is impossible: the client's event is older than what the buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evicted;

impl ReplayBuffer {
    /// `total` counts the bytes of every buffer (the gauge).
    pub fn new(limits: ReplayLimits, total: Arc<AtomicI64>) -> Self {
        Self {
            limits,
            events: VecDeque::new(),
            bytes: 0,
            upstream_ids: VecDeque::new(),
            last_seq: 0,
            total,
        }
    }

    /// Appends an encoded event, evicting the oldest past either bound. An event larger than
    /// the byte bound, or one that would pass the shared total (`over_total`), is not kept at
    /// all, and neither is anything before it (a later replay from before it is then a miss,
    /// never a replay with a gap).
    pub fn push(&mut self, seq: u64, upstream_id: Option<&str>, bytes: Bytes, over_total: bool) {
        self.last_seq = seq;
        if let Some(u) = upstream_id {
            if self.upstream_ids.len() == EVICTED_IDS {
                self.upstream_ids.pop_front();
            }
            self.upstream_ids.push_back((seq, u.into()));
        }
        if over_total || bytes.len() > self.limits.bytes || self.limits.events == 0 {
            // Everything before it can no longer be replayed contiguously.
            self.clear();
            return;
        }
        self.bytes += bytes.len();
        self.total.fetch_add(bytes.len() as i64, Ordering::Relaxed);
        self.events.push_back(Buffered { seq, bytes });
        while self.events.len() > self.limits.events || self.bytes > self.limits.bytes {
            self.evict_one();
        }
    }

    fn evict_one(&mut self) {
        if let Some(old) = self.events.pop_front() {
            self.bytes -= old.bytes.len();
            self.total
                .fetch_sub(old.bytes.len() as i64, Ordering::Relaxed);
        }
    }

    fn clear(&mut self) {
        while !self.events.is_empty() {
            self.evict_one();
        }
    }

    /// The events after `seq`, in order; `Evicted` when some of them are gone.
    pub fn after(&self, seq: u64) -> Result<Vec<Bytes>, Evicted> {
        if seq >= self.last_seq {
            return Ok(Vec::new());
        }
        let first = self.events.front().map_or(self.last_seq + 1, |e| e.seq);
        if seq + 1 < first {
            return Err(Evicted);
        }
        Ok(self
            .events
            .iter()
            .filter(|e| e.seq > seq)
            .map(|e| e.bytes.clone())
            .collect())
    }

    /// The highest sequence number pushed (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The upstream's id of event `seq`, if it gave one and it is still remembered.
    pub fn upstream_id(&self, seq: u64) -> Option<&str> {
        self.upstream_ids
            .iter()
            .rev()
            .find(|(s, _)| *s == seq)
            .map(|(_, u)| &**u)
    }

    /// The newest upstream id at or before `seq` (to resume the upstream after it).
    pub fn upstream_id_at_or_before(&self, seq: u64) -> Option<(u64, &str)> {
        self.upstream_ids
            .iter()
            .rev()
            .find(|(s, _)| *s <= seq)
            .map(|(s, u)| (*s, &**u))
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes in every buffer sharing this one's total.
    pub fn total_now(&self) -> usize {
        usize::try_from(self.total.load(Ordering::Relaxed)).unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl Drop for ReplayBuffer {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes as i64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &'static str) -> &'static [u8] {
        text.as_bytes()
    }

    #[test]
    fn ids_round_trip_and_foreign_ids_are_not_ours() {
        let id = EventId { stream: 3, seq: 17 };
        assert_eq!(id.to_string(), "3-17");
        assert_eq!(EventId::parse("3-17"), Some(id));
        for other in ["", "3", "3-", "-1", "a-1", "event-5", "1-2-3", "1-+2"] {
            assert_eq!(EventId::parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_proxy_id_replaces_the_upstreams() {
        let id = EventId { stream: 1, seq: 2 };
        let out = with_id(event("event: message\r\nid: up-9\r\ndata: {}\r\n\r\n"), id);
        assert_eq!(&out[..], b"id: 1-2\nevent: message\r\ndata: {}\r\n\r\n");
        let out = with_id(event("data: x\n\n"), id);
        assert_eq!(&out[..], b"id: 1-2\ndata: x\n\n");
        // A priming event: an id and empty data.
        let out = with_id(event("id: e1\nretry: 500\ndata: \n\n"), id);
        assert_eq!(&out[..], b"id: 1-2\nretry: 500\ndata: \n\n");
    }

    #[test]
    fn the_written_id_is_the_displayed_id() {
        for (stream, seq) in [
            (1, 1),
            (0, 0),
            (9, 10),
            (u32::MAX, u64::MAX),
            (42, 1_000_007),
        ] {
            let id = EventId { stream, seq };
            let out = with_id(b"data: x\n\n", id);
            assert_eq!(out, format!("id: {id}\ndata: x\n\n").into_bytes());
        }
    }

    #[test]
    fn replays_after_an_id_within_both_bounds() {
        let total = Arc::new(AtomicI64::new(0));
        let mut b = ReplayBuffer::new(
            ReplayLimits {
                events: 3,
                bytes: 100,
            },
            total.clone(),
        );
        for seq in 1..=5u64 {
            b.push(
                seq,
                Some(&format!("u{seq}")),
                Bytes::from(vec![b'x'; 10]),
                false,
            );
        }
        assert_eq!(b.len(), 3);
        assert_eq!(total.load(Ordering::Relaxed), 30);
        assert_eq!(b.after(2).unwrap().len(), 3);
        assert_eq!(b.after(4).unwrap().len(), 1);
        assert_eq!(b.after(5).unwrap().len(), 0);
        assert_eq!(b.after(1), Err(Evicted));
        assert_eq!(
            b.upstream_id(1),
            Some("u1"),
            "upstream ids outlive their events"
        );
        b.push(6, None, Bytes::from(vec![b'y'; 60]), false);
        assert!(b.bytes() <= 100);
        assert_eq!(b.upstream_id_at_or_before(6), Some((5, "u5")));
        b.push(7, None, Bytes::from(vec![b'z'; 10]), true);
        assert_eq!(b.len(), 0, "past the shared total nothing is kept");
        assert_eq!(
            b.after(6),
            Err(Evicted),
            "a replay from before it is a miss"
        );
        drop(b);
        assert_eq!(
            total.load(Ordering::Relaxed),
            0,
            "the total forgets a dropped buffer"
        );
    }
}
