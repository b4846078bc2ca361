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

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::Result;

use super::metrics::Metrics;
use crate::interceptor::EventPlan;
use crate::transport::sse::{ScanError, SseEvent, SseScanner};

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

    /// Frames one chunk and lets `decide` (given an event's data) drop or replace events.
    /// Returns what to forward instead of the chunk, or `None` to forward the chunk itself
    /// (nothing changed and it held whole events only). `prefix` events (the proxy's own
    /// answers) go out first.
    pub fn filter_chunk(
        &mut self,
        chunk: &Bytes,
        metrics: &Metrics,
        prefix: Vec<Bytes>,
        mut decide: impl FnMut(&[u8]) -> EventPlan,
    ) -> Result<Option<Bytes>, ScanError> {
        let started_clean = self.scanner.at_event_boundary();
        let mut changed = !prefix.is_empty();
        let mut out = prefix;
        let mut events = 0;
        let result = self.scanner.feed(chunk, |event| {
            if !event.has_fields() {
                out.push(event.into_bytes());
                return;
            }
            events += 1;
            let plan = match event.data() {
                Some(data) => decide(&data),
                None => EventPlan::Pass,
            };
            match plan {
                EventPlan::Pass => out.push(event.into_bytes()),
                EventPlan::Drop => {
                    changed = true;
                    events -= 1;
                }
                EventPlan::Replace(data) => {
                    changed = true;
                    let mut new = event.parse();
                    new.data = Some(data);
                    out.push(new.encode());
                }
            }
        });
        self.events += events;
        metrics.sse_events.inc_by(events);
        result?;
        if !changed && started_clean && self.scanner.at_event_boundary() {
            return Ok(None);
        }
        Ok(Some(concat(out)))
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

fn concat(parts: Vec<Bytes>) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            parts.iter().for_each(|p| all.extend_from_slice(p));
            all.freeze()
        }
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
    fn filtering_forwards_whole_events_and_the_chunk_itself_when_untouched() {
        let metrics = Metrics::new().unwrap();
        let mut stream = SseStream::new(1024);
        let keep = |_: &[u8]| EventPlan::Pass;
        let whole = Bytes::from_static(b"data: a\n\n: keepalive\n\n");
        assert_eq!(
            stream.filter_chunk(&whole, &metrics, vec![], keep).unwrap(),
            None
        );
        // An event split across reads leaves once, whole, when its end arrives.
        let first = stream
            .filter_chunk(
                &Bytes::from_static(b"id: 1\ndata: b\n\nda"),
                &metrics,
                vec![],
                keep,
            )
            .unwrap();
        assert_eq!(first.as_deref(), Some(&b"id: 1\ndata: b\n\n"[..]));
        let rest = stream
            .filter_chunk(&Bytes::from_static(b"ta: c\n\n"), &metrics, vec![], keep)
            .unwrap();
        assert_eq!(rest.as_deref(), Some(&b"data: c\n\n"[..]));
        let out = stream
            .filter_chunk(
                &Bytes::from_static(b"id: 9\ndata: drop\n\nid: 10\nevent: message\ndata: old\n\n"),
                &metrics,
                vec![message_event(b"{}")],
                |data| match data {
                    b"drop" => EventPlan::Drop,
                    _ => EventPlan::Replace("new".into()),
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            &out[..],
            &b"event: message\ndata: {}\n\nevent: message\nid: 10\ndata: new\n\n"[..]
        );
        assert_eq!(stream.events, 4);
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
