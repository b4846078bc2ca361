//! The MCP result cache in the proxy phases (the cache itself: `crate::cache`).
//!
//! * `request_filter`, after authentication, session routing and the interceptors' request
//!   decision: a cacheable request ([`crate::cache::request`]) is answered from a fresh
//!   entry (this principal's private one first, then the public one), as JSON, or as one SSE
//!   event for a client that accepts only SSE. Server-side interceptor rules run on the answer
//!   as on a live one, so a `hide_tools` change applies at once. On a miss the request leads
//!   the key's fetch, or waits for the fetch in flight and looks again.
//! * `response_filter`: a 200 `application/json` response of a cacheable request is teed
//!   (bounded by `limits.max_sse_event`), a 200 SSE response framed; anything else ends the
//!   flight.
//! * `response_body_filter`: at the JSON body's end, or at the SSE response event, the
//!   upstream's bytes (before any rule rewrote them) are stored when the hints or a rule admit
//!   them. A session stream the proxy holds for replay (MCP up to 2025-11-25) is read by its
//!   own task: the stream gets a [`Catch`] that does the same there.
//!
//! The upstream is part of the key, so it is chosen here, before `upstream_peer` (which then
//! keeps it). A body the proxy did not pre-read (large or chunked) is never cached.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;
use tokio::time::Instant;

use super::cache_taps::{self, Catch, Pending, Watch};
use super::ctx::RequestCtx;
use super::{respond, sse, McpProxy};
use crate::cache::{self, Cache, Join, Key, Plan, Request};
use crate::mcp::{headers, judge, ProtocolVersion, METHOD, NAME};
use crate::transport::sse::SseScanner;

// === impl McpProxy ===

impl McpProxy {
    /// Answers a cacheable request from the cache. `Ok(true)`: answered here.
    pub(super) async fn cache_lookup(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let (Some(cache), Some(body)) = (self.cache.as_ref(), ctx.body.as_ref()) else {
            return Ok(false);
        };
        // A body the rules rewrote, or a batch they partly answered, is not the request
        // the client sent: its key would not say what it asks.
        if ctx
            .intercept
            .as_ref()
            .is_some_and(|ic| !ic.forwards_as_is())
        {
            return Ok(false);
        }
        // The peek already named the method: most requests (tools/call) stop here.
        let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        if !batch && !cache::METHODS.contains(&ctx.method_label) {
            return Ok(false);
        }
        if batch {
            let (cache, body) = (cache.clone(), body.clone());
            if self.cache_batch(session, ctx, &cache, body.clone()).await? {
                return Ok(true);
            }
            // Split (the intercept state carries it): nothing more to look up here.
            if ctx
                .intercept
                .as_ref()
                .is_some_and(|ic| !ic.forwards_as_is())
            {
                return Ok(false);
            }
            // Not split: counted as a bypass, as before.
            if let Plan::Bypass { method, .. } = cache::request::plan(&body) {
                self.count(method, "bypass");
            }
            return Ok(false);
        }
        let request = match cache::request::plan(body) {
            Plan::NotCacheable => return Ok(false),
            Plan::Bypass { method, why } => {
                tracing::debug!(mcp_method = method, reason = ?why, "cache bypass");
                self.count(method, "bypass");
                return Ok(false);
            }
            Plan::Cacheable(r)
                if ctx.version == ProtocolVersion::Unknown
                    || !headers_agree(session.req_header(), ctx.version, body) =>
            {
                self.count(r.method, "bypass");
                return Ok(false);
            }
            Plan::Cacheable(r) => r,
        };
        let Ok(upstream) = self.choose_upstream(ctx) else {
            return Ok(false);
        };
        let upstream: Arc<str> = Arc::from(upstream.name.as_str());
        let version = ctx.version.as_str();
        let public = Key::new(upstream.clone(), &request, version, None);
        let mut flight = None;
        if let Some(reply) = self.find(cache, &public, &request, ctx) {
            return self.serve(session, ctx, &request, &upstream, reply).await;
        }
        match cache.flights.join(&public) {
            Join::Lead(guard) => flight = Some(guard),
            Join::Wait(mut rx) => {
                let waited = tokio::time::timeout(cache::FLIGHT_MAX_AGE, Join::wait(&mut rx)).await;
                if waited.is_err() {
                    tracing::debug!(mcp_method = request.method, "cache flight wait timed out");
                }
                if let Some(reply) = self.find(cache, &public, &request, ctx) {
                    return self.serve(session, ctx, &request, &upstream, reply).await;
                }
            }
        }
        self.count(request.method, "miss");
        ctx.cache = Some(Box::new(Pending {
            request,
            upstream,
            version,
            _flight: flight,
            body: None,
            events: None,
        }));
        Ok(false)
    }

    /// A fresh answer: this principal's private entry, else the public one.
    pub(super) fn find(
        &self,
        cache: &Cache,
        public: &Key,
        request: &Request,
        ctx: &RequestCtx,
    ) -> Option<Bytes> {
        let now = Instant::now();
        let private = ctx.principal.map(|p| Key {
            principal: Some(p),
            ..public.clone()
        });
        let entry = private
            .and_then(|k| cache.store.get(&k, now))
            .or_else(|| cache.store.get(public, now));
        self.metrics.cache_bytes.set(cache.store.bytes() as i64);
        entry?.reply(&request.id, now)
    }

    async fn serve(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        request: &Request,
        upstream: &str,
        reply: Bytes,
    ) -> Result<bool> {
        self.count(request.method, "hit");
        let reply = match ctx.intercept.as_ref() {
            Some(ic) => self.intercept_cached(ic, reply, upstream, ctx),
            None => reply,
        };
        let accept = session
            .req_header()
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let (ct, body) = if headers::accepts_json(accept) {
            ("application/json", reply)
        } else {
            ("text/event-stream", sse::message_event(&reply))
        };
        respond::send(session, 200, ct, body, &[], false).await?;
        ctx.status = 200;
        Ok(true)
    }

    /// The response head: tee a JSON success of a cacheable request, else end its flight.
    pub(super) fn cache_response_header(
        &self,
        resp: &ResponseHeader,
        is_sse: bool,
        ctx: &mut RequestCtx,
    ) {
        let Some(pending) = ctx.cache.as_mut() else {
            return;
        };
        let plain_json = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"))
            && resp.headers.get(http::header::CONTENT_ENCODING).is_none();
        match (resp.status == http::StatusCode::OK, is_sse) {
            (true, false) if plain_json => pending.body = Some(BytesMut::new()),
            (true, true) => {
                pending.events = Some(SseScanner::new(self.config.limits.max_sse_event));
            }
            _ => ctx.cache = None,
        }
    }

    /// An SSE response chunk, before any rule rewrites it: its response event is stored (and
    /// the flight ends there, not at the stream's end).
    pub(super) fn cache_sse_body(&self, body: &Option<Bytes>, ctx: &mut RequestCtx) {
        let Some(pending) = ctx.cache.as_mut() else {
            return;
        };
        let (Some(scanner), Some(chunk)) = (pending.events.as_mut(), body.as_ref()) else {
            return;
        };
        if ctx.live.is_some() {
            // The held stream's task caught it (`cache_catch`); what drains here is its output.
            return;
        }
        let mut messages = Vec::new();
        let framed = scanner.feed(chunk, |ev| {
            if let Some(data) = ev.data() {
                messages.push(Bytes::copy_from_slice(&data));
            }
        });
        if framed.is_err() {
            ctx.cache = None;
            return;
        }
        let Some(cache) = self.cache.as_ref() else {
            return;
        };
        for data in messages {
            // Notifications may come first; the one response ends the stream's purpose here.
            if cache::result::is_response(&data) {
                if let Some(p) = ctx.cache.take() {
                    cache_taps::store(
                        cache,
                        &p.request,
                        &p.upstream,
                        p.version,
                        ctx.principal,
                        data,
                    );
                    self.metrics.cache_bytes.set(cache.store.bytes() as i64);
                }
                return;
            }
        }
    }

    /// A JSON response chunk, before any rule rewrites it: kept, and stored at the end.
    pub(super) fn cache_body(
        &self,
        body: &Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) {
        let Some(buf) = ctx.cache.as_mut().and_then(|p| p.body.as_mut()) else {
            return;
        };
        if let Some(chunk) = body {
            if buf.len() + chunk.len() > self.config.limits.max_sse_event {
                ctx.cache = None;
                return;
            }
            buf.extend_from_slice(chunk);
        }
        if !end_of_stream {
            return;
        }
        let Some(pending) = ctx.cache.take() else {
            return;
        };
        if let (Some(cache), Some(buf)) = (self.cache.as_ref(), pending.body) {
            cache_taps::store(
                cache,
                &pending.request,
                &pending.upstream,
                pending.version,
                ctx.principal,
                buf.freeze(),
            );
            self.metrics.cache_bytes.set(cache.store.bytes() as i64);
        }
        // `pending` (and the flight guard) drops here: waiters look again and find the entry.
    }

    /// The cache's view of this response's SSE stream (`None` without a cache or upstream).
    pub(super) fn cache_watch(&self, ctx: &RequestCtx) -> Option<Watch> {
        let cache = self.cache.clone()?;
        let upstream = ctx.upstream.and_then(|i| self.upstreams.get(i))?;
        Some(Watch {
            cache,
            upstream: Arc::from(upstream.name.as_str()),
            bytes: self.metrics.cache_bytes.clone(),
        })
    }

    /// Hands the pending SSE response to a session stream the proxy holds, whose task sees
    /// the upstream's events (before any rule) instead of `response_body_filter`.
    pub(super) fn cache_catch(&self, ctx: &mut RequestCtx) -> Option<Catch> {
        if ctx.cache.as_ref().is_none_or(|p| p.events.is_none()) {
            return None;
        }
        let pending = ctx.cache.take()?;
        Some(Catch {
            cache: self.cache.clone()?,
            pending,
            principal: ctx.principal,
            bytes: self.metrics.cache_bytes.clone(),
        })
    }

    pub(super) fn count(&self, method: &str, result: &str) {
        self.metrics
            .cache_requests
            .with_label_values(&[method, result])
            .inc();
    }
}

/// MCP 2026-07-28: an upstream refuses (400, -32020) a request whose `Mcp-Method` or
/// `Mcp-Name` is missing or disagrees with the body. The cache must not answer what the
/// upstream would refuse, so such a request goes upstream for its refusal.
fn headers_agree(req: &RequestHeader, version: ProtocolVersion, body: &[u8]) -> bool {
    if version != ProtocolVersion::V2026_07_28 {
        return true;
    }
    let values = |name| req.headers.get_all(name).into_iter().map(|v| v.as_bytes());
    if judge::mcp_header_refusal(values(METHOD), values(NAME), body).is_some() {
        return false;
    }
    // They agree with the body where present; absent ones are the upstream's to refuse.
    match req.headers.get(METHOD).and_then(|v| v.to_str().ok()) {
        None => false,
        Some(m) => {
            headers::decode_value(m.trim()) != "resources/read" || req.headers.contains_key(NAME)
        }
    }
}
