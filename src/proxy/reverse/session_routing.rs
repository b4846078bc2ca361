//! Sessions in the proxy phases: which upstream a request goes to, the `Mcp-Session-Id` rewrite
//! in both directions, and the session lifecycle seen in responses.
//!
//! * request: a known session pins the request to its upstream (502 if that upstream is down;
//!   never moved); an unknown, expired or foreign id gets 404 without upstream contact; an
//!   `initialize` reserves a place (429 when its client is at a per-client cap, 503 when the
//!   table is full) and goes to the balanced choice; other requests without an id go upstream
//!   as they are, and the upstream judges them. (The proxy used to answer 400 itself once it
//!   had seen the upstream issue a session, so one client's handshake changed what every other
//!   client got, and a client probing a newer protocol version never saw the upstream's 400
//!   that lists the versions it supports.)
//! * upstream request: the downstream id is replaced by the upstream's.
//! * response: only an `initialize` answer creates a mapping, and the client gets the proxy's
//!   id; an upstream id is mapped back only to the request's own session. A response carrying
//!   the upstream id of another live session is refused with 502 (it may be that session's
//!   answer, and its id must reach no one else); any other id is dropped, never forwarded. An
//!   upstream 404 on a session (or a 2xx/404 to DELETE) ends the mapping.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderValue, AUTHORIZATION};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorSource, Result};

use super::ctx::RequestCtx;
use super::error_classes::{SESSION_CONFLICT, SESSION_UNSEALABLE};
use super::principal::principal_of;
use super::request_checks::Rejection;
use super::session::{InsertError, Session};
use super::session_plan::{
    self, Sealing, SessionPlan, SESSIONS_FULL, SESSIONS_PER_IP, SESSIONS_PER_PRINCIPAL,
    SESSION_NOT_FOUND, SESSION_UPSTREAM_DOWN, TOO_MANY_STREAMS,
};
use super::session_quota::{Cap, ClientNet, Owners};
use super::McpProxy;
use crate::mcp::SESSION_ID;
use crate::ratelimit::client_ip;
use crate::sealed_id::{principal_hash, Claims};

/// Unix seconds now (sealed ids carry wall-clock time: replicas share no other clock).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A request refused while routing its session, and how long the client should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused {
    pub rejection: Rejection,
    pub retry_after: Option<Duration>,
}

impl From<Rejection> for Refused {
    fn from(rejection: Rejection) -> Self {
        Self {
            rejection,
            retry_after: None,
        }
    }
}

// === impl McpProxy ===

impl McpProxy {
    /// Decides the request's session and upstream; a refusal is answered by the caller.
    /// `peer` is the client connection's address (for `sessions.max_per_ip`).
    pub(super) fn route_session(
        &self,
        req: &RequestHeader,
        peer: Option<IpAddr>,
        ctx: &mut RequestCtx,
    ) -> Result<(), Refused> {
        let id = req.headers.get(SESSION_ID).and_then(|v| v.to_str().ok());
        // With `auth:` the principal is the token's subject (set already); without it, the
        // verified client certificate (mTLS), else the credential the client presents.
        if self.auth.is_none() {
            ctx.principal = ctx.client_cert.or_else(|| {
                principal_of(req.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes))
            });
        }
        let sealing = self.sealer.as_deref().map(|sealer| Sealing {
            sealer,
            ended: &self.ended,
            now: unix_now(),
        });
        let plan = session_plan::plan_session(
            id,
            ctx.version,
            ctx.is_initialize,
            ctx.principal.as_ref(),
            &self.sessions,
            self.config.sessions.idle_timeout,
            sealing,
        );
        match plan {
            SessionPlan::Reject(r) => Err(r.into()),
            SessionPlan::Expired(s) => {
                if self.sessions.remove(&s.id).is_some() {
                    self.metrics.session_event("expired", self.sessions.len());
                }
                Err(SESSION_NOT_FOUND.into())
            }
            SessionPlan::Pinned(s) => self.pin(s, ctx),
            SessionPlan::Adopt(claims) => {
                let s = self.adopt(id.unwrap_or_default(), &claims, ctx)?;
                self.pin(s, ctx)
            }
            SessionPlan::Create => {
                let owners = self.owners(req, peer, ctx);
                ctx.new_session = Some(self.sessions.reserve(owners).map_err(|e| self.refusal(e))?);
                ctx.upstream = self.pick(ctx);
                Ok(())
            }
            SessionPlan::Sessionless => {
                ctx.upstream = self.pick(ctx);
                Ok(())
            }
        }
    }

    /// The request goes to its session's upstream (502 when that is down; never moved).
    fn pin(&self, s: Arc<Session>, ctx: &mut RequestCtx) -> Result<(), Refused> {
        if !self.upstreams.is_up(s.upstream) {
            return Err(SESSION_UPSTREAM_DOWN.into());
        }
        let (guard, active) = s.enter();
        if active > self.config.limits.max_streams_per_session {
            return Err(TOO_MANY_STREAMS.into());
        }
        ctx.session_active = Some(guard);
        self.sessions.touch(&s);
        ctx.upstream = Some(s.upstream);
        ctx.session = Some(s);
        Ok(())
    }

    /// A session sealed elsewhere (or forgotten here), taken into this replica's table. Its
    /// upstream is found by name, so replicas may list upstreams in any order; a name this
    /// replica does not know gets 404.
    fn adopt(&self, id: &str, claims: &Claims, ctx: &RequestCtx) -> Result<Arc<Session>, Refused> {
        let upstream = self
            .upstreams
            .iter()
            .position(|u| u.name == claims.upstream)
            .ok_or(SESSION_NOT_FOUND)?;
        match self
            .sessions
            .adopt(id, upstream, &claims.upstream_id, ctx.principal)
        {
            Ok(s) => {
                self.metrics.session_event("adopted", self.sessions.len());
                Ok(s)
            }
            Err(InsertError::Full) => Err(SESSIONS_FULL.into()),
            Err(_) => Err(SESSION_NOT_FOUND.into()),
        }
    }

    /// The id the client gets for a new session: sealed with the first key, or `None` (the
    /// table mints a random one). `Err`: the upstream's id is too long to seal (502).
    fn seal_new(&self, upstream: usize, up_id: &str, ctx: &RequestCtx) -> Result<Option<Arc<str>>> {
        let Some(sealer) = &self.sealer else {
            return Ok(None);
        };
        let name = self.upstreams.get(upstream).map_or("", |u| u.name.as_str());
        let claims = Claims {
            upstream: name.to_owned(),
            upstream_id: up_id.to_owned(),
            principal: ctx.principal.as_ref().map(principal_hash),
            issued: u32::try_from(unix_now()).unwrap_or(u32::MAX),
        };
        match sealer.seal(&claims) {
            Ok(token) => Ok(Some(token.into())),
            Err(e) => {
                tracing::error!(
                    upstream = name,
                    upstream_id_len = up_id.len(),
                    error = %e,
                    "cannot seal the upstream's session id"
                );
                let mut err = Error::explain(SESSION_UNSEALABLE, "cannot seal session id");
                err.esource = ErrorSource::Upstream;
                Err(err)
            }
        }
    }

    /// Remembers an ended sealed id until it would expire, so this replica refuses it;
    /// returns how long that is (`None`: not a sealed id that opens).
    pub(super) fn end_sealed(&self, id: &str) -> Option<Duration> {
        let sealer = self.sealer.as_ref()?;
        let now = unix_now();
        let claims = sealer.open(id, now).ok()?;
        let until = u64::from(claims.issued) + sealer.max_age().as_secs();
        self.ended.end(id, until, now);
        Some(Duration::from_secs(until.saturating_sub(now)))
    }

    /// Who a new session counts against: its principal, and its client's network when the
    /// proxy does not authenticate (see `session_quota.rs`).
    fn owners(&self, req: &RequestHeader, peer: Option<IpAddr>, ctx: &RequestCtx) -> Owners {
        let net = match (&self.auth, peer) {
            (None, Some(peer)) => {
                let xff = req
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok());
                let trusted = &self.config.rate_limits.trusted_proxies;
                Some(ClientNet::of(client_ip(peer, xff, trusted)))
            }
            _ => None,
        };
        Owners {
            principal: ctx.principal,
            net,
        }
    }

    /// The answer to an `initialize` that found no place; per-client caps are counted.
    fn refusal(&self, e: InsertError) -> Refused {
        let (rejection, scope) = match e {
            InsertError::Capped(Cap::PerPrincipal) => {
                (SESSIONS_PER_PRINCIPAL, "sessions_per_principal")
            }
            InsertError::Capped(Cap::PerIp) => (SESSIONS_PER_IP, "sessions_per_ip"),
            _ => return SESSIONS_FULL.into(),
        };
        self.metrics.rate_limited.with_label_values(&[scope]).inc();
        Refused {
            rejection,
            retry_after: Some(session_plan::capped_retry_after(
                self.config.sessions.idle_timeout,
            )),
        }
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
                let sealed = self.seal_new(upstream, up_id, ctx)?;
                match reservation.commit(upstream, up_id, sealed) {
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
                // Refused here at once; the store tells the others (`share_ended`).
                ctx.ended = self.end_sealed(&s.id).map(|ttl| (s.id.clone(), ttl));
                if self.sessions.remove(&s.id).is_some() {
                    self.metrics.session_event(outcome, self.sessions.len());
                }
            }
        }
        Ok(())
    }

    /// The error for a response that would give this client another client's session. The
    /// other session keeps its mapping; this response's body is never read, and
    /// `fail_to_proxy` answers 502 and counts the upstream error.
    fn session_conflict(&self, ctx: &mut RequestCtx) -> Box<Error> {
        tracing::warn!(
            upstream = self.upstream_name(ctx),
            in_session = ctx.session.is_some(),
            "refused an upstream response that carries another session's id"
        );
        let mut e = Error::explain(
            SESSION_CONFLICT,
            "upstream answered with another session's id",
        );
        e.esource = ErrorSource::Upstream;
        e
    }
}
