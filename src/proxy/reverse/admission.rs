//! `request_filter`'s admission, before any upstream contact: the request's route and protocol
//! era; the checks on its head alone (`Origin`/`Host`, header limits, the in-flight cap), before
//! the body is read; and, after it, the bearer token, the session and its upstream, and the
//! rate limits. The checks themselves live in their files (`request_checks.rs`, `authn.rs`,
//! `session_routing.rs`, `throttle.rs`); this one applies them in order and answers refusals.

use std::sync::atomic::Ordering;

use pingora::proxy::Session;
use pingora::Result;

use super::ctx::RequestCtx;
use super::request_checks::{self, Rejection, Route};
use super::{hop_by_hop, throttle, McpProxy};
use crate::mcp::{ProtocolVersion, PROTOCOL_VERSION};

// === impl McpProxy ===

impl McpProxy {
    /// Drops `Upgrade`, routes by method and path, and records what the head says: the
    /// `mcp_method` label until the body names one, the protocol era, a DELETE.
    pub(super) fn classify(&self, session: &mut Session, ctx: &mut RequestCtx) -> Route {
        hop_by_hop::drop_upgrade(session.req_header_mut());
        let req = session.req_header();
        let route = request_checks::route(&req.method, req.uri.path(), &self.config.endpoint);
        ctx.method_label = route.label();
        ctx.version =
            ProtocolVersion::from_header(req.headers.get(PROTOCOL_VERSION).map(|v| v.as_bytes()));
        ctx.is_delete = route == Route::Delete;
        ctx.want_calls = self.auth.is_some();
        route
    }

    /// The checks on the head alone, in order: `Origin`/`Host`, header limits, requests in
    /// flight, then the route's own refusal (404, 405).
    pub(super) fn check_head(&self, session: &Session, route: Route) -> Result<(), Rejection> {
        let req = session.req_header();
        let (target, security) = (req.raw_path(), &self.config.security);
        request_checks::check_origin_and_host(
            req.version,
            &req.uri,
            target,
            &req.headers,
            security,
        )?;
        let limits = &self.config.limits;
        request_checks::check_headers(&req.headers, limits.max_headers, limits.max_header_bytes)?;
        // This request is counted already, hence `>`.
        if self.in_flight.load(Ordering::Relaxed) > limits.max_concurrent_requests {
            return Err(request_checks::OVERLOADED);
        }
        match route {
            Route::Reject(r) => Err(r),
            _ => Ok(()),
        }
    }

    /// After the body: the bearer token (not for a CORS preflight), the session and its
    /// upstream, then the rate limits. `Ok(true)`: answered (refused) here.
    pub(super) async fn admit(
        &self,
        session: &mut Session,
        route: Route,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
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
        let (headers, principal) = (&session.req_header().headers, ctx.principal.as_ref());
        let session_id = ctx.session.as_ref().map(|s| &*s.id);
        if let Err(t) = self.throttle.check(headers, peer, principal, session_id) {
            self.metrics
                .rate_limited
                .with_label_values(&[t.scope])
                .inc();
            ctx.trace_event("shadowcat.rate_limited", &[("shadowcat.rule", t.scope)]);
            let r = throttle::RATE_LIMITED;
            return self.reject_with(session, ctx, r, Some(t.retry_after)).await;
        }
        Ok(false)
    }
}
