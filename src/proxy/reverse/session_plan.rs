//! What a request means for sessions, decided before any upstream contact ([`plan_session`]),
//! and the refusals of session routing (404, 429, 502, 503). `session_routing.rs` acts on the
//! plan. No Pingora here.

use std::sync::Arc;
use std::time::Duration;

use super::principal::Principal;
use super::request_checks::Rejection;
use super::session::{Session, SessionTable};
use super::session_ended::EndedIds;
use crate::mcp::{ErrorCode, ProtocolVersion};
use crate::sealed_id::{principal_hash, Claims, Sealer};

/// What a request means for sessions.
#[derive(Debug)]
pub enum SessionPlan {
    /// Carries a live session of this principal: goes to the session's upstream.
    Pinned(Arc<Session>),
    /// Carries a session that idled past `sessions.idle_timeout`: to be removed, then 404.
    Expired(Arc<Session>),
    /// Carries a sealed id this replica holds no session for (another replica created it, or
    /// this one forgot it): taken in from its claims, opened and checked.
    Adopt(Claims),
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

/// How session ids are sealed, and the time to judge them by.
#[derive(Debug, Clone, Copy)]
pub struct Sealing<'a> {
    pub sealer: &'a Sealer,
    pub ended: &'a EndedIds,
    /// Unix seconds.
    pub now: u64,
}

/// Decides a request's session handling before any upstream contact. An unknown id, one of a
/// different principal (a stolen id) and an expired one all get the same 404, so a client
/// learns nothing about other clients' sessions. With `sealing`, an id is opened first: one
/// that does not open (tampered, unknown key, past `sessions.max_age`), is another
/// principal's, or ended, gets 404; idleness then only frees this replica's state (the
/// sweeper), since another replica cannot know it.
pub fn plan_session(
    id: Option<&str>,
    version: ProtocolVersion,
    is_initialize: bool,
    principal: Option<&Principal>,
    table: &SessionTable,
    idle_timeout: Duration,
    sealing: Option<Sealing<'_>>,
) -> SessionPlan {
    match id {
        Some(id) if sealing.is_some() => plan_sealed(id, principal, table, sealing),
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

fn plan_sealed(
    id: &str,
    principal: Option<&Principal>,
    table: &SessionTable,
    sealing: Option<Sealing<'_>>,
) -> SessionPlan {
    let Some(Sealing { sealer, ended, now }) = sealing else {
        return SessionPlan::Reject(SESSION_NOT_FOUND);
    };
    let claims = match sealer.open(id, now) {
        Ok(claims) => claims,
        Err(e) => {
            tracing::debug!(error = %e, "session id refused");
            return SessionPlan::Reject(SESSION_NOT_FOUND);
        }
    };
    if claims.principal != principal.map(principal_hash) || ended.is_ended(id, now) {
        return SessionPlan::Reject(SESSION_NOT_FOUND);
    }
    match table.get(id) {
        Some(s) if s.principal.as_ref() != principal => SessionPlan::Reject(SESSION_NOT_FOUND),
        Some(s) => SessionPlan::Pinned(s),
        None => SessionPlan::Adopt(claims),
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
            plan_session(Some(&s.id), v, false, alice.as_ref(), &table, IDLE, None),
            SessionPlan::Pinned(_)
        ));
        let bob = principal_of(Some(b"Bearer bob"));
        let SessionPlan::Reject(r) =
            plan_session(Some(&s.id), v, false, bob.as_ref(), &table, IDLE, None)
        else {
            panic!()
        };
        assert_eq!(r.status, 404, "a stolen id is just unknown");
        let SessionPlan::Reject(r) = plan_session(Some(&s.id), v, false, None, &table, IDLE, None)
        else {
            panic!()
        };
        assert_eq!(r.status, 404, "dropping the credential does not help");
        let SessionPlan::Reject(r) = plan_session(Some("nope"), v, false, None, &table, IDLE, None)
        else {
            panic!()
        };
        assert_eq!((r.status, r.code), (404, ErrorCode::SessionNotFound));
        assert!(matches!(
            plan_session(None, v, true, None, &table, IDLE, None),
            SessionPlan::Create
        ));
        assert!(matches!(
            plan_session(None, v, false, None, &table, IDLE, None),
            SessionPlan::Sessionless
        ));
        let v26 = ProtocolVersion::V2026_07_28;
        assert!(matches!(
            plan_session(None, v26, true, None, &table, IDLE, None),
            SessionPlan::Sessionless
        ));
        tokio::time::advance(IDLE).await;
        assert!(matches!(
            plan_session(Some(&s.id), v, false, alice.as_ref(), &table, IDLE, None),
            SessionPlan::Expired(_)
        ));
    }

    #[tokio::test]
    async fn sealed_plans() {
        use crate::sealed_id::Sealer;
        let secret: &[u8] = b"0123456789abcdef0123456789abcdef";
        let sealer = Sealer::new([("k1", secret)], Duration::from_secs(3600)).unwrap();
        let ended = EndedIds::default();
        let now = 1_796_000_000;
        let base = Sealing {
            sealer: &sealer,
            ended: &ended,
            now,
        };
        let sealing = Some(base);
        let table = Arc::new(SessionTable::new(10, 1));
        let alice = principal_of(Some(b"Bearer alice"));
        let claims = Claims {
            upstream: "up".into(),
            upstream_id: "u-1".into(),
            principal: alice.as_ref().map(principal_hash),
            issued: now as u32,
        };
        let id = sealer.seal(&claims).unwrap();
        let v = ProtocolVersion::V2025_11_25;
        let plan = |id: &str, who: Option<&Principal>, sealing| {
            plan_session(Some(id), v, false, who, &table, IDLE, sealing)
        };
        // Unknown here: taken in from its claims.
        let SessionPlan::Adopt(got) = plan(&id, alice.as_ref(), sealing) else {
            panic!()
        };
        assert_eq!(got, claims);
        let s = table.adopt(&id, 0, "u-1", alice).unwrap();
        assert!(
            matches!(plan(&id, alice.as_ref(), sealing), SessionPlan::Pinned(p) if Arc::ptr_eq(&p, &s))
        );
        // Another principal, a tampered id, an expired one, an ended one: 404 alike.
        let bob = principal_of(Some(b"Bearer bob"));
        let mut tampered = id.clone().into_bytes();
        tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let later = Some(Sealing {
            now: now + 3600,
            ..base
        });
        for (id, who, sealing) in [
            (id.as_str(), bob.as_ref(), sealing),
            (id.as_str(), None, sealing),
            (tampered.as_str(), alice.as_ref(), sealing),
            (id.as_str(), alice.as_ref(), later),
            (s.id.as_ref(), bob.as_ref(), sealing),
        ] {
            let SessionPlan::Reject(r) = plan(id, who, sealing) else {
                panic!("{id}")
            };
            assert_eq!(r.status, 404);
        }
        ended.end(&id, now + 3600, now);
        assert!(matches!(
            plan(&id, alice.as_ref(), sealing),
            SessionPlan::Reject(_)
        ));
        // A random-style id never opens.
        let other = table.insert(0, "u-2", alice).unwrap();
        assert!(matches!(
            plan(&other.id, alice.as_ref(), sealing),
            SessionPlan::Reject(_)
        ));
    }
}
