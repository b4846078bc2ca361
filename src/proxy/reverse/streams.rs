//! A session's SSE streams as the proxy holds them (MCP 2025-03-26 to 2025-11-25): proxy event
//! ids, the replay buffer, and the live tail that a resuming client follows. No Pingora here;
//! see `README.md` beside this file for the whole design.
//!
//! A [`LiveStream`] takes each upstream read of the body (from `response_body_filter`, or
//! from the task that keeps reading after the client left), frames it, lets the interceptor rules judge each event, gives every event
//! the proxy's id, buffers it, and queues it for the client attached to the stream (the
//! response drains the queue right after each read, so one upstream read leaves as one write). With nobody attached it only buffers, so a
//! stream whose client went away keeps filling its buffer for the detached grace period.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::interceptor::OwnedJudge;
use crate::mcp::sniff::sniff;
use crate::transport::sse::{
    verdict, with_id, EventId, Evicted, ReplayBuffer, ReplayLimits, ScanError, SseScanner, Verdict,
};
use crate::transport::upstream_body::Resumable;
use crate::upstream_client::{empty_body, RequestBody};

/// The reconnect hint a client gets when the upstream failed under its stream.
pub const RETRY_HINT: &[u8] = b"retry: 1000\n\n";

/// How the streams of every session are held.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub limits: ReplayLimits,
    pub max_event: usize,
    /// How long a stream whose client left is still read.
    pub grace: Duration,
    /// Bytes in every replay buffer together (the gauge), and the most allowed.
    pub total: Arc<AtomicI64>,
    pub total_cap: usize,
}

/// Streams kept per session (the oldest finished ones go first).
const KEEP_STREAMS: usize = 32;

/// A session's streams.
#[derive(Debug, Default)]
pub struct StreamHub {
    streams: Mutex<VecDeque<Arc<LiveStream>>>,
    next: AtomicU32,
}

impl StreamHub {
    /// A new stream. `requests`: the ids (raw JSON) of the requests a POST stream answers;
    /// empty for the GET stream, which is never complete.
    pub fn open(
        &self,
        config: &StreamConfig,
        requests: Vec<Box<str>>,
        judge: Option<OwnedJudge>,
    ) -> Arc<LiveStream> {
        let no = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let stream = Arc::new(LiveStream::new(no, config, requests, judge));
        if let Ok(mut streams) = self.streams.lock() {
            if streams.len() >= KEEP_STREAMS {
                let old = streams.iter().position(|s| s.ended()).unwrap_or(0);
                streams.remove(old);
            }
            streams.push_back(stream.clone());
        }
        stream
    }

    pub fn get(&self, no: u32) -> Option<Arc<LiveStream>> {
        let streams = self.streams.lock().ok()?;
        streams.iter().find(|s| s.no == no).cloned()
    }
}

/// One SSE stream of a session.
#[derive(Debug)]
pub struct LiveStream {
    pub no: u32,
    grace: Duration,
    inner: Mutex<Inner>,
    changed: Notify,
}

#[derive(Debug)]
struct Inner {
    scanner: SseScanner,
    max_event: usize,
    /// The upstream request that resumes this stream, but for its `Last-Event-ID` (see
    /// [`LiveStream::set_reopen`]).
    reopen: Option<Reopen>,
    buffer: ReplayBuffer,
    total_cap: usize,
    /// What the attached client has yet to get; `None` with nobody attached.
    output: Option<BytesMut>,
    /// The upstream body ended (the stream may go on upstream: see `complete`).
    ended: bool,
    /// Requests still unanswered on a POST stream; the stream is complete when none is left.
    unanswered: Vec<Box<str>>,
    is_post: bool,
    judge: Option<OwnedJudge>,
    /// The cache's view of the stream (invalidating notifications).
    watch: Option<super::cache::Watch>,
    /// Stores the response of a cacheable request, seen before any rule judges it.
    catch: Option<super::cache::Catch>,
    error: Option<ScanError>,
    /// Events queued for the client since the last count.
    events: u64,
}

/// The upstream `GET` that resumes a stream, as `upstream_request_filter` built it: the
/// absolute target and the headers, without `Last-Event-ID`.
#[derive(Debug, Clone)]
pub struct Reopen {
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
}

/// What [`LiveStream::drain`] hands the response.
#[derive(Debug, Default)]
pub struct Drained {
    /// What the attached client has yet to get.
    pub output: Bytes,
    /// Events in it (the events metric).
    pub events: u64,
    /// Interceptor actions taken on the stream: (rule, action).
    pub hits: Vec<(Box<str>, &'static str)>,
}

/// What a resuming client can get from the stream itself.
#[derive(Debug)]
pub struct Replay {
    pub events: Vec<Bytes>,
    /// The highest sequence number in the stream so far.
    pub last_seq: u64,
    pub ended: bool,
    /// The upstream answered every request of this POST stream.
    pub complete: bool,
}

impl LiveStream {
    fn new(
        no: u32,
        config: &StreamConfig,
        requests: Vec<Box<str>>,
        judge: Option<OwnedJudge>,
    ) -> Self {
        Self {
            no,
            grace: config.grace,
            inner: Mutex::new(Inner {
                scanner: SseScanner::new(config.max_event),
                max_event: config.max_event,
                reopen: None,
                buffer: ReplayBuffer::new(config.limits, config.total.clone()),
                total_cap: config.total_cap,
                output: None,
                ended: false,
                is_post: !requests.is_empty(),
                unanswered: requests,
                judge,
                watch: None,
                catch: None,
                error: None,
                events: 0,
            }),
            changed: Notify::new(),
        }
    }

    /// Shows the stream's events to the cache from now on: notifications (`watch`), and the
    /// response of a cacheable request (`catch`).
    pub fn watch(&self, watch: Option<super::cache::Watch>, catch: Option<super::cache::Catch>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.watch = watch;
            inner.catch = catch;
        }
    }

    /// A response is draining this stream now; `prefix` (events the client missed, already
    /// with ids) goes first.
    pub fn attach(&self, prefix: &[Bytes]) {
        if let Ok(mut inner) = self.inner.lock() {
            let mut out = BytesMut::new();
            prefix.iter().for_each(|p| out.extend_from_slice(p));
            inner.output = Some(out);
            // The prefix is events for this client; a count left from an earlier client is not.
            inner.events = prefix.len() as u64;
            // The upstream is being read again for this stream, from an event boundary.
            inner.ended = false;
            inner.scanner = SseScanner::new(inner.max_event);
        }
    }

    /// How to resume this stream upstream (its `Last-Event-ID` is added at the time).
    pub fn set_reopen(&self, head: Reopen) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.reopen = Some(head);
        }
    }

    /// The client's response is over: stop queueing for it (the buffer still fills).
    pub fn detach(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.output = None;
        }
    }

    /// Everything queued for the attached client, with the events and interceptor actions
    /// since the last call, in one lock (once per chunk); `Err`: the framing error that ended
    /// the stream.
    pub fn drain(&self) -> Result<Drained, ScanError> {
        let Ok(mut inner) = self.inner.lock() else {
            return Ok(Drained::default());
        };
        if let Some(e) = inner.error {
            return Err(e);
        }
        Ok(Drained {
            output: inner
                .output
                .as_mut()
                .map(|o| o.split().freeze())
                .unwrap_or_default(),
            events: std::mem::take(&mut inner.events),
            hits: inner
                .judge
                .as_mut()
                .map(|j| std::mem::take(&mut j.hits))
                .unwrap_or_default(),
        })
    }

    pub fn ended(&self) -> bool {
        self.inner.lock().map(|i| i.ended).unwrap_or(true)
    }

    /// The events after `seq`, or `Evicted` when some of them are no longer held.
    pub fn replay_after(&self, seq: u64) -> Result<Replay, Evicted> {
        let inner = self.inner.lock().map_err(|_| Evicted)?;
        Ok(Replay {
            events: inner.buffer.after(seq)?,
            last_seq: inner.buffer.last_seq(),
            ended: inner.ended,
            complete: inner.is_post && inner.unanswered.is_empty(),
        })
    }

    /// The upstream's id of the newest event at or before `seq` that had one.
    pub fn upstream_id_at_or_before(&self, seq: u64) -> Option<String> {
        let inner = self.inner.lock().ok()?;
        inner
            .buffer
            .upstream_id_at_or_before(seq)
            .map(|(_, u)| u.to_owned())
    }

    /// The upstream's id of exactly event `seq`.
    pub fn upstream_id(&self, seq: u64) -> Option<String> {
        let inner = self.inner.lock().ok()?;
        inner.buffer.upstream_id(seq).map(str::to_owned)
    }

    pub fn is_post(&self) -> bool {
        self.inner.lock().map(|i| i.is_post).unwrap_or(false)
    }

    /// Resolves when the stream changes (an event, or its end); `enable` it before looking.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// One upstream read: framed, and every event it completes handled (judged, numbered,
    /// buffered, queued for the attached client).
    pub fn payload(&self, chunk: Bytes) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let inner = &mut *guard;
        if inner.error.is_some() {
            return;
        }
        let no = self.no;
        let Inner {
            scanner,
            buffer,
            output,
            judge,
            watch,
            catch,
            unanswered,
            total_cap,
            events,
            ..
        } = inner;
        let result = scanner.feed(&chunk, |ev| {
            if !ev.has_fields() {
                // Comments (keep-alives) pass to the client; they are not events.
                if let Some(out) = output.as_mut() {
                    out.extend_from_slice(ev.bytes());
                }
                return;
            }
            if let Some(data) = ev.data() {
                if let Some(w) = watch.as_ref() {
                    w.event(&data);
                }
                if catch.as_mut().is_some_and(|c| c.event(&data)) {
                    *catch = None;
                }
            }
            let event = match judge.as_mut().map_or(Verdict::Pass, |j| verdict(&ev, j)) {
                Verdict::Drop => return,
                Verdict::Pass => ev.bytes().clone(),
                Verdict::Replace(data) => {
                    let mut new = ev.parse();
                    new.id = None;
                    new.data = Some(data);
                    new.encode()
                }
            };
            if !unanswered.is_empty() {
                if let Some(id) = ev
                    .data()
                    .as_deref()
                    .and_then(sniff)
                    .and_then(|s| (s.has_result || s.has_error).then_some(s.id).flatten())
                {
                    unanswered.retain(|u| u.as_bytes() != id);
                }
            }
            let upstream_id = ev.id().map(String::from_utf8_lossy);
            let seq = buffer.last_seq() + 1;
            let bytes = with_id(&event, EventId { stream: no, seq });
            let full = buffer.total_now() + bytes.len() > *total_cap;
            buffer.push(seq, upstream_id.as_deref(), bytes.clone(), full);
            if let Some(out) = output.as_mut() {
                out.extend_from_slice(&bytes);
                *events += 1;
            }
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, stream = no, "ending SSE stream");
            inner.error = Some(e);
        }
        drop(guard);
        self.changed.notify_waiters();
    }
}

impl LiveStream {
    /// The upstream body ended: `clean` when the upstream finished it, not when it failed.
    pub fn body_end(&self, clean: bool) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.ended = true;
            // No response will come on this body now: the key's flight ends.
            inner.catch = None;
            if !clean {
                // The client reconnects with Last-Event-ID, and the proxy resumes for it.
                if let Some(out) = inner.output.as_mut() {
                    out.extend_from_slice(RETRY_HINT);
                }
            }
        }
        self.changed.notify_waiters();
    }

    /// How long the stream is still read after its client went away.
    pub fn detached_grace(&self) -> Duration {
        self.grace
    }
}

impl Resumable for LiveStream {
    /// Resumable when the last event the proxy numbered carried the upstream's id.
    fn reopen_request(&self) -> Option<http::Request<RequestBody>> {
        let inner = self.inner.lock().ok()?;
        let reopen = inner.reopen.as_ref()?;
        let id = inner.buffer.upstream_id(inner.buffer.last_seq())?;
        // An id that is no header value (control bytes) cannot be sent back.
        let id = http::HeaderValue::from_str(id).ok()?;
        let mut request = http::Request::new(empty_body());
        *request.uri_mut() = reopen.uri.clone();
        *request.headers_mut() = reopen.headers.clone();
        request.headers_mut().insert(crate::mcp::LAST_EVENT_ID, id);
        Some(request)
    }

    fn discard_partial(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.scanner = SseScanner::new(inner.max_event);
        }
    }
}

#[cfg(test)]
#[path = "streams_tests.rs"]
mod tests;
