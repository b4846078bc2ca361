//! Sessions in the proxy phases: which upstream a request goes to, the `Mcp-Session-Id` rewrite
//! in both directions, and the session lifecycle seen in responses.
//!
//! * request: a known session pins the request to its upstream (502 if that upstream is down;
//!   never moved); an unknown, expired or foreign id gets 404 without upstream contact; an
//!   `initialize` reserves a place (503 when full) and goes to the balanced choice; other
//!   requests without an id get 400 when their upstream is known to use sessions.
//! * upstream request: the downstream id is replaced by the upstream's.
//! * response: an `initialize` answer with an upstream id creates the mapping and the client
//!   gets the proxy's id; any other upstream id is mapped or dropped, never forwarded; an
//!   upstream 404 on a session (or a 2xx/404 to DELETE) ends the mapping.

use http::header::{HeaderValue, AUTHORIZATION};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;

use super::ctx::RequestCtx;
use super::handlers::{
    self, Rejection, Route, SessionPlan, MISSING_SESSION, SESSIONS_FULL, SESSION_NOT_FOUND,
    SESSION_UPSTREAM_DOWN, TOO_MANY_STREAMS,
};
use super::session::principal_of;
use super::McpProxy;
use crate::mcp::SESSION_ID;

// === impl McpProxy ===

impl McpProxy {
    /// Decides the request's session and upstream; a rejection is answered by the caller.
    pub(super) fn route_session(
        &self,
        req: &RequestHeader,
        route: Route,
        ctx: &mut RequestCtx,
    ) -> Result<(), Rejection> {
        let id = req.headers.get(SESSION_ID).and_then(|v| v.to_str().ok());
        // With `auth:` the principal is the token's subject (set already); without it, the
        // verified client certificate (mTLS), else the credential the client presents.
        if self.auth.is_none() {
            ctx.principal = ctx.client_cert.or_else(|| {
                principal_of(req.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes))
            });
        }
        let plan = handlers::plan_session(
            id,
            ctx.version,
            ctx.is_initialize,
            ctx.principal.as_ref(),
            &self.sessions,
            self.config.sessions.idle_timeout,
        );
        match plan {
            SessionPlan::Reject(r) => Err(r),
            SessionPlan::Expired(s) => {
                if self.sessions.remove(&s.id).is_some() {
                    self.metrics.session_event("expired", self.sessions.len());
                }
                Err(SESSION_NOT_FOUND)
            }
            SessionPlan::Pinned(s) if !self.upstreams.is_up(s.upstream) => {
                Err(SESSION_UPSTREAM_DOWN)
            }
            SessionPlan::Pinned(s) => {
                let (guard, active) = s.enter();
                if active > self.config.limits.max_streams_per_session {
                    return Err(TOO_MANY_STREAMS);
                }
                ctx.session_active = Some(guard);
                self.sessions.touch(&s);
                ctx.upstream = Some(s.upstream);
                ctx.session = Some(s);
                Ok(())
            }
            SessionPlan::Create => {
                ctx.new_session = Some(self.sessions.reserve().map_err(|_| SESSIONS_FULL)?);
                ctx.upstream = self.pick(ctx);
                Ok(())
            }
            SessionPlan::Sessionless => {
                ctx.upstream = self.pick(ctx);
                let needs_session = ctx
                    .upstream
                    .and_then(|i| self.upstreams.get(i))
                    .is_some_and(|u| u.issues_sessions());
                if needs_session && !ctx.version.is_sessionless() && route != Route::Options {
                    return Err(MISSING_SESSION);
                }
                Ok(())
            }
        }
    }

    /// The balanced choice among upstreams not yet tried for this request.
    pub(super) fn pick(&self, ctx: &RequestCtx) -> Option<usize> {
        self.upstreams
            .pick(&ctx.tried, |i| self.sessions.sessions_on(i))
    }

    /// The upstream sees its own session id, never the proxy's.
    pub(super) fn rewrite_session_upstream(
        &self,
        upstream_request: &mut RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        match &ctx.session {
            Some(s) => upstream_request.insert_header(SESSION_ID, &*s.upstream_id)?,
            None => {
                upstream_request.remove_header(SESSION_ID);
            }
        }
        Ok(())
    }

    /// Session bookkeeping on the upstream's response header.
    pub(super) fn on_session_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        let upstream_id = resp
            .headers
            .get(SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let upstream = ctx.upstream.unwrap_or(0);

        if let Some(reservation) = ctx.new_session.take() {
            if let (Some(up_id), true) = (&upstream_id, resp.status.is_success()) {
                match reservation.commit(upstream, up_id, ctx.principal) {
                    Ok((s, evicted)) => {
                        if evicted.is_some() {
                            self.metrics.session_event("evicted", self.sessions.len());
                        }
                        self.metrics.session_event("created", self.sessions.len());
                        if let Some(u) = self.upstreams.get(upstream) {
                            u.set_issues_sessions();
                        }
                        resp.insert_header(SESSION_ID, &*s.id)?;
                        ctx.session = Some(s);
                        return Ok(());
                    }
                    Err(e) => tracing::error!(error = ?e, "cannot create a session"),
                }
            }
        }

        if let Some(up_id) = upstream_id {
            // Never forward an upstream's id: map it, or drop it.
            let mapped = match &ctx.session {
                Some(s) if *s.upstream_id == *up_id => Some(s.id.clone()),
                _ => self.sessions.downstream_id(upstream, &up_id),
            };
            match mapped {
                Some(id) => resp.insert_header(SESSION_ID, &*id)?,
                None => {
                    resp.remove_header(SESSION_ID);
                }
            }
        }

        if let Some(s) = &ctx.session {
            let ended = match (ctx.is_delete, status) {
                (true, 200..=299 | 404) => Some("deleted"),
                (false, 404) => Some("upstream_gone"),
                _ => None,
            };
            if let Some(outcome) = ended {
                if self.sessions.remove(&s.id).is_some() {
                    self.metrics.session_event(outcome, self.sessions.len());
                }
            }
        }
        Ok(())
    }
}
