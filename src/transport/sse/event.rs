//! SSE event blocks: the raw bytes as framed, borrowed field access, and an owned event that
//! can be re-encoded.
//!
//! Most events are never parsed: the proxy forwards the upstream's bytes. Field access is lazy
//! ([`RawEvent::fields`] borrows, allocates nothing) so counting events or reading an `id:` costs
//! one more `memchr` pass over an event, and only the events an interceptor must change are
//! built into an [`SseEvent`] and encoded again.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memchr2;

/// One event block exactly as the upstream sent it, through the blank line that ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    bytes: Bytes,
    /// This block starts the stream, so a leading byte-order mark is not part of its first line.
    starts_stream: bool,
}

/// A field line of an event block: `name: value` (one leading space of the value removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

// === impl RawEvent ===

impl RawEvent {
    pub(crate) fn new(bytes: Bytes, starts_stream: bool) -> Self {
        Self {
            bytes,
            starts_stream,
        }
    }

    /// The original bytes; forwarding these is forwarding the event unchanged.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Field lines in order; comment lines (starting with `:`) are skipped.
    pub fn fields(&self) -> Fields<'_> {
        let mut rest = &self.bytes[..];
        if self.starts_stream {
            rest = rest.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(rest);
        }
        Fields { rest }
    }

    /// True when the block has at least one field: it is an event, not a comment or a stray
    /// blank line (keep-alives are comment-only blocks).
    pub fn has_fields(&self) -> bool {
        self.fields().next().is_some()
    }

    /// The value of the last `id:` field, if any (as the SSE grammar sets the last event id).
    pub fn id(&self) -> Option<&[u8]> {
        self.fields()
            .filter(|f| f.name == b"id" && !f.value.contains(&0))
            .last()
            .map(|f| f.value)
    }

    /// The event's data: its `data:` lines joined with LF, borrowed when there is one line
    /// (the usual case: one JSON-RPC message per line). `None` when it has no `data:` line.
    pub fn data(&self) -> Option<Cow<'_, [u8]>> {
        let mut lines = self.fields().filter(|f| f.name == b"data");
        let first = lines.next()?;
        let Some(second) = lines.next() else {
            return Some(Cow::Borrowed(first.value));
        };
        let mut out = Vec::with_capacity(first.value.len() + second.value.len() + 1);
        out.extend_from_slice(first.value);
        for line in std::iter::once(second).chain(lines) {
            out.push(b'\n');
            out.extend_from_slice(line.value);
        }
        Some(Cow::Owned(out))
    }

    /// Builds the owned event (allocates; used when an event must be changed).
    pub fn parse(&self) -> SseEvent {
        let mut event = SseEvent::default();
        for field in self.fields() {
            let value = || String::from_utf8_lossy(field.value).into_owned();
            match field.name {
                b"data" => match &mut event.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(&String::from_utf8_lossy(field.value));
                    }
                    None => event.data = Some(value()),
                },
                b"event" => event.event = Some(value()),
                b"id" if !field.value.contains(&0) => event.id = Some(value()),
                b"retry"
                    if !field.value.is_empty() && field.value.iter().all(u8::is_ascii_digit) =>
                {
                    event.retry = std::str::from_utf8(field.value)
                        .ok()
                        .and_then(|s| s.parse().ok());
                }
                _ => {}
            }
        }
        event
    }
}

/// Iterator over the field lines of one event block.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (line, next) = match memchr2(b'\n', b'\r', self.rest) {
                Some(t) => {
                    let skip = if self.rest[t] == b'\r' && self.rest.get(t + 1) == Some(&b'\n') {
                        2
                    } else {
                        1
                    };
                    (&self.rest[..t], &self.rest[t + skip..])
                }
                None => (self.rest, &[][..]),
            };
            self.rest = next;
            if line.is_empty() {
                // The blank line ends the block.
                self.rest = &[];
                return None;
            }
            if line[0] == b':' {
                continue;
            }
            let (name, value) = match memchr::memchr(b':', line) {
                Some(c) => {
                    let value = &line[c + 1..];
                    (&line[..c], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &[][..]),
            };
            return Some(Field { name, value });
        }
    }
}

/// An owned SSE event, for events an interceptor changes or the proxy writes itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    /// `None` when the block had no `data:` line; `Some("")` for an empty one (MCP 2025-11-25
    /// priming events are an id with empty data).
    pub data: Option<String>,
    pub retry: Option<u64>,
}

// === impl SseEvent ===

impl SseEvent {
    /// An event carrying `data` (for example one JSON-RPC message).
    pub fn message(data: impl Into<String>) -> Self {
        Self {
            data: Some(data.into()),
            ..Self::default()
        }
    }

    /// Encodes with LF line ends, one `data:` line per line of data, and the closing blank line.
    pub fn encode(&self) -> Bytes {
        let data_len = self.data.as_ref().map_or(0, |d| d.len() + 16);
        let mut out = BytesMut::with_capacity(data_len + 64);
        if let Some(event) = &self.event {
            put_field(&mut out, "event", event);
        }
        if let Some(id) = &self.id {
            put_field(&mut out, "id", id);
        }
        if let Some(retry) = self.retry {
            put_field(&mut out, "retry", &retry.to_string());
        }
        if let Some(data) = &self.data {
            // Any line end inside data would end the field early: split on all three forms.
            let mut rest = data.as_str();
            loop {
                match rest.find(['\n', '\r']) {
                    Some(i) => {
                        put_field(&mut out, "data", &rest[..i]);
                        let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                        rest = &rest[i + skip..];
                    }
                    None => {
                        put_field(&mut out, "data", rest);
                        break;
                    }
                }
            }
        }
        out.put_u8(b'\n');
        out.freeze()
    }
}

fn put_field(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_u8(b'\n');
}

/// The keep-alive the proxy writes during upstream silence: a comment-only block, which every
/// SSE client ignores.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";
