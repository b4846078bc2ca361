//! Per-method routing on the listener: what goes upstream and what the proxy answers itself.
//! Pure decisions over the method and path, so they are tested without a server.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::session::{Principal, Session, SessionTable};
use crate::config::Security;
use crate::mcp::{ErrorCode, ProtocolVersion};

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A JSON-RPC message (or batch) for the upstream.
    Post,
    /// The standalone SSE stream (or a resumption with `Last-Event-ID`).
    Get,
    /// Session termination.
    Delete,
    /// CORS preflight: the upstream's business (it knows which headers it exposes).
    Options,
    /// Answered by the proxy.
    Reject(Rejection),
}

/// A request the proxy refuses before any upstream contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: ErrorCode,
    pub message: &'static str,
    /// `Allow` header for a 405.
    pub allow: Option<&'static str>,
}

/// The methods the MCP endpoint takes.
pub const ALLOW: &str = "GET, POST, DELETE, OPTIONS";

/// Routes a request by method and path. Only the configured endpoint exists on the listener.
pub fn route(method: &Method, path: &str, endpoint: &str) -> Route {
    if path != endpoint {
        return Route::Reject(Rejection {
            status: 404,
            code: ErrorCode::NotFound,
            message: "not an MCP endpoint",
            allow: None,
        });
    }
    match *method {
        Method::POST => Route::Post,
        Method::GET => Route::Get,
        Method::DELETE => Route::Delete,
        Method::OPTIONS => Route::Options,
        _ => Route::Reject(Rejection {
            status: 405,
            code: ErrorCode::NotFound,
            message: "the MCP endpoint takes GET, POST and DELETE",
            allow: Some(ALLOW),
        }),
    }
}

impl Route {
    /// The `mcp_method` label before the body is read.
    pub fn label(self) -> &'static str {
        match self {
            Route::Post => "unknown",
            Route::Get => "GET",
            Route::Delete => "DELETE",
            Route::Options => "OPTIONS",
            Route::Reject(_) => "rejected",
        }
    }
}

/// DNS-rebinding protection: a browser page on a foreign site, or a foreign name resolving to
/// us, gets 403. A request without `Origin` (not from a browser) or without `Host` (HTTP/1.0)
/// is not judged by the missing header.
pub fn check_origin_and_host(
    origin: Option<&[u8]>,
    host: Option<&str>,
    security: &Security,
) -> Result<(), Rejection> {
    const ORIGIN: Rejection = Rejection {
        status: 403,
        code: ErrorCode::Forbidden,
        message: "Forbidden: Origin not allowed (security.allowed_origins)",
        allow: None,
    };
    const HOST: Rejection = Rejection {
        status: 403,
        code: ErrorCode::Forbidden,
        message: "Forbidden: Host not allowed (security.allowed_hosts)",
        allow: None,
    };
    if let Some(origin) = origin {
        let origin = std::str::from_utf8(origin).map_err(|_| ORIGIN)?;
        if !security.allowed_origins.iter().any(|g| g.matches(origin)) {
            return Err(ORIGIN);
        }
    }
    if let Some(host) = host {
        if !security.allowed_hosts.iter().any(|g| g.matches(host)) {
            return Err(HOST);
        }
    }
    Ok(())
}

/// Header limits (431) and MCP headers the proxy can judge on its own (400): a session id sent
/// twice with different values is ambiguous, and a protocol version that is not a date is no
/// version at all (unknown dates go upstream, which decides whether it supports them).
pub fn check_headers(
    headers: &http::HeaderMap,
    max_headers: usize,
    max_header_bytes: usize,
) -> Result<(), Rejection> {
    const TOO_LARGE: Rejection = Rejection {
        status: 431,
        code: ErrorCode::InvalidRequest,
        message: "Request Header Fields Too Large (limits.max_headers / limits.max_header_bytes)",
        allow: None,
    };
    const BAD: fn(&'static str) -> Rejection = |message| Rejection {
        status: 400,
        code: ErrorCode::InvalidRequest,
        message,
        allow: None,
    };
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if headers.len() > max_headers || bytes > max_header_bytes {
        return Err(TOO_LARGE);
    }
    let mut ids = headers.get_all(crate::mcp::SESSION_ID).iter();
    if let Some(first) = ids.next() {
        if ids.any(|other| other != first) {
            return Err(BAD("Bad Request: conflicting Mcp-Session-Id headers"));
        }
    }
    if let Some(v) = headers.get(crate::mcp::PROTOCOL_VERSION) {
        let v = v.as_bytes().trim_ascii();
        let date = v.len() == 10
            && v.iter().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !date {
            return Err(BAD("Bad Request: malformed MCP-Protocol-Version"));
        }
    }
    Ok(())
}

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

/// Too many requests in flight in the whole proxy.
pub const OVERLOADED: Rejection = Rejection {
    status: 503,
    code: ErrorCode::Overloaded,
    message: "Service Unavailable: too many requests in flight (limits.max_concurrent_requests)",
    allow: None,
};

/// Too many client connections open.
pub const TOO_MANY_CONNECTIONS: Rejection = Rejection {
    status: 503,
    code: ErrorCode::Overloaded,
    message: "Service Unavailable: too many connections (limits.max_connections)",
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
    use crate::proxy::reverse::session::principal_of;

    const IDLE: Duration = Duration::from_secs(1800);

    #[test]
    fn header_checks() {
        let mut h = http::HeaderMap::new();
        h.insert("mcp-protocol-version", "2025-11-25".parse().unwrap());
        assert!(check_headers(&h, 100, 32 << 10).is_ok());
        h.insert("mcp-protocol-version", "2031-01-01".parse().unwrap());
        assert!(
            check_headers(&h, 100, 32 << 10).is_ok(),
            "unknown dates go upstream"
        );
        h.insert("mcp-protocol-version", "latest".parse().unwrap());
        assert_eq!(check_headers(&h, 100, 32 << 10).unwrap_err().status, 400);
        h.remove("mcp-protocol-version");
        h.append("mcp-session-id", "a".parse().unwrap());
        h.append("mcp-session-id", "a".parse().unwrap());
        assert!(
            check_headers(&h, 100, 32 << 10).is_ok(),
            "a repeated identical id is harmless"
        );
        h.append("mcp-session-id", "b".parse().unwrap());
        assert_eq!(check_headers(&h, 100, 32 << 10).unwrap_err().status, 400);
        h.remove("mcp-session-id");
        h.insert("x-big", "x".repeat(40_000).parse().unwrap());
        assert_eq!(check_headers(&h, 100, 32 << 10).unwrap_err().status, 431);
        let mut many = http::HeaderMap::new();
        for i in 0..101 {
            many.insert(
                http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                "1".parse().unwrap(),
            );
        }
        assert_eq!(check_headers(&many, 100, 32 << 10).unwrap_err().status, 431);
    }

    #[test]
    fn origin_and_host_checks() {
        let s = Security::loopback();
        assert!(check_origin_and_host(None, None, &s).is_ok());
        assert!(
            check_origin_and_host(Some(b"http://localhost:6274"), Some("127.0.0.1:8080"), &s)
                .is_ok()
        );
        let r = check_origin_and_host(Some(b"http://evil.example"), Some("127.0.0.1:8080"), &s)
            .unwrap_err();
        assert_eq!(r.status, 403);
        assert!(r.message.contains("Origin"));
        let r = check_origin_and_host(None, Some("evil.example.com"), &s).unwrap_err();
        assert!(r.message.contains("Host"));
        assert!(check_origin_and_host(Some(b"\xff"), None, &s).is_err());
    }

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

    #[test]
    fn routes_the_endpoint_and_rejects_the_rest() {
        assert_eq!(route(&Method::POST, "/mcp", "/mcp"), Route::Post);
        assert_eq!(route(&Method::GET, "/mcp", "/mcp"), Route::Get);
        assert_eq!(route(&Method::DELETE, "/mcp", "/mcp"), Route::Delete);
        assert_eq!(route(&Method::OPTIONS, "/mcp", "/mcp"), Route::Options);
        let Route::Reject(r) = route(&Method::PUT, "/mcp", "/mcp") else {
            panic!()
        };
        assert_eq!((r.status, r.allow), (405, Some(ALLOW)));
        let Route::Reject(r) = route(&Method::POST, "/other", "/mcp") else {
            panic!()
        };
        assert_eq!(r.status, 404);
        let Route::Reject(r) = route(&Method::POST, "/mcp/", "/mcp") else {
            panic!()
        };
        assert_eq!(r.status, 404);
    }
}
