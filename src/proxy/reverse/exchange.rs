//! The upstream exchange: every request the proxy passes on goes upstream from
//! `request_filter`, through one HTTP client (`crate::upstream_client`: hyper-util's pooled
//! client over rustls, HTTP/1.1 or HTTP/2), and its response comes back through the same
//! phase functions Pingora's proxy loop would call.
//!
//! Why not Pingora's proxy loop: it drops the upstream the moment the client leaves (a session
//! SSE stream must be read on for `sse.detached_grace`, into the replay buffer), it cannot
//! resume an upstream stream whose connection died under a response in progress, and it has no
//! timer between body reads (`response_body_filter` runs only when the upstream sends, so there
//! is no place for the idle limit or a keep-alive). Owning the exchange gives all three a plain
//! home: a loop over the upstream body with tokio timers. Pingora keeps the downstream side
//! (parsing, keep-alive, response writing, HTTP/2, TLS) and `upstream_peer` is never reached.
//!
//! 1. the head: the client's, prepared (`hop_by_hop.rs`) and through `upstream_request_filter`
//!    (target, `Host`, session id, credentials, forwarding headers); the body: the one held
//!    (`body_read.rs`) or the one a rule rewrote, framed by the client;
//! 2. sent, within `timeouts.request` for the response head; interim (1xx) heads forwarded
//!    through `response_filter` as they come (HTTP/1.1 upstreams; HTTP/2 ones carry none
//!    that matter here); a connect or TLS failure marks the upstream down and, for a request
//!    not pinned to a session, tries the next one (nothing was sent);
//! 3. the head through `response_filter`, then each upstream read through
//!    `response_body_filter` and written downstream before the next is read; during silence
//!    on an SSE stream, `: keepalive` (`sse.keepalive`) at event boundaries; nothing for
//!    `timeouts.idle_stream` ends the body;
//! 4. the client watched throughout (`read_body_or_idle`, as Pingora does): when it leaves,
//!    the upstream body is dropped (the upstream sees the close or an HTTP/2 `RST_STREAM`),
//!    except a session SSE stream, which a task keeps reading for its grace period.
//!
//! Errors are returned from `request_filter`, so Pingora answers them with `fail_to_proxy`
//! and logs them with `logging`, as on its own path.

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::HttpTask;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};
use tokio::sync::mpsc;

use super::{error_classes, hop_by_hop, McpProxy, RequestCtx};
use crate::transport::sse::KEEPALIVE;
use crate::transport::upstream_body::{Piece, UpstreamBody};
use crate::transport::upstream_timeout::UpstreamTimeout;
use crate::upstream_client::full_body;

/// Connection attempts per request at most (each upstream is tried once).
const MAX_ATTEMPTS: usize = 16;

/// What a wait on the upstream ended with.
enum Waited<T> {
    Done(T),
    Interim(Box<ResponseHeader>),
    /// The client sent bytes of a pipelined request (Pingora keeps them): stop watching.
    ClientBusy,
}

impl McpProxy {
    /// Proxies the request and its response; `Ok(true)` as from `request_filter` (answered).
    pub(super) async fn exchange(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let mut watching = true;
        let response = self.send_request(session, ctx, &mut watching).await?;
        self.relay_response(session, response, ctx, watching)
            .await?;
        Ok(true)
    }

    /// Sends the request (with failover before anything was sent); returns the final response
    /// head, or the error `fail_to_proxy` answers.
    async fn send_request(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        watching: &mut bool,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let upstream = match self.choose_upstream(ctx) {
                Ok(u) => u,
                Err(e) => return Err(last.unwrap_or(e)),
            };
            self.trace_attempt(ctx, session.req_header().method.as_str());
            let head = self.upstream_head(session, ctx).await?;
            let mut body = ctx.body.clone();
            self.intercept_body(&mut body, true, ctx);
            self.trace_body(&mut body, ctx);
            let uri = upstream.absolute_uri(&head.uri);
            let mut parts: http::request::Parts = (*head).into();
            parts.uri = uri;
            parts.version = http::Version::HTTP_11;
            let mut request = http::Request::from_parts(parts, full_body(body.unwrap_or_default()));
            let (interim_tx, mut interim) = mpsc::unbounded_channel();
            hyper::ext::on_informational(&mut request, move |r| {
                let _ = interim_tx.send((r.status(), r.headers().clone()));
            });
            let client = upstream.client.clone();
            let deadline = self.config.timeouts.request;
            let sent = tokio::time::timeout(deadline, client.send(request));
            let mut sent = std::pin::pin!(sent);
            let result = loop {
                let waited = tokio::select! {
                    biased;
                    r = &mut sent => Waited::Done(r),
                    Some((status, headers)) = interim.recv() => {
                        Waited::Interim(interim_head(status, headers)?)
                    }
                    idle = session.downstream_session.read_body_or_idle(true), if *watching => {
                        match idle {
                            Err(e) => return Err(e.into_down()),
                            Ok(_) => Waited::ClientBusy,
                        }
                    }
                };
                match waited {
                    Waited::Done(r) => break r,
                    Waited::Interim(head) => self.forward_interim(session, head, ctx).await?,
                    Waited::ClientBusy => *watching = false,
                }
            };
            // Interim heads that came with the final one go first.
            while let Ok((status, headers)) = interim.try_recv() {
                let head = interim_head(status, headers)?;
                self.forward_interim(session, head, ctx).await?;
            }
            let outcome = match &result {
                Ok(Ok(response)) => (Some(response.status().as_u16()), None),
                Ok(Err(e)) => (None, Some(e.kind())),
                Err(_elapsed) => (None, Some("timeout")),
            };
            self.trace_attempt_end(ctx, outcome.0, outcome.1);
            match result {
                Ok(Ok(response)) => return Ok(response),
                Err(_elapsed) => {
                    return Err(Error::because(
                        ErrorType::ReadTimedout,
                        "waiting for the upstream's response head",
                        UpstreamTimeout::ResponseHeader,
                    )
                    .into_up())
                }
                Ok(Err(e)) if e.is_connect() => {
                    // Nothing was sent: another upstream may take it.
                    let e = self.connect_failed(ctx, error_classes::upstream_error(e));
                    if !e.retry() {
                        return Err(e);
                    }
                    last = Some(e);
                }
                // The request may have reached the upstream (a `tools/call` is not
                // idempotent): never sent again.
                Ok(Err(e)) => return Err(error_classes::upstream_error(e)),
            }
        }
        Err(last.unwrap_or_else(|| Error::explain(ErrorType::ConnectError, "too many attempts")))
    }

    /// The request head for this attempt, as the upstream gets it.
    async fn upstream_head(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<RequestHeader>> {
        let mut head = Box::new(session.req_header().clone());
        hop_by_hop::prepare(&mut head)?;
        self.upstream_request_filter(session, &mut head, ctx)
            .await?;
        Ok(head)
    }

    /// An interim head, downstream, as Pingora's loop forwards one: `response_filter` (which
    /// removes an upstream session id from it), then written (HTTP/1.1 clients; Pingora's
    /// HTTP/2 session drops them).
    async fn forward_interim(
        &self,
        session: &mut Session,
        mut head: Box<ResponseHeader>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.response_filter(session, &mut head, ctx).await?;
        session
            .write_response_header(head, false)
            .await
            .map_err(|e| e.into_down())
    }

    /// Response head and body, downstream, through the response phases.
    async fn relay_response(
        &self,
        session: &mut Session,
        response: http::Response<hyper::body::Incoming>,
        ctx: &mut RequestCtx,
        mut watching: bool,
    ) -> Result<()> {
        let (parts, body) = response.into_parts();
        if parts.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // MCP has no upgrade, and a tunnel would carry the client past every check.
            return Error::e_explain(error_classes::UPSTREAM_UPGRADE, "upstream answered 101")
                .map_err(|e| e.into_up());
        }
        let mut body = UpstreamBody::new(body, self.config.timeouts.idle_stream);
        let mut done = body.is_end();
        let mut head = response_head(parts);
        self.response_filter(session, &mut head, ctx).await?;
        frame_for_downstream(&mut head, done, session.is_http2())?;
        let mut tasks = vec![HttpTask::Header(head, done)];
        // An upstream read that came with the head (a JSON answer, usually; often a whole
        // short SSE response) goes in the head's write, and so does what the proxy queued on
        // a session stream (a rule's answers). Nothing read is waited for here.
        let ready = match done {
            true => None,
            false => body.ready().await,
        };
        let first = match (done, ready) {
            (true, _) => None,
            (false, Some(piece)) => Some(Some(piece)),
            (false, None) if ctx.live.is_some() => Some(None),
            (false, None) => None,
        };
        if let Some(piece) = first {
            let was_read = piece.is_some();
            let (out, end) = self.filter_piece(session, piece, ctx).await?;
            done = end;
            if out.is_some() || end {
                tasks.push(HttpTask::Body(out, end));
            }
            // A chunked body's end is a read of its own, often already here: seen now, a short
            // SSE response ends in this write and needs no resumption request.
            if was_read && !done && body.ends_now().await {
                let (out, end) = self.filter_piece(session, Some(Piece::End), ctx).await?;
                done = end;
                tasks.push(HttpTask::Body(out, end));
            }
        }
        // A session stream still open after that read can lose its upstream connection: the
        // request that resumes it is prepared now (a response that came whole never needs it).
        if let (Some(stream), false) = (ctx.live.clone(), done) {
            self.prepare_reopen(session, ctx).await?;
            if let Some(upstream) = ctx.upstream.and_then(|i| self.upstreams.get(i)) {
                body = body.resumable(upstream.client.clone(), stream);
            }
        }
        if let Err(e) = session.write_response_tasks(tasks).await {
            return Err(self.client_left(body, done, ctx, e));
        }
        let keepalive = self.config.sse.keepalive.filter(|k| !k.is_zero());
        // A session's GET stream is never complete: at shutdown it ends (`drain.rs`).
        let ends_on_drain = ctx.live.as_ref().is_some_and(|s| !s.is_post());
        while !done {
            let piece = {
                let mut next = std::pin::pin!(body.next());
                let drained = async {
                    match ends_on_drain {
                        true => self.drain.started().await,
                        false => std::future::pending().await,
                    }
                };
                let mut drained = std::pin::pin!(drained);
                loop {
                    let quiet = async {
                        match keepalive.filter(|_| self.at_event_boundary(ctx)) {
                            Some(k) => tokio::time::sleep(k).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        biased;
                        piece = &mut next => break Ok(piece),
                        () = &mut drained => break Ok(Piece::Failed("draining".into())),
                        idle = session.downstream_session.read_body_or_idle(true), if watching => {
                            match idle {
                                Err(e) => break Err(e.into_down()),
                                Ok(_) => watching = false,
                            }
                        }
                        () = quiet => {
                            let ka = HttpTask::Body(Some(Bytes::from_static(KEEPALIVE)), false);
                            if let Err(e) = session.write_response_tasks(vec![ka]).await {
                                break Err(e.into_down());
                            }
                        }
                    }
                }
            };
            let piece = match piece {
                Ok(piece) => piece,
                Err(e) => return Err(self.client_left(body, false, ctx, e)),
            };
            let (out, end) = self.filter_piece(session, Some(piece), ctx).await?;
            done = end;
            if out.is_none() && !end {
                continue;
            }
            if let Err(e) = session
                .write_response_tasks(vec![HttpTask::Body(out, end)])
                .await
            {
                return Err(self.client_left(body, done, ctx, e));
            }
        }
        Ok(())
    }

    /// One upstream piece (or `None`: nothing read, only what the proxy queued) through
    /// `response_body_filter`: the body to write and whether the response ends with it.
    async fn filter_piece(
        &self,
        session: &mut Session,
        piece: Option<Piece>,
        ctx: &mut RequestCtx,
    ) -> Result<(Option<Bytes>, bool)> {
        let (mut body, end) = match piece {
            None => (None, false),
            Some(Piece::Data(data)) => (Some(data), false),
            // The body's end arrives with its bytes: the filters see both at once (a JSON
            // answer is stored by the cache, or rewritten by a rule, before it is written).
            Some(Piece::Last(data)) => match &ctx.live {
                Some(stream) => {
                    stream.payload(data);
                    stream.body_end(true);
                    (None, true)
                }
                None => (Some(data), true),
            },
            Some(Piece::End) => {
                if let Some(stream) = &ctx.live {
                    stream.body_end(true);
                }
                (None, true)
            }
            Some(Piece::Idle) => {
                if let Some(stream) = &ctx.live {
                    stream.body_end(false);
                }
                return Err(Error::because(
                    ErrorType::ReadTimedout,
                    "upstream body",
                    UpstreamTimeout::IdleStream,
                )
                .into_up());
            }
            Some(Piece::Failed(why)) => match &ctx.live {
                // The session stream ends cleanly for the client, with the hint to reconnect
                // (`body_end`); its reconnect resumes it.
                Some(stream) => {
                    tracing::debug!(error = %why, "upstream SSE stream failed; client told to retry");
                    stream.body_end(false);
                    (None, true)
                }
                None => {
                    return Err(Error::explain(ErrorType::ReadError, why).into_up());
                }
            },
        };
        if let Some(pause) = self.response_body_filter(session, &mut body, end, ctx)? {
            tokio::time::sleep(pause).await;
        }
        // Nothing to write is no write: an empty piece must not reach the chunk encoder.
        Ok((body.filter(|b| !b.is_empty()), end))
    }

    /// Is the client's copy of this SSE response between events (a keep-alive comment there
    /// cannot split one)?
    fn at_event_boundary(&self, ctx: &RequestCtx) -> bool {
        match (&ctx.live, &ctx.sse) {
            // A session stream hands the client whole events only.
            (Some(_), _) => true,
            (None, Some(sse)) => sse.at_event_boundary(),
            (None, None) => false,
        }
    }

    /// The client went away (or its write failed) with the upstream body not done: a session
    /// stream is read on for its grace period (into its replay buffer); any other body is
    /// dropped here, which closes the upstream connection or resets the HTTP/2 stream.
    fn client_left(
        &self,
        body: UpstreamBody,
        done: bool,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(stream), false) = (ctx.live.clone(), done) {
            stream.detach();
            super::detached::read_on(body, stream);
        }
        e.into_down()
    }
}

/// A Pingora response head from the client's: HTTP/1.1 for the downstream writer, hop-by-hop
/// headers removed.
fn response_head(parts: http::response::Parts) -> Box<ResponseHeader> {
    let mut head = Box::new(ResponseHeader::from(parts));
    head.set_version(http::Version::HTTP_11);
    hop_by_hop::strip_response_hop_by_hop(&mut head);
    head
}

/// After the response phases: a body without a length goes chunked to an HTTP/1.1 client (as
/// Pingora's loop sends it), so its connection can be kept.
fn frame_for_downstream(head: &mut ResponseHeader, done: bool, h2_downstream: bool) -> Result<()> {
    let status = head.status.as_u16();
    let no_body = matches!(status, 204 | 304) || head.status.is_informational();
    let framed = head.headers.contains_key(http::header::CONTENT_LENGTH);
    if !no_body && !framed && !done && !h2_downstream {
        head.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(())
}

/// An interim head from the client's callback.
fn interim_head(status: http::StatusCode, headers: http::HeaderMap) -> Result<Box<ResponseHeader>> {
    let mut head = Box::new(ResponseHeader::build(status, Some(headers.len()))?);
    for (name, value) in &headers {
        head.append_header(name.clone(), value.clone())?;
    }
    hop_by_hop::strip_response_hop_by_hop(&mut head);
    Ok(head)
}
