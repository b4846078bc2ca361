//! What a request means for sessions, decided before any upstream contact ([`plan_session`]),
//! and the refusals of session routing (404, 429, 502, 503). `session_routing.rs` acts on the
//! plan. No Pingora here.

use std::sync::Arc;
use std::time::Duration;

use super::principal::Principal;
use super::request_checks::Rejection;
use super::session::{Session, SessionTable};
use crate::mcp::{ErrorCode, ProtocolVersion};

/// What a request means for sessions.
#[derive(Debug)]
pub enum SessionPlan {
    /// Carries a live session of this principal: goes to the session's upstream.
    Pinned(Arc<Session>),
    /// Carries a session that idled past `sessions.idle_timeout`: to be removed, then 404.
    Expired(Arc<Session>),
    /// `initialize` without a session id: may create one.
    Create,
    /// No session involved: MCP 2026-07-28, or a request without a session id, which the
    /// upstream judges (a server that needs sessions answers 400 itself; one that issues none,
    /// or a version the proxy does not know, answers as it does).
    Sessionless,
    Reject(Rejection),
}

pub const SESSION_NOT_FOUND: Rejection = Rejection {
    status: 404,
    code: ErrorCode::SessionNotFound,
    message: "Session not found",
    allow: None,
};

/// Decides a request's session handling before any upstream contact. An unknown id, one of a
/// different principal (a stolen id) and an expired one all get the same 404, so a client
/// learns nothing about other clients' sessions.
pub fn plan_session(
    id: Option<&str>,
    version: ProtocolVersion,
    is_initialize: bool,
    principal: Option<&Principal>,
    table: &SessionTable,
    idle_timeout: Duration,
) -> SessionPlan {
    match id {
        Some(id) => match table.get(id) {
            Some(s) if s.principal.as_ref() != principal => SessionPlan::Reject(SESSION_NOT_FOUND),
            Some(s) if table.idle_for(&s) >= idle_timeout => SessionPlan::Expired(s),
            Some(s) => SessionPlan::Pinned(s),
            None => SessionPlan::Reject(SESSION_NOT_FOUND),
        },
        None if is_initialize && !version.is_sessionless() => SessionPlan::Create,
        None => SessionPlan::Sessionless,
    }
}

/// A session whose upstream is down: never moved to another upstream silently.
pub const SESSION_UPSTREAM_DOWN: Rejection = Rejection {
    status: 502,
    code: ErrorCode::UpstreamUnavailable,
    message: "the upstream holding this session is unreachable",
    allow: None,
};

/// Too many requests in flight within one session.
pub const TOO_MANY_STREAMS: Rejection = Rejection {
    status: 429,
    code: ErrorCode::RateLimited,
    message: "Too Many Requests: too many concurrent streams in this session (limits.max_streams_per_session)",
    allow: None,
};

/// No room for another session.
pub const SESSIONS_FULL: Rejection = Rejection {
    status: 503,
    code: ErrorCode::Overloaded,
    message: "too many sessions; retry later",
    allow: None,
};

/// The principal holds `sessions.max_per_principal` sessions already.
pub const SESSIONS_PER_PRINCIPAL: Rejection = Rejection {
    status: 429,
    code: ErrorCode::RateLimited,
    message: "Too Many Requests: too many sessions for this principal (sessions.max_per_principal); end one with DELETE",
    allow: None,
};

/// The client's address holds `sessions.max_per_ip` sessions already.
pub const SESSIONS_PER_IP: Rejection = Rejection {
    status: 429,
    code: ErrorCode::RateLimited,
    message: "Too Many Requests: too many sessions from this address (sessions.max_per_ip); end one with DELETE",
    allow: None,
};

/// `Retry-After` for a client at its session cap: a place frees when one of its sessions ends
/// (its DELETE, or `sessions.idle_timeout` without use), so asking again at once is useless;
/// a minute (or the idle timeout, if shorter) is when trying again can make sense.
pub fn capped_retry_after(idle_timeout: Duration) -> Duration {
    idle_timeout.min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::reverse::principal::principal_of;

    const IDLE: Duration = Duration::from_secs(1800);

    #[tokio::test(start_paused = true)]
    async fn session_plans() {
        let table = Arc::new(SessionTable::new(10, 1));
        let alice = principal_of(Some(b"Bearer alice"));
        let s = table.insert(0, "up", alice).unwrap();
        let v = ProtocolVersion::V2025_11_25;
        assert!(matches!(
            plan_session(Some(&s.id), v, false, alice.as_ref(), &table, IDLE),
            SessionPlan::Pinned(_)
        ));
        let bob = principal_of(Some(b"Bearer bob"));
        let SessionPlan::Reject(r) =
            plan_session(Some(&s.id), v, false, bob.as_ref(), &table, IDLE)
        else {
            panic!()
        };
        assert_eq!(r.status, 404, "a stolen id is just unknown");
        let SessionPlan::Reject(r) = plan_session(Some(&s.id), v, false, None, &table, IDLE) else {
            panic!()
        };
        assert_eq!(r.status, 404, "dropping the credential does not help");
        let SessionPlan::Reject(r) = plan_session(Some("nope"), v, false, None, &table, IDLE)
        else {
            panic!()
        };
        assert_eq!((r.status, r.code), (404, ErrorCode::SessionNotFound));
        assert!(matches!(
            plan_session(None, v, true, None, &table, IDLE),
            SessionPlan::Create
        ));
        assert!(matches!(
            plan_session(None, v, false, None, &table, IDLE),
            SessionPlan::Sessionless
        ));
        let v26 = ProtocolVersion::V2026_07_28;
        assert!(matches!(
            plan_session(None, v26, true, None, &table, IDLE),
            SessionPlan::Sessionless
        ));
        tokio::time::advance(IDLE).await;
        assert!(matches!(
            plan_session(Some(&s.id), v, false, alice.as_ref(), &table, IDLE),
            SessionPlan::Expired(_)
        ));
    }
}
