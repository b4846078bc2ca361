//! The direct exchange: a POST whose body the proxy already holds, or a GET or DELETE without
//! one, goes upstream from `request_filter`, over the same watchdog socket and pool, through
//! the same phases.
//!
//! Pingora's proxy path costs most of a JSON exchange's CPU here: for each request it builds a
//! peer and asks its connector, runs a fresh upstream HTTP session, and moves every response
//! piece between two futures over a channel. Measured side by side (loadtest/results,
//! 2026-12-02), the smallest Pingora proxy took 59–84 µs of CPU per JSON request against
//! nginx's 42–50, and Pingora's downstream session with the upstream exchange done in
//! `request_filter` took 44–48. So this path keeps Pingora's downstream session (parsing,
//! keep-alive, response writing, HTTP/2) and its HTTP/1 client for the upstream, and drives
//! them itself:
//!
//! 1. the head prepared as Pingora prepares it (`upstream_head`) and through
//!    `upstream_request_filter`, the body through `request_body_filter`, both written (the head
//!    cork sends them in one segment);
//! 2. the response read task by task with Pingora's client (`read_response_task`: chunked and
//!    close-delimited bodies decoded); a head without a length becomes chunked, as Pingora's
//!    loop makes it, so the client connection stays open; the head through `response_filter`
//!    and each body piece through `response_body_filter`, then written with
//!    `write_response_tasks`, the call Pingora's loop makes. Interim (1xx) heads go to the
//!    client as Pingora's loop sends them: through `response_filter` (which removes an
//!    upstream session id), then written (HTTP/1; Pingora's HTTP/2 session drops them);
//! 3. the client watched from the connect to the last body byte (`read_body_or_idle`, as
//!    Pingora does): a client that leaves ends the exchange at once, so the upstream sees the
//!    close (and can stop a long tool call), and an SSE stream detaches.
//!
//! Failures keep their meaning: a connect failure goes through `connect_failed` (the upstream
//! marked down, another one tried for requests without a session); a request once written is
//! never sent again. Errors are returned from `request_filter`, so Pingora answers them with
//! `fail_to_proxy` and logs them with `logging`, as on its own path. Everything else (bodies
//! streamed because they are large or of unknown length, `Expect`, `Upgrade`, other methods)
//! takes Pingora's proxy path; `direct_exchange: false` sends every request there.

use std::future::Future;

use bytes::Bytes;
use futures_util::FutureExt;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::protocols::http::HttpTask;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

use super::{upstream_head, McpProxy, RequestCtx};

/// Connection attempts per request at most (each upstream is tried once).
const MAX_ATTEMPTS: usize = 16;

impl McpProxy {
    /// Whether this request goes upstream by the direct exchange: a POST whose body the proxy
    /// holds, or a GET or DELETE without a body.
    pub(super) fn takes_direct_exchange(&self, session: &mut Session, ctx: &RequestCtx) -> bool {
        // A body read whole past Pingora's 64 KiB retry buffer (policy on) cannot be replayed
        // by Pingora's proxy loop: this path sends it, whatever `direct_exchange` says.
        if ctx.body_unreplayable {
            return true;
        }
        if !self.config.direct_exchange {
            return false;
        }
        let req = session.req_header();
        if req.headers.contains_key(http::header::EXPECT)
            || req.headers.contains_key(http::header::UPGRADE)
        {
            return false;
        }
        match req.method {
            http::Method::POST => ctx.body.is_some(),
            http::Method::GET | http::Method::DELETE => session.is_body_empty(),
            _ => false,
        }
    }

    /// Proxies the request and its response; `Ok(true)` as from `request_filter` (answered).
    pub(super) async fn direct_exchange(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let mut watch = Watch::default();
        let mut upstream = self.send_request(session, ctx, &mut watch).await?;
        self.relay_response(session, &mut upstream, ctx, &mut watch)
            .await?;
        upstream.respect_keepalive();
        // A connection that cannot be kept is shut here; one that can goes back to the pool
        // when its socket drops (the socket decides: only between clean responses).
        drop(upstream.reuse().await);
        Ok(true)
    }

    /// Connects (with failover) and sends the request; returns the session with the final
    /// response head read, or the error `fail_to_proxy` answers.
    async fn send_request(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        watch: &mut Watch,
    ) -> Result<UpstreamSession> {
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let upstream = match self.choose_upstream(ctx) {
                Ok(u) => u,
                Err(e) => return Err(last.unwrap_or(e)),
            };
            // Per attempt: the head names the upstream (`Host`, target).
            let head = self.upstream_head(session, ctx).await?;
            let slot = self.stream_slot(ctx);
            let connected = watch.run(&mut session.downstream_session, upstream.open(slot));
            let stream = match connected.await? {
                Ok(s) => s,
                Err(e) => {
                    let e = self.connect_failed(ctx, e);
                    if !e.retry() {
                        return Err(e);
                    }
                    last = Some(e);
                    continue;
                }
            };
            let mut body = ctx.body.clone();
            self.request_body_filter(session, &mut body, true, ctx)
                .await?;
            let mut up = UpstreamSession::new(Box::new(stream));
            // Once the request is written it is not sent again: the upstream may have acted
            // on it (a `tools/call` is not idempotent), as on Pingora's path here.
            let sent = exchange_head(&mut up, head, body);
            watch
                .run(&mut session.downstream_session, sent)
                .await?
                .map_err(|e| e.into_up())?;
            while up.get_status().is_some_and(is_interim) {
                self.forward_interim(session, &up, ctx).await?;
                let next = up.read_response();
                watch
                    .run(&mut session.downstream_session, next)
                    .await?
                    .map_err(|e| e.into_up())?;
            }
            return Ok(up);
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
        upstream_head::prepare(&mut head, ctx.body.as_ref().map_or(0, Bytes::len))?;
        self.upstream_request_filter(session, &mut head, ctx)
            .await?;
        Ok(head)
    }

    /// An interim head, downstream, as Pingora's loop forwards one: `response_filter` (which
    /// removes an upstream session id from it), then written. A 1xx the client asked for
    /// (`Expect`) never comes here: such requests take Pingora's path.
    async fn forward_interim(
        &self,
        session: &mut Session,
        up: &UpstreamSession,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(head) = up.resp_header() else {
            return Ok(());
        };
        let mut head = Box::new(head.clone());
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
        up: &mut UpstreamSession,
        ctx: &mut RequestCtx,
        watch: &mut Watch,
    ) -> Result<()> {
        let mut head = Box::new(
            up.resp_header()
                .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "no response head"))?
                .clone(),
        );
        if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // As `response_filter` refuses it on Pingora's path: MCP has no upgrade.
            return Error::e_explain(super::failure::UPSTREAM_UPGRADE, "upstream answered 101")
                .map_err(|e| e.into_up());
        }
        let mut done = up.is_body_done();
        chunk_unframed(&mut head, done)?;
        self.response_filter(session, &mut head, ctx).await?;
        let mut tasks = vec![HttpTask::Header(head, done)];
        // A JSON response usually arrives with its head: send both in one write. (Unconstrained:
        // a task out of tokio's budget would see a ready read as pending.)
        let early = match done {
            true => None,
            false => tokio::task::unconstrained(up.read_response_task()).now_or_never(),
        };
        let mut failed = None;
        match early {
            Some(Ok(task)) => {
                let (body, end) = self.filter_body(session, Ok(task), ctx).await?;
                done = end;
                tasks.push(HttpTask::Body(body, end));
            }
            // The head goes out first, as on Pingora's path (the client may hold a session
            // id from it); the error then ends the response.
            Some(Err(e)) => failed = Some(e.into_up()),
            None => {}
        }
        session
            .write_response_tasks(tasks)
            .await
            .map_err(|e| e.into_down())?;
        if let Some(e) = failed {
            return Err(e);
        }
        while !done {
            let task = watch
                .run(&mut session.downstream_session, up.read_response_task())
                .await?;
            let (body, end) = self.filter_body(session, task, ctx).await?;
            done = end;
            session
                .write_response_tasks(vec![HttpTask::Body(body, end)])
                .await
                .map_err(|e| e.into_down())?;
        }
        Ok(())
    }

    /// One upstream task through `response_body_filter`: the body to send and whether it ends.
    async fn filter_body(
        &self,
        session: &mut Session,
        task: Result<HttpTask>,
        ctx: &mut RequestCtx,
    ) -> Result<(Option<Bytes>, bool)> {
        let (mut body, end) = match task.map_err(|e| e.into_up())? {
            HttpTask::Body(body, end) => (body, end),
            HttpTask::Done => (None, true),
            other => {
                return Error::e_explain(
                    ErrorType::InvalidHTTPHeader,
                    format!("unexpected upstream response part: {}", other.type_str()),
                )
                .map_err(|e| e.into_up())
            }
        };
        if let Some(pause) = self.response_body_filter(session, &mut body, end, ctx)? {
            tokio::time::sleep(pause).await;
        }
        Ok((body, end))
    }
}

/// Writes the request and reads the first response head (an interim one, maybe).
async fn exchange_head(
    up: &mut UpstreamSession,
    head: Box<RequestHeader>,
    body: Option<Bytes>,
) -> Result<()> {
    up.write_request_header(head).await?;
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        up.write_body(&body).await?;
    }
    up.finish_body().await?;
    up.read_response().await?;
    Ok(())
}

/// An interim head: 1xx but 101 (which ends HTTP; the direct exchange never sees it, as it
/// takes no `Upgrade`).
pub(super) fn is_interim(status: http::StatusCode) -> bool {
    status.is_informational() && status != http::StatusCode::SWITCHING_PROTOCOLS
}

/// A response that ends only when the upstream closes is sent chunked (HTTP/1.1), as Pingora's
/// proxy loop sends it, so the client's connection can be kept.
fn chunk_unframed(head: &mut ResponseHeader, done: bool) -> Result<()> {
    let no_body = matches!(head.status.as_u16(), 204 | 304) || head.status.is_informational();
    let framed = head.headers.contains_key(http::header::TRANSFER_ENCODING)
        || head.headers.contains_key(http::header::CONTENT_LENGTH);
    if !no_body && !framed && !done {
        head.set_version(http::Version::HTTP_11);
        head.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(())
}

/// Watches the client while the exchange waits on the upstream, as Pingora's loop does.
#[derive(Debug)]
struct Watch {
    /// Off once the client sent bytes of a pipelined request (Pingora keeps them).
    on: bool,
}

impl Default for Watch {
    fn default() -> Self {
        Self { on: true }
    }
}

impl Watch {
    /// Runs `work` to its end, unless the client goes away first (its error, downstream).
    async fn run<T>(
        &mut self,
        downstream: &mut ServerSession,
        work: impl Future<Output = T>,
    ) -> Result<T> {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                biased;
                done = &mut work => return Ok(done),
                idle = downstream.read_body_or_idle(true), if self.on => match idle {
                    Err(e) => return Err(e.into_down()),
                    Ok(_) => self.on = false,
                },
            }
        }
    }
}
