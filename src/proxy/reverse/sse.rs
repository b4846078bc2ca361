//! SSE responses: headers that keep every hop from buffering, and per-chunk framing.
//!
//! The chunk Pingora hands to `response_body_filter` is forwarded as it is (zero-copy); the
//! scanner only frames it, to count events and to bound a runaway event. Nothing here waits for
//! a later chunk: an event reaches the client in the same write that brought it from upstream.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::Result;

use super::metrics::Metrics;
use crate::transport::sse::{ScanError, SseScanner};

/// Is this response an SSE stream?
pub fn is_event_stream(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..17)
                .is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream"))
        })
}

/// Header changes for an SSE response: no length (the stream is open-ended), no caching, no
/// buffering by nginx-style intermediaries, and no compression (compressors hold bytes back).
pub fn prepare_headers(resp: &mut ResponseHeader) -> Result<()> {
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.remove_header(&http::header::CONTENT_ENCODING);
    resp.insert_header(http::header::CACHE_CONTROL, "no-cache")?;
    resp.insert_header("x-accel-buffering", "no")?;
    Ok(())
}

/// One SSE response on its way downstream.
#[derive(Debug)]
pub struct SseStream {
    scanner: SseScanner,
    pub events: u64,
}

// === impl SseStream ===

impl SseStream {
    pub fn new(max_event: usize) -> Self {
        Self {
            scanner: SseScanner::new(max_event),
            events: 0,
        }
    }

    /// Frames one upstream chunk (the chunk itself is forwarded unchanged by the caller).
    pub fn on_chunk(&mut self, chunk: &Bytes, metrics: &Metrics) -> Result<(), ScanError> {
        let mut events = 0;
        let result = self.scanner.feed(chunk, |event| {
            if event.has_fields() {
                events += 1;
            }
        });
        self.events += events;
        metrics.sse_events.inc_by(events);
        result
    }

    pub fn finish(&mut self) -> Option<Bytes> {
        self.scanner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_event_streams_and_prepares_headers() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("content-type", "Text/Event-Stream; charset=utf-8")
            .unwrap();
        resp.insert_header("content-length", "10").unwrap();
        assert!(is_event_stream(&resp));
        prepare_headers(&mut resp).unwrap();
        assert!(resp.headers.get("content-length").is_none());
        assert_eq!(resp.headers["cache-control"], "no-cache");
        assert_eq!(resp.headers["x-accel-buffering"], "no");

        let mut json = ResponseHeader::build(200, None).unwrap();
        json.insert_header("content-type", "application/json")
            .unwrap();
        assert!(!is_event_stream(&json));
    }

    #[test]
    fn counts_events_but_not_keepalives() {
        let metrics = Metrics::new().unwrap();
        let mut stream = SseStream::new(1024);
        stream
            .on_chunk(
                &Bytes::from_static(b": keepalive\n\ndata: a\n\nda"),
                &metrics,
            )
            .unwrap();
        stream
            .on_chunk(&Bytes::from_static(b"ta: b\n\n"), &metrics)
            .unwrap();
        assert_eq!(stream.events, 2);
        assert_eq!(metrics.sse_events.get(), 2);
    }
}
