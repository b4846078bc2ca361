//! Sessions in the proxy phases: which upstream a request goes to, the `Mcp-Session-Id` rewrite
//! in both directions, and the session lifecycle seen in responses.
//!
//! * request: a known session pins the request to its upstream (502 if that upstream is down;
//!   never moved); an unknown, expired or foreign id gets 404 without upstream contact; an
//!   `initialize` reserves a place (503 when full) and goes to the balanced choice; other
//!   requests without an id go upstream as they are, and the upstream judges them. (The proxy
//!   used to answer 400 itself once it had seen the upstream issue a session, so one client's
//!   handshake changed what every other client got, and a client probing a newer protocol
//!   version never saw the upstream's 400 that lists the versions it supports.)
//! * upstream request: the downstream id is replaced by the upstream's.
//! * response: only an `initialize` answer creates a mapping, and the client gets the proxy's
//!   id; an upstream id is mapped back only to the request's own session. A response carrying
//!   the upstream id of another live session is refused with 502 (it may be that session's
//!   answer, and its id must reach no one else); any other id is dropped, never forwarded. An
//!   upstream 404 on a session (or a 2xx/404 to DELETE) ends the mapping.

use http::header::{HeaderValue, AUTHORIZATION};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorSource, Result};

use super::ctx::RequestCtx;
use super::failure::SESSION_CONFLICT;
use super::handlers::{
    self, Rejection, SessionPlan, SESSIONS_FULL, SESSION_NOT_FOUND, SESSION_UPSTREAM_DOWN,
    TOO_MANY_STREAMS,
};
use super::session::{principal_of, InsertError};
use super::McpProxy;
use crate::mcp::SESSION_ID;

// === impl McpProxy ===

impl McpProxy {
    /// Decides the request's session and upstream; a rejection is answered by the caller.
    pub(super) fn route_session(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), Rejection> {
        let id = req.headers.get(SESSION_ID).and_then(|v| v.to_str().ok());
        // With `auth:` the principal is the token's subject (set already); without it, the
        // credential the client presents.
        if self.auth.is_none() {
            ctx.principal = principal_of(req.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes));
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

    /// Session bookkeeping on the upstream's response header. `Err`: the response is refused
    /// (502), because it carries another live session's upstream id.
    pub(super) fn on_session_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        // A value that is not visible ASCII is no session id: dropped below like any unmapped one.
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
                        resp.insert_header(SESSION_ID, &*s.id)?;
                        ctx.session = Some(s);
                        return Ok(());
                    }
                    Err(InsertError::Conflict) => return Err(self.session_conflict(ctx)),
                    Err(e) => tracing::error!(error = ?e, "cannot create a session"),
                }
            }
        }

        match upstream_id {
            Some(up_id) => match &ctx.session {
                Some(s) if *s.upstream_id == *up_id => resp.insert_header(SESSION_ID, &*s.id)?,
                _ if self.sessions.downstream_id(upstream, &up_id).is_some() => {
                    return Err(self.session_conflict(ctx));
                }
                // Unknown to the proxy: only an `initialize` answer creates a mapping.
                _ => {
                    resp.remove_header(SESSION_ID);
                }
            },
            None => {
                resp.remove_header(SESSION_ID);
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

    /// The error for a response that would give this client another client's session. The
    /// other session keeps its mapping; this response's body is never read (the stream slot
    /// is declined), and `fail_to_proxy` answers 502 and counts the upstream error.
    fn session_conflict(&self, ctx: &mut RequestCtx) -> Box<Error> {
        tracing::warn!(
            upstream = self.upstream_name(ctx),
            in_session = ctx.session.is_some(),
            "refused an upstream response that carries another session's id"
        );
        if let Some(slot) = &ctx.slot {
            slot.claim(None);
        }
        let mut e = Error::explain(
            SESSION_CONFLICT,
            "upstream answered with another session's id",
        );
        e.esource = ErrorSource::Upstream;
        e
    }
}
