//! The direct exchange: a POST whose body the proxy already holds goes upstream from
//! `request_filter`, over the same watchdog socket and pool, through the same phases.
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
//! 1. `upstream_request_filter` on a copy of the request head, the head written, the body
//!    through `request_body_filter`, written (the head cork sends both in one segment);
//! 2. the response read task by task with Pingora's client (`read_response_task`: 1xx heads
//!    skipped, chunked and close-delimited bodies decoded), each head through
//!    `response_filter` and each body piece through `response_body_filter`, then written with
//!    `write_response_tasks`, the call Pingora's proxy loop makes;
//! 3. the client watched while the upstream is read (`read_body_or_idle`, as Pingora does), so a
//!    client that leaves an SSE response ends it at once and the stream detaches.
//!
//! Failures keep their meaning: a connect failure goes through `connect_failed` (the upstream
//! marked down, another one tried for requests without a session); a request once written is
//! never sent again. Errors are returned from `request_filter`, so Pingora answers them with
//! `fail_to_proxy` and logs them with `logging`, as on its own path. Everything else (GET and
//! DELETE, bodies streamed because they are large or of unknown length, `Expect`, `Upgrade`) takes
//! Pingora's proxy path; `direct_exchange: false` sends every request there.

use bytes::Bytes;
use futures_util::FutureExt;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::protocols::http::HttpTask;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

use super::{upstream_head, McpProxy, RequestCtx};

/// Connection attempts per request at most (each upstream is tried once).
const MAX_ATTEMPTS: usize = 16;

impl McpProxy {
    /// Whether this request goes upstream by the direct exchange.
    pub(super) fn takes_direct_exchange(&self, session: &Session, ctx: &RequestCtx) -> bool {
        let req = session.req_header();
        self.config.direct_exchange
            && ctx.body.is_some()
            && req.method == http::Method::POST
            && !req.headers.contains_key(http::header::EXPECT)
            && !req.headers.contains_key(http::header::UPGRADE)
    }

    /// Proxies the request and its response; `Ok(true)` as from `request_filter` (answered).
    pub(super) async fn direct_exchange(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let mut upstream = self.send_request(session, ctx).await?;
        self.relay_response(session, &mut upstream, ctx).await?;
        upstream.respect_keepalive();
        // A connection that cannot be kept is shut here; one that can goes back to the pool
        // when its socket drops (the socket decides: only between clean responses).
        drop(upstream.reuse().await);
        Ok(true)
    }

    /// Connects (with failover) and sends the request; returns the session with the response
    /// head read, or the error `fail_to_proxy` answers.
    async fn send_request(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<UpstreamSession> {
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let index = match self.choose_upstream(ctx) {
                Ok(i) => i,
                Err(e) => return Err(last.unwrap_or(e)),
            };
            let upstream = self
                .upstreams
                .get(index)
                .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream chosen"))?;
            let slot = self.stream_slot(ctx);
            let stream = match upstream.open(slot).await {
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
            let mut up = UpstreamSession::new(Box::new(stream));
            // Once the request is written it is not sent again: the upstream may have acted
            // on it (a `tools/call` is not idempotent), as on Pingora's path here.
            return match self.write_and_read_head(session, &mut up, ctx).await {
                Ok(()) => Ok(up),
                Err(e) => Err(e.into_up()),
            };
        }
        Err(last.unwrap_or_else(|| Error::explain(ErrorType::ConnectError, "too many attempts")))
    }

    async fn write_and_read_head(
        &self,
        session: &mut Session,
        up: &mut UpstreamSession,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let mut head = Box::new(session.req_header().clone());
        upstream_head::prepare(&mut head, ctx.body.as_ref().map_or(0, Bytes::len))?;
        self.upstream_request_filter(session, &mut head, ctx)
            .await?;
        up.write_request_header(head).await?;
        let mut body = ctx.body.clone();
        self.request_body_filter(session, &mut body, true, ctx)
            .await?;
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            up.write_body(&body).await?;
        }
        up.finish_body().await?;
        up.read_response().await?;
        Ok(())
    }

    /// Response head and body, downstream, through the response phases.
    async fn relay_response(
        &self,
        session: &mut Session,
        up: &mut UpstreamSession,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // `read_response` above read the first head; 1xx heads are not forwarded (the
        // request carried no `Expect`), so read on to the final one.
        while up
            .get_status()
            .is_some_and(|s| s.is_informational() && s.as_u16() != 101)
        {
            up.read_response().await.map_err(|e| e.into_up())?;
        }
        let mut head = Box::new(
            up.resp_header()
                .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "no response head"))?
                .clone(),
        );
        if head.status.as_u16() == 101 {
            return Error::e_explain(ErrorType::InvalidHTTPHeader, "101 to a POST")
                .map_err(|e| e.into_up());
        }
        let mut done = up.is_body_done();
        self.response_filter(session, &mut head, ctx).await?;
        let mut tasks = vec![HttpTask::Header(head, done)];
        // A JSON response usually arrives with its head: send both in one write.
        if !done {
            if let Some(task) = up.read_response_task().now_or_never() {
                let (body, end) = self.filter_body(session, task, ctx)?;
                done = end;
                tasks.push(HttpTask::Body(body, end));
            }
        }
        session
            .write_response_tasks(tasks)
            .await
            .map_err(|e| e.into_down())?;
        let mut watch_client = true;
        while !done {
            let task = tokio::select! {
                biased;
                task = up.read_response_task() => task,
                idle = session.downstream_session.read_body_or_idle(true), if watch_client => {
                    match idle {
                        Err(e) => return Err(e.into_down()),
                        // Bytes of a pipelined request (Pingora keeps them): stop watching.
                        Ok(_) => {
                            watch_client = false;
                            continue;
                        }
                    }
                }
            };
            let (body, end) = self.filter_body(session, task, ctx)?;
            done = end;
            session
                .write_response_tasks(vec![HttpTask::Body(body, end)])
                .await
                .map_err(|e| e.into_down())?;
        }
        Ok(())
    }

    /// One upstream task through `response_body_filter`: the body to send and whether it ends.
    fn filter_body(
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
        self.response_body_filter(session, &mut body, end, ctx)?;
        Ok((body, end))
    }
}
