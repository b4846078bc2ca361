//! One response on its way to a tape, read piece by piece as it goes downstream: a JSON body
//! is gathered (up to a bound) and written as one line at its end; an SSE body is framed by
//! the project's memchr scanner and each event is written the moment it is complete, with
//! its id, event type and retry, then the stream's end.

use bytes::{Bytes, BytesMut};

/// A JSON body's pieces, kept as the refcounted reads they came in (one read: no copy).
type Pieces = Vec<Bytes>;

use super::format::Headers;
use super::recorder::Tap;
use crate::transport::sse::SseScanner;

/// A response being recorded.
#[derive(Debug)]
pub struct Collector {
    tap: Tap,
    status: u16,
    /// The response's headers, written with its first line.
    headers: Option<Headers>,
    body: Body,
    done: bool,
}

#[derive(Debug)]
enum Body {
    Json {
        pieces: Pieces,
        len: usize,
        max: usize,
        over: bool,
    },
    Sse(SseScanner),
}

// === impl Collector ===

impl Collector {
    /// A JSON (or any non-SSE) response, gathered up to `max` bytes (past it, the line keeps
    /// the status and headers only).
    pub fn json(tap: Tap, status: u16, headers: Headers, max: usize) -> Self {
        Self::new(
            tap,
            status,
            headers,
            Body::Json {
                pieces: Pieces::new(),
                len: 0,
                max,
                over: false,
            },
        )
    }

    /// An SSE response, framed with events up to `max_event` bytes.
    pub fn sse(tap: Tap, status: u16, headers: Headers, max_event: usize) -> Self {
        Self::new(tap, status, headers, Body::Sse(SseScanner::new(max_event)))
    }

    fn new(tap: Tap, status: u16, headers: Headers, body: Body) -> Self {
        Self {
            tap,
            status,
            headers: Some(headers),
            body,
            done: false,
        }
    }

    /// The tap (to end its tape after the response).
    pub fn tap(&self) -> &Tap {
        &self.tap
    }

    /// A piece of the body as it goes downstream.
    pub fn chunk(&mut self, chunk: &Bytes) {
        if self.done {
            return;
        }
        match &mut self.body {
            Body::Json {
                pieces,
                len,
                max,
                over,
            } => {
                *len += chunk.len();
                if *len > *max {
                    *over = true;
                    pieces.clear();
                } else if !chunk.is_empty() {
                    pieces.push(chunk.clone());
                }
            }
            Body::Sse(scanner) => {
                let (tap, status, headers) = (&mut self.tap, self.status, &mut self.headers);
                let framed = scanner.feed(chunk, |raw| {
                    if !raw.has_fields() {
                        return;
                    }
                    let event = raw.parse();
                    let data = event.data.map(Bytes::from);
                    let headers = headers.take().unwrap_or_default();
                    tap.event(status, headers, event.id, event.event, event.retry, data);
                });
                if framed.is_err() {
                    // An event past the bound: the proxy ends the stream; so does the tape.
                    self.finish();
                }
            }
        }
    }

    /// The body ended (or the exchange did): the JSON line, or the SSE stream's end.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let headers = self.headers.take().unwrap_or_default();
        match &mut self.body {
            Body::Json { pieces, over, .. } => {
                let body = match (pieces.len(), *over) {
                    (0, _) | (_, true) => None,
                    (1, false) => pieces.pop(),
                    (_, false) => {
                        let mut whole = BytesMut::new();
                        pieces.iter().for_each(|p| whole.extend_from_slice(p));
                        Some(whole.freeze())
                    }
                };
                self.tap.response(self.status, headers, body);
            }
            Body::Sse(_) => self.tap.end_of_stream(self.status, headers),
        }
    }
}

impl Drop for Collector {
    /// A response cut short (the client left, an error) still ends its lines on the tape.
    fn drop(&mut self) {
        self.finish();
    }
}
