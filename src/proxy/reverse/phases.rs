//! `impl ProxyHttp for McpProxy`: Pingora's phases, each a few lines that call the file of its
//! concern (the map: `README.md` beside this file). Per-request state lives in [`RequestCtx`],
//! shared state on [`McpProxy`]. Every request takes the same phases, JSON and SSE alike, so
//! nothing can skip metrics or interceptors.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};

use super::ctx::RequestCtx;
use super::request_checks::Route;
use super::{edge_tls, error_classes, head_clock, hop_by_hop, tape_local, McpProxy};

#[async_trait]
impl ProxyHttp for McpProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(&self.in_flight)
    }

    /// HSTS, when `security.hsts` is set; with `recording:`, the tape's view of what the
    /// proxy answers itself (`tape_local.rs`). Pingora's default is a compression module at
    /// level 0, whose filters still ran on every response head and body piece (1.4% of CPU on
    /// SSE streams); the proxy never compresses, since clients must get SSE as the upstream
    /// sent it.
    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        if let Some(value) = &self.config.security.hsts {
            modules.add_module(Box::new(edge_tls::HstsBuilder(value.clone())));
        }
        if self.recorder.is_some() {
            modules.add_module(Box::new(tape_local::LocalAnswerBuilder));
        }
    }

    /// Connection-level limits, per request: a slow request body is cut after
    /// `limits.body_read_timeout` (the idle read Pingora keeps during a response has no
    /// timeout, so SSE is unaffected), and an idle keep-alive connection after
    /// `limits.keepalive_idle`. The head is in: its deadline (`head_clock`) is disarmed.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let limits = &self.config.limits;
        session.set_keepalive(Some(limits.keepalive_idle.as_secs().max(1)));
        session.set_read_timeout(Some(limits.body_read_timeout));
        head_clock::head_read(session);
        if self.config.security.hsts.is_some() {
            edge_tls::Hsts::mark(session);
        }
        if let Some(peers) = &self.peers {
            ctx.client_cert = edge_tls::client_principal(peers, session);
        }
        Ok(())
    }

    /// Answers every request before any upstream contact is decided: routes and checks it,
    /// reads the body, admits it, then serves it from the replay buffer, the rules or the
    /// cache, or sends it upstream by the exchange. The body is read here, not in
    /// `request_body_filter` (which Pingora runs only after the head went upstream), because
    /// policy, session routing and the cache decide on it.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let route = self.classify(session, ctx);
        self.begin_trace(session, ctx);
        if self.serve_metadata(session, ctx).await? {
            return Ok(true);
        }
        if let Err(r) = self.check_head(session, route) {
            return self.reject(session, ctx, r).await;
        }
        // One rule snapshot for the whole request: policy is decided on it, and the rules
        // that judge the body are the same ones.
        let rules = self.interceptors.current();
        let policy = !rules.is_empty() || self.auth.as_ref().is_some_and(|a| a.requires_scopes());
        if self.take_body(session, route, policy, ctx).await? {
            return Ok(true);
        }
        if self.admit(session, route, ctx).await? {
            return Ok(true);
        }
        if self.resume_request(session, ctx).await? {
            return Ok(true);
        }
        if self.intercept_request(session, route, rules, ctx).await? {
            return Ok(true);
        }
        if route == Route::Post && self.cache_lookup(session, ctx).await? {
            return Ok(true);
        }
        self.exchange(session, ctx).await
    }

    /// Never reached: `request_filter` answers every request, through the upstream exchange
    /// (`exchange.rs`) when it goes upstream, so Pingora's proxy loop never runs.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Error::e_explain(
            pingora::ErrorType::InternalError,
            "upstream_peer: requests go upstream by the exchange",
        )
    }

    /// Points the request at the upstream's endpoint and removes what must not travel (the
    /// exchange calls it for every upstream request, the stream resumption's included).
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.rewrite_upstream_request(session, upstream_request, ctx)
    }

    /// The upstream's head (the exchange calls it for interim heads too): session mapping
    /// (an ended session told to the shared store), SSE headers and stream, the cache's tee, the session stream, the response rules.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !hop_by_hop::final_head(upstream_response)? {
            return Ok(());
        }
        ctx.status = upstream_response.status.as_u16();
        self.on_session_response(upstream_response, ctx)?;
        self.share_ended(ctx).await;
        let is_sse = self.start_sse(upstream_response, ctx)?;
        self.cache_response_header(upstream_response, is_sse, ctx);
        self.claim_stream(upstream_response, is_sse, ctx);
        self.intercept_response_header(upstream_response, is_sse, session.is_http2(), ctx)?;
        self.tape_response_header(session, upstream_response, is_sse, ctx);
        Ok(())
    }

    /// SSE reads go through the stream they belong to (`sse_relay.rs`); JSON bodies that the
    /// cache or the rules need are collected, and rewritten at their end. The tape sees what
    /// leaves.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if ctx.sse.is_some() {
            self.relay_sse(body, end_of_stream, ctx)?;
        } else {
            self.cache_body(body, end_of_stream, ctx);
            self.intercept_json_body(body, end_of_stream, ctx);
        }
        self.tape_body(body, end_of_stream, ctx);
        Ok(None)
    }

    /// Writes the classified error (a JSON-RPC error with the request's id) if the client is
    /// still there and nothing was sent yet.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        FailToProxy {
            error_code: self.answer_failure(session, e, ctx).await,
            can_reuse_downstream: false,
        }
    }

    /// Client disconnects are normal for SSE; they are logged (at debug) by `logging`.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        !error_classes::classify(e).upstream_fault
    }

    /// The head deadline re-armed for the next request; a session stream left for its
    /// buffer; the tape's last line; metrics and the access-log line.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        head_clock::response_done(session);
        if let Some(stream) = &ctx.live {
            // The stream lives on (and, if the upstream is still sending, is still read).
            stream.detach();
        }
        self.tape_done(session, ctx);
        self.log_request(session, e, ctx);
    }
}
