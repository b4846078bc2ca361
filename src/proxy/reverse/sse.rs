//! SSE responses: headers that keep every hop from buffering, and per-chunk framing.
//!
//! The chunk Pingora hands to `response_body_filter` is forwarded as it is (zero-copy); the
//! scanner only frames it, to count events and to bound a runaway event. Nothing here waits for
//! a later chunk: an event reaches the client in the same write that brought it from upstream.
//!
//! When interceptor rules apply to server messages, [`SseStream::filter_chunk`] forwards
//! complete events only: each one the moment its last byte arrives, as its original bytes
//! unless a rule dropped or changed it. The unfinished tail of an event waits in the scanner
//! (bounded by `limits.max_sse_event`) for the rest of that event, never for a later event.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::Result;

use super::metrics::Metrics;
use crate::transport::sse::{cache_control, filter, Flow, Judge, ScanError, SseEvent, SseScanner};

/// Is this response an SSE stream?
pub fn is_event_stream(resp: &ResponseHeader) -> bool {
    crate::mcp::headers::is_event_stream(&resp.headers)
}

/// Header changes for an SSE response: no length (the stream is open-ended), no caching, no
/// buffering by nginx-style intermediaries, and no compression (compressors hold bytes back).
/// `no-cache` is added to the upstream's `Cache-Control`, never put in its place: its other
/// directives (`no-transform` above all) are the upstream's to give.
pub fn prepare_headers(resp: &mut ResponseHeader) -> Result<()> {
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.remove_header(&http::header::CONTENT_ENCODING);
    let lines: Vec<&[u8]> = resp
        .headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .map(http::HeaderValue::as_bytes)
        .collect();
    let cache_control = cache_control::with_directive(&lines, "no-cache");
    resp.insert_header(http::header::CACHE_CONTROL, cache_control)?;
    resp.insert_header("x-accel-buffering", "no")?;
    Ok(())
}

/// One SSE response on its way downstream.
#[derive(Debug)]
pub struct SseStream {
    scanner: SseScanner,
    /// Where the event in progress stands (filtered streams).
    flow: Flow,
    pub events: u64,
    /// Events go through the rules ([`Self::filter_chunk`]).
    filtered: bool,
    /// The cache's view of the stream (invalidating notifications).
    watch: Option<super::cache_taps::Watch>,
}

// === impl SseStream ===

impl SseStream {
    pub fn new(max_event: usize) -> Self {
        Self {
            scanner: SseScanner::new(max_event),
            flow: Flow::Boundary,
            events: 0,
            filtered: false,
            watch: None,
        }
    }

    /// The stream with the cache watching its notifications.
    pub fn watched(mut self, watch: Option<super::cache_taps::Watch>) -> Self {
        self.watch = watch;
        self
    }

    /// Is what went downstream so far whole events (a keep-alive comment here splits none)?
    /// Unfiltered, every upstream byte went on, so the scanner's place is the client's; filtered,
    /// only an event let flow early has left in part.
    pub fn at_event_boundary(&self) -> bool {
        match self.filtered {
            false => self.scanner.at_event_boundary(),
            true => self.flow != Flow::Flowing,
        }
    }

    /// Frames one upstream chunk (the chunk itself is forwarded unchanged by the caller).
    pub fn on_chunk(&mut self, chunk: &Bytes, metrics: &Metrics) -> Result<(), ScanError> {
        let mut events = 0;
        let watch = self.watch.as_ref();
        let result = self.scanner.feed(chunk, |event| {
            if event.has_fields() {
                events += 1;
                if let (Some(w), Some(data)) = (watch, event.data()) {
                    w.event(&data);
                }
            }
        });
        self.events += events;
        metrics.sse_events.inc_by(events);
        result
    }

    /// Frames one chunk and lets `judge` drop or replace events (see
    /// [`crate::transport::sse::filter`]). Returns what to forward instead of the chunk, or
    /// `None` to forward the chunk itself. `prefix` events (the proxy's own answers) go first.
    pub fn filter_chunk(
        &mut self,
        chunk: &Bytes,
        metrics: &Metrics,
        prefix: Vec<Bytes>,
        judge: &mut impl Judge,
    ) -> Result<Option<Bytes>, ScanError> {
        self.filtered = true;
        let f = match &self.watch {
            Some(watch) => {
                let mut judge = super::cache_taps::Watching {
                    inner: judge,
                    watch,
                };
                filter(&mut self.scanner, &mut self.flow, chunk, prefix, &mut judge)?
            }
            None => filter(&mut self.scanner, &mut self.flow, chunk, prefix, judge)?,
        };
        self.events += f.events;
        metrics.sse_events.inc_by(f.events);
        Ok(f.out)
    }

    /// The end of a filtered stream: the unterminated tail, unless it already flowed out.
    pub fn finish_filtered(&mut self) -> Option<Bytes> {
        let flowing = self.flow == Flow::Flowing;
        self.scanner.finish().filter(|_| !flowing)
    }

    pub fn finish(&mut self) -> Option<Bytes> {
        self.scanner.finish()
    }
}

/// The proxy's own message as an SSE event.
pub fn message_event(data: &[u8]) -> Bytes {
    let mut event = SseEvent::message(String::from_utf8_lossy(data));
    event.event = Some("message".into());
    event.encode()
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

        let mut kept = ResponseHeader::build(200, None).unwrap();
        kept.append_header("cache-control", "no-cache").unwrap();
        kept.append_header("cache-control", "no-transform").unwrap();
        prepare_headers(&mut kept).unwrap();
        let values: Vec<_> = kept.headers.get_all("cache-control").iter().collect();
        assert_eq!(values, ["no-cache, no-transform"], "one line, nothing lost");

        let mut json = ResponseHeader::build(200, None).unwrap();
        json.insert_header("content-type", "application/json")
            .unwrap();
        assert!(!is_event_stream(&json));
    }

    /// Passes events whose data starts with `k`, drops the rest.
    struct KeepK;

    impl Judge for KeepK {
        fn early(&mut self, data: &[u8], _complete: bool) -> crate::transport::sse::Early {
            match data.first() {
                Some(b'k') => crate::transport::sse::Early::Pass,
                _ => crate::transport::sse::Early::Hold,
            }
        }
        fn judge(&mut self, _: &[u8]) -> crate::transport::sse::Verdict {
            crate::transport::sse::Verdict::Drop
        }
    }

    #[test]
    fn filtering_counts_what_it_forwards_and_puts_the_proxys_events_first() {
        let metrics = Metrics::new().unwrap();
        let mut stream = SseStream::new(1024);
        let chunk = Bytes::from_static(b"data: k1\n\ndata: x\n\ndata: k2");
        let out = stream
            .filter_chunk(&chunk, &metrics, vec![message_event(b"{}")], &mut KeepK)
            .unwrap()
            .unwrap();
        assert_eq!(
            &out[..],
            &b"event: message\ndata: {}\n\ndata: k1\n\ndata: k2"[..]
        );
        assert_eq!(stream.events, 1);
        assert_eq!(
            stream.finish_filtered(),
            None,
            "the flowing tail went out already"
        );
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
