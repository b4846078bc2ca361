//! The reverse proxy: a Pingora `ProxyHttp` for MCP Streamable HTTP.
//!
//! Each phase is a short dispatcher over the files beside this one; per-request state lives in
//! [`RequestCtx`], shared state on [`McpProxy`]. Every request takes the same phases, JSON and
//! SSE alike, so nothing can skip metrics or interceptors.

mod affinity;
mod authn;
mod cache;
mod ctx;
mod detached;
mod edge_tls;
mod exchange;
pub mod failure;
mod forward;
pub mod handlers;
mod head_clock;
mod interceptor;
pub mod json;
pub mod metrics;
mod request_body;
mod respond;
pub mod resume;
pub mod session;
mod session_keys;
pub mod session_quota;
pub mod sse;
pub mod streams;
mod throttle;
pub mod upstream;
mod upstream_head;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};

pub use ctx::RequestCtx;
use handlers::Route;
pub use metrics::Metrics;
use session::SessionTable;
use throttle::Throttle;
use upstream::UpstreamSet;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::interceptor::Interceptors;
use crate::mcp::{ProtocolVersion, PROTOCOL_VERSION};

/// The MCP reverse proxy service.
#[derive(Debug)]
pub struct McpProxy {
    config: Arc<Config>,
    upstreams: UpstreamSet,
    sessions: Arc<SessionTable>,
    throttle: Throttle,
    auth: Option<Arc<Authenticator>>,
    interceptors: Arc<Interceptors>,
    /// The MCP result cache; `None` with `cache.enabled: false`.
    cache: Option<Arc<crate::cache::Cache>>,
    /// How session SSE streams are held (replay buffers).
    streams: streams::StreamConfig,
    metrics: Arc<Metrics>,
    in_flight: Arc<AtomicUsize>,
    /// Verified client certificates by connection (`None`: no listener asks for them).
    peers: Option<Arc<crate::tls::PeerIdentities>>,
}

// === impl McpProxy ===

impl McpProxy {
    pub fn new(
        config: Arc<Config>,
        upstreams: UpstreamSet,
        metrics: Arc<Metrics>,
        auth: Option<Arc<Authenticator>>,
        interceptors: Arc<Interceptors>,
    ) -> Self {
        let caps = &config.sessions;
        let sessions = Arc::new(
            SessionTable::new(caps.max, upstreams.len())
                .with_caps(caps.max_per_principal, caps.max_per_ip),
        );
        Self {
            throttle: Throttle::new(&config.rate_limits),
            auth,
            interceptors,
            cache: config.cache.as_ref().map(crate::cache::Cache::shared),
            streams: streams::StreamConfig::from_config(&config, metrics.replay_total.clone()),
            config,
            upstreams,
            sessions,
            in_flight: Arc::new(AtomicUsize::new(0)),
            metrics,
            peers: None,
        }
    }

    /// Where the accept layer records verified client certificates (mTLS listeners).
    pub fn with_peer_identities(mut self, peers: Option<Arc<crate::tls::PeerIdentities>>) -> Self {
        self.peers = peers;
        self
    }

    /// The result cache (the admin listener purges it).
    pub fn cache(&self) -> Option<Arc<crate::cache::Cache>> {
        self.cache.clone()
    }

    /// Requests in flight right now (shutdown waits for this to reach zero).
    pub fn in_flight(&self) -> Arc<AtomicUsize> {
        self.in_flight.clone()
    }

    fn upstream_name(&self, ctx: &RequestCtx) -> &str {
        ctx.upstream
            .and_then(|i| self.upstreams.get(i))
            .map_or("none", |u| u.name.as_str())
    }

    /// The session table (the sweeper expires idle sessions in it).
    pub fn sessions(&self) -> Arc<SessionTable> {
        self.sessions.clone()
    }
}

#[async_trait]
impl ProxyHttp for McpProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(&self.in_flight)
    }

    /// Only HSTS, when `security.hsts` is set. Pingora's default is a compression module at
    /// level 0, whose filters still ran on every response head and body piece (1.4% of CPU on
    /// SSE streams); the proxy never compresses, since clients must get SSE as the upstream
    /// sent it.
    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        if let Some(value) = &self.config.security.hsts {
            modules.add_module(Box::new(edge_tls::HstsBuilder(value.clone())));
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

    /// Routes, then (for a POST) reads or plans the body. Runs before any upstream contact.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        upstream_head::drop_upgrade(session.req_header_mut());
        let req = session.req_header();
        let route = handlers::route(&req.method, req.uri.path(), &self.config.endpoint);
        ctx.method_label = route.label();
        ctx.version =
            ProtocolVersion::from_header(req.headers.get(PROTOCOL_VERSION).map(|v| v.as_bytes()));
        ctx.is_delete = route == Route::Delete;
        ctx.want_calls = self.auth.is_some();
        if self.serve_metadata(session, ctx).await? {
            return Ok(true);
        }
        let req = session.req_header();
        let (target, security) = (req.raw_path(), &self.config.security);
        let checked =
            handlers::check_origin_and_host(req.version, &req.uri, target, &req.headers, security);
        if let Err(r) = checked {
            return self.reject(session, ctx, r).await;
        }
        let limits = &self.config.limits;
        if let Err(r) =
            handlers::check_headers(&req.headers, limits.max_headers, limits.max_header_bytes)
        {
            return self.reject(session, ctx, r).await;
        }
        // This request is counted already, hence `>`.
        if self.in_flight.load(std::sync::atomic::Ordering::Relaxed)
            > limits.max_concurrent_requests
        {
            return self.reject(session, ctx, handlers::OVERLOADED).await;
        }
        if let Route::Reject(r) = route {
            return self.reject(session, ctx, r).await;
        }
        // One rule snapshot for the whole request: policy is decided on it, and the rules
        // that judge the body are the same ones.
        let rules = self.interceptors.current();
        let policy = !rules.is_empty() || self.auth.as_ref().is_some_and(|a| a.requires_scopes());
        if self.take_body(session, route, policy, ctx).await? {
            return Ok(true);
        }
        if let (Some(auth), false) = (&self.auth, route == Route::Options) {
            if let Some(done) = self.authorize(session, ctx, auth).await? {
                return Ok(done);
            }
        }
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Err(r) = self.route_session(session.req_header(), peer, ctx) {
            return self
                .reject_with(session, ctx, r.rejection, r.retry_after)
                .await;
        }
        if let Err(t) = self.throttle.check(session.req_header(), peer, ctx) {
            self.metrics
                .rate_limited
                .with_label_values(&[t.scope])
                .inc();
            let r = throttle::RATE_LIMITED;
            return self.reject_with(session, ctx, r, Some(t.retry_after)).await;
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

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Pingora runs this phase on interim (1xx) heads too, and forwards them: only the
        // final head counts, and an upstream session id never leaves on an interim one.
        if upstream_response.status == http::StatusCode::SWITCHING_PROTOCOLS {
            return Error::e_explain(failure::UPSTREAM_UPGRADE, "upstream answered 101");
        }
        if exchange::is_interim(upstream_response.status) {
            upstream_response.remove_header(crate::mcp::SESSION_ID);
            return Ok(());
        }
        ctx.status = upstream_response.status.as_u16();
        self.on_session_response(upstream_response, ctx)?;
        let is_sse = sse::is_event_stream(upstream_response);
        if is_sse {
            sse::prepare_headers(upstream_response)?;
            let max_event = self.config.limits.max_sse_event;
            ctx.sse = Some(sse::SseStream::new(max_event).watched(self.cache_watch(ctx)));
            self.metrics.sse_streams_active.inc();
        }
        self.cache_response_header(upstream_response, is_sse, ctx);
        self.claim_stream(upstream_response, is_sse, ctx);
        self.intercept_response_header(upstream_response, is_sse, session.is_http2(), ctx)
    }

    /// SSE chunks are framed (for metrics and the event bound) and forwarded unchanged, or
    /// event by event through the interceptor rules; JSON bodies that rules may change are
    /// collected and rewritten at their end.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if ctx.sse.is_none() {
            self.cache_body(body, end_of_stream, ctx);
            self.intercept_json_body(body, end_of_stream, ctx);
            return Ok(None);
        }
        self.cache_sse_body(body, ctx);
        if self.drain_stream(body, ctx)? {
            return Ok(None);
        }
        let framed = match self.intercept_sse_chunk(body, ctx) {
            Ok(true) => {
                if end_of_stream {
                    self.intercept_sse_end(body, ctx);
                }
                Ok(())
            }
            Ok(false) => match (ctx.sse.as_mut(), body.as_ref()) {
                (Some(stream), Some(chunk)) => stream.on_chunk(chunk, &self.metrics),
                _ => Ok(()),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = framed {
            tracing::warn!(error = %e, "ending SSE stream");
            return Err(failure::sse_error(e));
        }
        if let (true, Some(stream)) = (end_of_stream, ctx.sse.as_mut()) {
            stream.finish();
        }
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
        let f = failure::classify(e);
        ctx.failure = Some(f.kind);
        // Connect failures were counted per attempt in `fail_to_connect`.
        if f.upstream_fault && !f.kind.starts_with("connect_") {
            self.metrics
                .upstream_errors
                .with_label_values(&[self.upstream_name(ctx), f.kind])
                .inc();
        }
        let mut code = f.status;
        if session.response_written().is_some() {
            code = 0;
        }
        if code > 0 {
            let id = ctx.reply_id();
            let (rpc_code, message, extra) = match f.status {
                503 => (f.code, f.message, vec![("retry-after", "1")]),
                _ => (f.code, f.message, Vec::new()),
            };
            if let Err(write) =
                respond::jsonrpc_error(session, code, id, rpc_code, message, &extra, true).await
            {
                tracing::debug!(error = %write, "client gone before the error reply");
            }
            ctx.status = code;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Client disconnects are normal for SSE; they are logged (at debug) by `logging`.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        !failure::classify(e).upstream_fault
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        head_clock::response_done(session);
        if let Some(stream) = &ctx.live {
            // The stream lives on (and, if the upstream is still sending, is still read).
            stream.detach();
        }
        if ctx.sse.is_some() {
            self.metrics.sse_streams_active.dec();
        }
        let status = match ctx.status {
            0 => session.response_written().map_or(0, |r| r.status.as_u16()),
            s => s,
        };
        let status_label = metrics::status_label(status);
        self.metrics
            .requests
            .with_label_values(&[ctx.method_label, status_label])
            .inc();
        let elapsed = ctx.started.elapsed();
        self.metrics
            .request_duration
            .with_label_values(&[ctx.method_label])
            .observe(elapsed.as_secs_f64());
        let req = session.req_header();
        tracing::info!(
            target: "shadowcat::access",
            method = %req.method,
            mcp_method = ctx.method_label,
            status,
            upstream = self.upstream_name(ctx),
            sse_events = ctx.sse.as_ref().map_or(0, |s| s.events),
            ms = elapsed.as_millis() as u64,
            failure = ctx.failure.unwrap_or(""),
            error = e.map(|e| e.to_string()).unwrap_or_default(),
        );
        if let Some(e) = e {
            tracing::debug!(error = %e, "request ended with an error");
        }
    }
}
