//! Resumable SSE in the proxy phases (sessions, MCP 2025-03-26 to 2025-11-25); the design is in
//! `README.md` beside this file.
//!
//! * `response_filter`: an SSE response on a session becomes a [`LiveStream`] of the session
//!   (new, or the one being resumed upstream); `response_body_filter` then hands it each
//!   upstream read and writes what the stream queued. The exchange builds the request that
//!   resumes the stream upstream should its connection die ([`McpProxy::prepare_reopen`]),
//!   through `upstream_request_filter` like every upstream request.
//! * `request_filter`, GET with `Last-Event-ID`: the proxy id names the stream and the last
//!   event seen. Events the buffer holds are replayed by the proxy, then the live stream
//!   follows while the upstream is still read; a stream the upstream ended before answering
//!   is resumed upstream with the upstream's own id; an id the proxy cannot serve is a miss
//!   (counted) and the GET opens a fresh stream, as when the server does not replay.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{ProxyHttp, Session};
use pingora::Result;

use super::ctx::RequestCtx;
use super::sse;
use super::streams::{LiveStream, Reopen, Resume, StreamConfig};
use super::McpProxy;
use crate::mcp::LAST_EVENT_ID;
use crate::transport::sse::{EventId, ReplayLimits, KEEPALIVE};

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
                // Shutdown: a GET stream's client reconnects elsewhere, from the last event
                // it got; a POST stream's goes on to its answer.
                () = self.drain_ends(stream) => break,
                _ = tokio::time::sleep(keepalive) => {
                    session.write_response_body(Some(Bytes::from_static(KEEPALIVE)), false).await?;
                }
            }
        }
        // Draining, a followed GET stream ends with the hint to reconnect, whichever came
        // first: the drain, or the end of the live stream it follows (ended by the drain).
        if follow && !stream.is_post() && self.drain.is_draining() {
            let retry = Bytes::from_static(super::streams::RETRY_HINT);
            session.write_response_body(Some(retry), false).await?;
        }
        session.write_response_body(None, true).await?;
        Ok(true)
    }

    /// Resolves when shutdown should end this client's copy of `stream`: a GET stream's
    /// at once (`drain.rs`), never a POST stream's (it finishes with its answer).
    async fn drain_ends(&self, stream: &LiveStream) {
        match stream.is_post() {
            true => std::future::pending().await,
            false => self.drain.started().await,
        }
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
    pub(super) fn claim_stream(&self, resp: &ResponseHeader, is_sse: bool, ctx: &mut RequestCtx) {
        if !self.resumable(ctx) {
            return;
        }
        let (Some(s), true, true) = (ctx.session.clone(), is_sse, resp.status.is_success()) else {
            return;
        };
        if self.config.sse.replay_buffer == 0 && ctx.resume.is_none() {
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
                let requests = ctx.request_ids();
                let stream = s.streams.open(&self.streams, requests, judge);
                stream.watch(self.cache_watch(ctx), self.cache_catch(ctx));
                stream.attach(&[]);
                stream
            }
        };
        for answer in answers {
            stream.payload(sse::message_event(&answer));
        }
        ctx.live = Some(stream);
    }

    /// The upstream `GET` that resumes this response's session stream should its upstream
    /// connection die (`transport::upstream_body`): the client's request as a bodiless
    /// `GET` for `text/event-stream`, through `upstream_request_filter` like every upstream
    /// request (target, `Host`, session id, credentials, forwarding headers); the upstream's
    /// `Last-Event-ID` is added when it is sent.
    pub(super) async fn prepare_reopen(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(stream) = ctx.live.clone() else {
            return Ok(());
        };
        let Some(upstream) = ctx.upstream.and_then(|i| self.upstreams.get(i)) else {
            return Ok(());
        };
        let mut head = Box::new(session.req_header().clone());
        head.set_method(http::Method::GET);
        for name in [
            http::header::CONTENT_TYPE,
            http::header::CONTENT_LENGTH,
            http::header::CONTENT_ENCODING,
            http::header::TRANSFER_ENCODING,
        ] {
            super::hop_by_hop::remove(&mut head, &name);
        }
        head.insert_header(http::header::ACCEPT, "text/event-stream")?;
        super::hop_by_hop::prepare(&mut head)?;
        self.upstream_request_filter(session, &mut head, ctx)
            .await?;
        // Whatever the client's request resumed, the reopen names its own id.
        head.remove_header(LAST_EVENT_ID);
        stream.set_reopen(Reopen {
            uri: upstream.absolute_uri(&head.uri),
            headers: head.headers.clone(),
        });
        Ok(())
    }

    /// An upstream read of a session stream: the stream frames it (ids, rules, buffer) and
    /// what it queued for this client replaces it, so the read leaves as one write. Its events
    /// are counted here, for the metric and for this response's access-log line.
    pub(super) fn drain_stream(
        &self,
        body: &mut Option<Bytes>,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(stream) = &ctx.live else {
            return Ok(false);
        };
        if let Some(chunk) = body.take().filter(|c| !c.is_empty()) {
            stream.payload(chunk);
        }
        let drained = stream.drain().map_err(super::error_classes::sse_error)?;
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
