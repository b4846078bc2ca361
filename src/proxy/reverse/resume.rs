//! Resumable SSE in the proxy phases (sessions, MCP 2025-03-26 to 2025-11-25); the design is in
//! `README.md` beside this file.
//!
//! * `upstream_peer`: a session request gets its own [`StreamSlot`], through which the upstream
//!   socket hands over an SSE body's payload as it is read.
//! * `response_filter`: an SSE response claims the slot for a [`LiveStream`] of the session (new,
//!   or the one being resumed upstream); the response then drains what the stream queues.
//! * `request_filter`, GET with `Last-Event-ID`: the proxy id names the stream and the last
//!   event seen. Events the buffer holds are replayed by the proxy, then the live stream
//!   follows while the upstream is still read; a stream the upstream ended before answering
//!   is resumed upstream with the upstream's own id; an id the proxy cannot serve is a miss
//!   (counted) and the GET opens a fresh stream, as when the server does not replay.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;

use super::ctx::RequestCtx;
use super::sse;
use super::streams::{LiveStream, StreamConfig};
use super::McpProxy;
use crate::interceptor::calls_of;
use crate::mcp::{peek, LAST_EVENT_ID};
use crate::transport::sse::{EventId, ReplayLimits, KEEPALIVE};
use crate::transport::stream_slot::{PayloadSink, StreamSlot};

/// What a GET with `Last-Event-ID` gets.
#[derive(Debug)]
pub enum Resume {
    /// Served by the proxy from the stream: the events after `after`, then (`follow`) the
    /// live stream while the upstream is still read.
    Local {
        stream: Arc<LiveStream>,
        after: u64,
        follow: bool,
    },
    /// Resumed upstream with the upstream's id (or, for a GET stream without ids, a new
    /// upstream stream), continuing the same proxy stream after `prefix`.
    Upstream {
        stream: Arc<LiveStream>,
        upstream_id: Option<String>,
        prefix: Vec<Bytes>,
    },
    /// The id cannot be served: a fresh stream, no replay.
    Fresh,
}

impl StreamConfig {
    pub fn from_config(
        config: &crate::config::Config,
        total: Arc<std::sync::atomic::AtomicI64>,
    ) -> Self {
        Self {
            limits: ReplayLimits {
                events: config.sse.replay_buffer,
                bytes: config.sse.replay_bytes,
            },
            max_event: config.limits.max_sse_event,
            grace: config.sse.detached_grace,
            total,
            total_cap: config.sse.replay_total,
        }
    }
}

// === impl McpProxy ===

impl McpProxy {
    /// Does this request's SSE response belong to a stream the proxy holds?
    pub(super) fn resumable(&self, ctx: &RequestCtx) -> bool {
        ctx.session.is_some() && !ctx.version.is_sessionless() && !ctx.is_delete
    }

    /// The slot for `upstream_peer` (one per resumable request).
    pub(super) fn stream_slot(&self, ctx: &mut RequestCtx) -> Option<Arc<StreamSlot>> {
        if !self.resumable(ctx) {
            return None;
        }
        Some(ctx.slot.get_or_insert_with(StreamSlot::new).clone())
    }

    /// GET with `Last-Event-ID` on a session: `Ok(true)` when served here.
    pub(super) async fn resume_request(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let req = session.req_header();
        let (true, Some(s)) = (req.method == http::Method::GET, ctx.session.clone()) else {
            return Ok(false);
        };
        if ctx.version.is_sessionless() {
            return Ok(false);
        }
        let Some(last) = req.headers.get(LAST_EVENT_ID).and_then(|v| v.to_str().ok()) else {
            return Ok(false);
        };
        let plan = match EventId::parse(last).and_then(|id| Some((id, s.streams.get(id.stream)?))) {
            Some((id, stream)) => self.plan_resume(stream, id),
            None => Resume::Fresh,
        };
        match plan {
            Resume::Local {
                stream,
                after,
                follow,
            } => {
                self.metrics
                    .sse_resumes
                    .with_label_values(&["buffer"])
                    .inc();
                self.serve_local(session, ctx, &stream, after, follow).await
            }
            // The client's id is removed upstream (`rewrite_last_event_id`): a fresh stream.
            Resume::Fresh => {
                self.metrics.sse_replay_misses.inc();
                Ok(false)
            }
            upstream => {
                self.metrics
                    .sse_resumes
                    .with_label_values(&["upstream"])
                    .inc();
                ctx.resume = Some(upstream);
                Ok(false)
            }
        }
    }

    fn plan_resume(&self, stream: Arc<LiveStream>, id: EventId) -> Resume {
        match stream.replay_after(id.seq) {
            Ok(r) if !r.ended => Resume::Local {
                stream,
                after: id.seq,
                follow: true,
            },
            Ok(r) if r.complete => Resume::Local {
                stream,
                after: id.seq,
                follow: false,
            },
            // The upstream ended the connection before the stream was done (2025-11-25
            // polling, or a failure): go on upstream from the last event the proxy has.
            Ok(r) => match stream.upstream_id(r.last_seq) {
                Some(uid) => Resume::Upstream {
                    stream,
                    upstream_id: Some(uid),
                    prefix: r.events,
                },
                None if !stream.is_post() => Resume::Upstream {
                    stream,
                    upstream_id: None,
                    prefix: r.events,
                },
                None => Resume::Local {
                    stream,
                    after: id.seq,
                    follow: false,
                },
            },
            // A miss: counted here when the upstream can still resume it, else as `Fresh`.
            Err(_) => match stream.upstream_id(id.seq) {
                Some(uid) => {
                    self.metrics.sse_replay_misses.inc();
                    Resume::Upstream {
                        stream,
                        upstream_id: Some(uid),
                        prefix: Vec::new(),
                    }
                }
                None => Resume::Fresh,
            },
        }
    }

    /// Writes the stream's events after `after`, then follows it while it lives.
    async fn serve_local(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        stream: &LiveStream,
        mut after: u64,
        follow: bool,
    ) -> Result<bool> {
        let mut resp = ResponseHeader::build(200, Some(4))?;
        resp.insert_header(http::header::CONTENT_TYPE, "text/event-stream")?;
        sse::prepare_headers(&mut resp)?;
        if !session.is_http2() {
            resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        session.write_response_header(Box::new(resp), false).await?;
        ctx.status = 200;
        // An SSE response like any other: counted among the active streams (`logging` ends
        // it) and its events in the access log.
        ctx.sse = Some(sse::SseStream::new(self.config.limits.max_sse_event));
        self.metrics.sse_streams_active.inc();
        let keepalive = self
            .config
            .sse
            .keepalive
            .unwrap_or(Duration::from_secs(3600));
        loop {
            let changed = stream.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let Ok(replay) = stream.replay_after(after) else {
                // The client fell behind the buffer: it reconnects and counts as a miss.
                break;
            };
            let events = replay.events.len() as u64;
            for event in replay.events {
                session.write_response_body(Some(event), false).await?;
            }
            self.count_events(ctx, events);
            after = replay.last_seq;
            if !follow || replay.ended {
                break;
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep(keepalive) => {
                    session.write_response_body(Some(Bytes::from_static(KEEPALIVE)), false).await?;
                }
            }
        }
        session.write_response_body(None, true).await?;
        Ok(true)
    }

    /// Events forwarded on this request's SSE response: the metric and its access-log line.
    fn count_events(&self, ctx: &mut RequestCtx, events: u64) {
        self.metrics.sse_events.inc_by(events);
        if let Some(stream) = ctx.sse.as_mut() {
            stream.events += events;
        }
    }

    /// The upstream's `Last-Event-ID` for this request: the client's id is the proxy's, so it
    /// is translated (resuming upstream) or removed (never forwarded as it is).
    pub(super) fn rewrite_last_event_id(
        &self,
        upstream_request: &mut RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        if ctx.session.is_none() || ctx.version.is_sessionless() {
            return Ok(());
        }
        match &ctx.resume {
            Some(Resume::Upstream {
                upstream_id: Some(uid),
                ..
            }) => {
                upstream_request.insert_header(LAST_EVENT_ID, uid.as_str())?;
            }
            _ => {
                upstream_request.remove_header(LAST_EVENT_ID);
            }
        }
        Ok(())
    }

    /// The upstream's response: an SSE body on a resumable request becomes (or continues) a
    /// stream of the session.
    pub(super) fn claim_stream(
        &self,
        req: &RequestHeader,
        resp: &ResponseHeader,
        is_sse: bool,
        ctx: &mut RequestCtx,
    ) {
        let Some(slot) = ctx.slot.clone() else {
            return;
        };
        let (Some(s), true, true) = (ctx.session.clone(), is_sse, resp.status.is_success()) else {
            slot.claim(None);
            return;
        };
        if self.config.sse.replay_buffer == 0 && ctx.resume.is_none() {
            slot.claim(None);
            return;
        }
        let upstream = self.upstream_name(ctx).to_owned();
        let (judge, answers) = match ctx.intercept.as_mut() {
            Some(ic) => ic.take_for_stream(&upstream),
            None => (None, Vec::new()),
        };
        let stream = match ctx.resume.take() {
            Some(Resume::Upstream { stream, prefix, .. }) => {
                stream.attach(&prefix);
                stream
            }
            _ => {
                let requests = ctx
                    .body
                    .as_deref()
                    .and_then(|b| peek::peek(b).ok())
                    .map(|p| calls_of(&p).into_iter().map(|c| c.id).collect())
                    .unwrap_or_default();
                let stream = s.streams.open(&self.streams, requests, judge);
                stream.watch(self.cache_watch(ctx), self.cache_catch(ctx));
                stream.attach(&[]);
                stream
            }
        };
        for answer in answers {
            stream.payload(&sse::message_event(&answer));
        }
        if let Some(head) = self.reopen_head(req, &s, ctx) {
            stream.set_reopen(head);
        }
        let sink: Arc<dyn PayloadSink> = stream.clone();
        slot.claim(Some(sink));
        ctx.live = Some(stream);
    }

    /// The upstream `GET` that resumes a session stream (the socket adds `Last-Event-ID`):
    /// the upstream's path, host, session id and credentials, as for any upstream request.
    fn reopen_head(
        &self,
        req: &RequestHeader,
        s: &super::session::Session,
        ctx: &RequestCtx,
    ) -> Option<String> {
        let up = ctx.upstream.and_then(|i| self.upstreams.get(i))?;
        let mut head = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {}\r\n",
            up.target(None),
            up.authority,
            s.upstream_id
        );
        if let Some(v) = req
            .headers
            .get(crate::mcp::PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
        {
            head.push_str(&format!("MCP-Protocol-Version: {v}\r\n"));
        }
        let mut line = |name: &str, value: &http::HeaderValue| {
            if let Ok(v) = value.to_str() {
                head.push_str(&format!("{name}: {v}\r\n"));
            }
        };
        if up.forward_authorization {
            for name in ["authorization", "cookie"] {
                if let Some(v) = req.headers.get(name) {
                    line(name, v);
                }
            }
        }
        for (name, value) in &up.headers {
            line(name.as_str(), value);
        }
        Some(head)
    }

    /// A body chunk of a claimed stream: what the stream queued for the client replaces it.
    /// Its events are counted here, for the metric and for this response's access-log line
    /// (the response's own framer never sees them).
    pub(super) fn drain_stream(
        &self,
        body: &mut Option<Bytes>,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(stream) = &ctx.live else {
            return Ok(false);
        };
        let drained = stream.drain().map_err(super::failure::sse_error)?;
        *body = Some(drained.output);
        self.count_events(ctx, drained.events);
        for (rule, action) in drained.hits {
            self.metrics
                .interceptor_actions
                .with_label_values(&[&rule, action])
                .inc();
        }
        Ok(true)
    }
}
