//! An observer of the bytes an HTTP/1.1 client reads from its server, across every response on
//! one keep-alive connection. It never changes a byte; it answers three questions the upstream
//! socket wrapper needs: is a response head overdue, is an SSE body streaming, and would a
//! keep-alive comment fit in right now without breaking the chunk framing or an SSE event?
//!
//! Pingora parses the responses for real; on anything it cannot follow, this observer goes
//! opaque and from then on never asks for an injection.

use memchr::memchr;

/// Largest response head followed (Pingora's own limit is smaller).
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines followed (Pingora's own limit).
const MAX_HEADERS: usize = 256;

/// A keep-alive comment as one chunk: 0xd = 13 = `": keepalive\n\n".len()`.
const CHUNKED_KEEPALIVE: &[u8] = b"d\r\n: keepalive\n\n\r\n";
const RAW_KEEPALIVE: &[u8] = b": keepalive\n\n";
/// A reconnect hint (`retry:` in ms) and the last chunk: a clean end for an SSE body whose
/// upstream went away, so the client reconnects (0xd = 13 = `"retry: 1000\n\n".len()`).
/// Filler the proxy may add to finish a cut chunk (never shown to a client: a claimed SSE
/// body reaches the client from its stream, not from these bytes).
const MAX_FILLER: u64 = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between responses, or inside a head (bytes gathered in `head`).
    Head,
    /// A body of known length: bytes left.
    Length(u64),
    /// Reading a chunk-size line; `started` once any byte of it arrived.
    ChunkSize {
        size: u64,
        started: bool,
        ext: bool,
    },
    /// The size line's CR arrived; its LF must follow.
    ChunkSizeLf(u64),
    ChunkData(u64),
    /// The CRLF after chunk data: bytes left of it.
    ChunkEnd(u8),
    /// Trailer lines after the last chunk; `line` = bytes on the current line.
    Trailer {
        line: usize,
    },
    /// Close-delimited body: until EOF.
    Close,
    /// Lost track: observe nothing, inject nothing.
    Opaque,
}

/// See the module docs.
#[derive(Debug)]
pub struct ResponseFraming {
    state: State,
    head: Vec<u8>,
    /// A request went out and its (final) response head has not come yet.
    awaiting: bool,
    /// The current body is a 2xx `text/event-stream`.
    sse: bool,
    /// The last payload bytes of the SSE body (to tell an event boundary).
    tail: [u8; 3],
    tail_len: usize,
    /// The last response said the connection closes after it (`Connection: close`, or
    /// HTTP/1.0 without keep-alive).
    closing: bool,
}

impl Default for ResponseFraming {
    fn default() -> Self {
        Self::new()
    }
}

// === impl ResponseFraming ===

impl ResponseFraming {
    pub fn new() -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            awaiting: false,
            sse: false,
            tail: [0; 3],
            tail_len: 0,
            closing: false,
        }
    }

    /// The connection sits cleanly between exchanges: every response was complete, nothing is
    /// pending, and the server did not announce a close. Only then may it carry another request.
    pub fn reusable(&self) -> bool {
        self.state == State::Head && self.head.is_empty() && !self.awaiting && !self.closing
    }

    /// The client wrote request bytes.
    pub fn request_written(&mut self) {
        if self.state == State::Head && self.head.is_empty() {
            self.awaiting = true;
        }
    }

    /// A request is waiting for its response head.
    pub fn awaiting_head(&self) -> bool {
        self.awaiting
    }

    /// An SSE body is streaming.
    pub fn in_sse_body(&self) -> bool {
        self.sse && !matches!(self.state, State::Head | State::Opaque)
    }

    /// The bytes to inject for a keep-alive now, if that is safe: in an SSE body, between
    /// events, and between chunks (never inside a length-delimited body).
    pub fn keepalive_injection(&self) -> Option<&'static [u8]> {
        if !self.in_sse_body() || !self.at_event_boundary() {
            return None;
        }
        match self.state {
            State::ChunkSize { started: false, .. } => Some(CHUNKED_KEEPALIVE),
            State::Close => Some(RAW_KEEPALIVE),
            _ => None,
        }
    }

    /// Between two chunks of a chunked SSE body (where another response's chunks can follow).
    pub fn at_chunk_boundary(&self) -> bool {
        self.in_sse_body() && matches!(self.state, State::ChunkSize { started: false, .. })
    }

    /// The bytes that end a chunked SSE body cleanly from wherever it was cut (filler for the
    /// rest of a chunk, then the last chunk), for a body whose upstream went away while the
    /// proxy holds the stream itself. `None`: not a chunked body, or too much filler.
    pub fn clean_end_injection(&self) -> Option<Vec<u8>> {
        if !self.in_sse_body() {
            return None;
        }
        let mut out = Vec::new();
        match self.state {
            State::ChunkSize { started: false, .. } => {}
            State::ChunkData(left) if left <= MAX_FILLER => {
                out.resize(left as usize, b'\n');
                out.extend_from_slice(b"\r\n");
            }
            State::ChunkEnd(2) => out.extend_from_slice(b"\r\n"),
            State::ChunkEnd(_) => out.push(b'\n'),
            _ => return None,
        }
        out.extend_from_slice(b"0\r\n\r\n");
        Some(out)
    }

    /// No payload yet, or it ends with a blank line: `\n\n`, `\r\r`, `\r\n\r\n` (which ends
    /// with `\n\r\n`, so three bytes of tail suffice) or `\n\r\n`. Conservative: `\n\r` is
    /// also a blank line but could be the start of a CRLF, so it waits.
    fn at_event_boundary(&self) -> bool {
        let t = &self.tail[..self.tail_len];
        t.is_empty() || t.ends_with(b"\n\n") || t.ends_with(b"\r\r") || t.ends_with(b"\n\r\n")
    }

    /// Advances over bytes read from the server.
    pub fn observe(&mut self, bytes: &[u8]) {
        self.observe_with(bytes, &mut |_| {});
    }

    /// [`Self::observe`], handing every piece of SSE body payload (the bytes inside the
    /// chunk framing) to `sink`, in order.
    pub fn observe_with(&mut self, mut bytes: &[u8], sink: &mut dyn FnMut(&[u8])) {
        while !bytes.is_empty() {
            let used = match self.state {
                State::Opaque => return,
                State::Head => self.on_head(bytes),
                State::Length(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    self.payload(&bytes[..n], sink);
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        self.finish()
                    } else {
                        State::Length(left)
                    };
                    n
                }
                State::ChunkSize { size, started, ext } => {
                    self.on_chunk_size(bytes[0], size, started, ext);
                    1
                }
                State::ChunkSizeLf(size) => {
                    self.state = match bytes[0] {
                        b'\n' => Self::after_size_line(size),
                        _ => State::Opaque,
                    };
                    1
                }
                State::ChunkData(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    self.payload(&bytes[..n], sink);
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd(2)
                    } else {
                        State::ChunkData(left)
                    };
                    n
                }
                State::ChunkEnd(left) => {
                    let expected = if left == 2 { b'\r' } else { b'\n' };
                    self.state = match (bytes[0] == expected, left) {
                        (true, 2) => State::ChunkEnd(1),
                        (true, _) => State::ChunkSize {
                            size: 0,
                            started: false,
                            ext: false,
                        },
                        (false, _) => State::Opaque,
                    };
                    1
                }
                State::Trailer { line } => {
                    self.state = match bytes[0] {
                        b'\n' if line == 0 => self.finish(),
                        b'\n' => State::Trailer { line: 0 },
                        b'\r' => State::Trailer { line },
                        _ => State::Trailer { line: line + 1 },
                    };
                    1
                }
                State::Close => {
                    self.payload(bytes, sink);
                    bytes.len()
                }
            };
            bytes = &bytes[used..];
        }
    }

    /// Gathers head bytes; returns how many of `bytes` belonged to the head. The head buffer
    /// never holds more than `MAX_HEAD` bytes: a longer head sends the observer opaque.
    fn on_head(&mut self, bytes: &[u8]) -> usize {
        let before = self.head.len();
        let take = bytes.len().min(MAX_HEAD.saturating_sub(before));
        // Only the new bytes (and 3 before them) can complete "\r\n\r\n".
        let mut at = before.saturating_sub(3);
        self.head.extend_from_slice(&bytes[..take]);
        let end = loop {
            match memchr(b'\n', &self.head[at..]) {
                Some(i) => {
                    let nl = at + i;
                    if nl >= 3 && &self.head[nl - 3..=nl] == b"\r\n\r\n" {
                        break Some(nl + 1);
                    }
                    at = nl + 1;
                }
                None => break None,
            }
        };
        let Some(end) = end else {
            if self.head.len() >= MAX_HEAD {
                self.go_opaque();
            }
            return bytes.len();
        };
        let used = end - before;
        self.head.truncate(end);
        self.state = self.parse_head();
        self.head.clear();
        if self.head.capacity() > 4096 {
            // One huge head must not pin 64 KiB for the life of a long SSE connection.
            self.head = Vec::new();
        }
        used
    }

    fn parse_head(&mut self) -> State {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(_)) = resp.parse(&self.head) else {
            self.awaiting = false;
            return State::Opaque;
        };
        let status = resp.code.unwrap_or(0);
        if status == 101 {
            // Switching protocols: what follows is not HTTP/1.1 any more.
            self.awaiting = false;
            return State::Opaque;
        }
        if (100..200).contains(&status) {
            // Interim: the final head is still due.
            return State::Head;
        }
        self.awaiting = false;
        let header = |name: &str| {
            resp.headers
                .iter()
                .rev()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
        };
        let connection = header("connection").unwrap_or_default();
        self.closing = connection.contains("close")
            || (resp.version == Some(0) && !connection.contains("keep-alive"));
        self.sse = (200..300).contains(&status)
            && header("content-type").is_some_and(|v| v.starts_with("text/event-stream"));
        self.tail_len = 0;
        if status == 204 || status == 304 {
            return self.finish();
        }
        if let Some(codings) = header("transfer-encoding") {
            // RFC 9112 6.3: chunked when it is the last coding, otherwise read until close.
            return if codings.rsplit(',').next().map(str::trim) == Some("chunked") {
                State::ChunkSize {
                    size: 0,
                    started: false,
                    ext: false,
                }
            } else {
                State::Close
            };
        }
        match header("content-length").map(|v| v.parse::<u64>()) {
            Some(Ok(0)) => self.finish(),
            Some(Ok(n)) => State::Length(n),
            Some(Err(_)) => State::Opaque,
            None => State::Close,
        }
    }

    fn on_chunk_size(&mut self, b: u8, size: u64, started: bool, ext: bool) {
        let next = |ext| State::ChunkSize {
            size,
            started: true,
            ext,
        };
        self.state = match b {
            // A size line needs at least one hex digit before anything else.
            _ if !started && !b.is_ascii_hexdigit() => State::Opaque,
            b'\r' => State::ChunkSizeLf(size),
            b'\n' => Self::after_size_line(size),
            _ if ext => next(true),
            // Extensions (after optional whitespace) are skipped to the end of the line.
            b';' | b' ' | b'\t' => next(true),
            _ => match (b as char).to_digit(16) {
                Some(d) if size < (1 << 56) => State::ChunkSize {
                    size: size * 16 + u64::from(d),
                    started: true,
                    ext,
                },
                _ => State::Opaque,
            },
        };
    }

    fn after_size_line(size: u64) -> State {
        if size == 0 {
            State::Trailer { line: 0 }
        } else {
            State::ChunkData(size)
        }
    }

    fn payload(&mut self, p: &[u8], sink: &mut dyn FnMut(&[u8])) {
        if !self.sse || p.is_empty() {
            return;
        }
        sink(p);
        let keep = p.len().min(3);
        let old_keep = (3 - keep).min(self.tail_len);
        let mut t = [0u8; 3];
        t[..old_keep].copy_from_slice(&self.tail[self.tail_len - old_keep..self.tail_len]);
        t[old_keep..old_keep + keep].copy_from_slice(&p[p.len() - keep..]);
        self.tail = t;
        self.tail_len = old_keep + keep;
    }

    /// A response is complete: back to waiting for the next head.
    fn finish(&mut self) -> State {
        self.sse = false;
        self.tail_len = 0;
        State::Head
    }

    fn go_opaque(&mut self) {
        self.state = State::Opaque;
        self.head = Vec::new();
        self.awaiting = false;
        self.sse = false;
    }
}

#[cfg(test)]
#[path = "h1_framing_tests.rs"]
mod tests;
