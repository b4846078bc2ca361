//! Rate limits in the request path: per client IP, per principal, per session, each a token
//! bucket (`crate::ratelimit`). Checked after the session is known and before any upstream
//! contact; over the limit → 429 with `Retry-After` and a JSON-RPC error.

use std::net::IpAddr;
use std::time::Duration;

use super::principal::Principal;
use super::request_checks::Rejection;
use crate::config::RateLimits;
use crate::mcp::ErrorCode;
use crate::ratelimit::{client_ip, Limiter};
use crate::store::Bucket;
use sha2::{Digest, Sha256};

/// Limiters for the configured scopes.
#[derive(Debug)]
pub struct Throttle {
    config: RateLimits,
    ip: Option<Limiter>,
    principal: Option<Limiter>,
    session: Option<Limiter>,
}

/// Why a request was throttled: the scope (metric label) and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub scope: &'static str,
    pub retry_after: Duration,
}

pub const RATE_LIMITED: Rejection = Rejection {
    status: 429,
    code: ErrorCode::RateLimited,
    message: "Too Many Requests: rate limit exceeded",
    allow: None,
};

/// The rate-limit store cannot be reached and `store.on_error` is `deny`.
pub const STORE_UNAVAILABLE: Rejection = Rejection {
    status: 503,
    code: ErrorCode::Overloaded,
    message: "Service Unavailable: the rate-limit store cannot be reached; retry later",
    allow: None,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Throttle {
    /// The shared-store buckets this request counts against, in the order [`Self::check`]
    /// takes them (a session id is kept as a digest: ids never sit in the store).
    pub fn buckets(
        &self,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
        principal: Option<&Principal>,
        session: Option<&str>,
    ) -> Vec<Bucket> {
        let mut out = Vec::new();
        if let (Some(rate), Some(peer)) = (self.config.per_ip, peer) {
            let xff = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
            let ip = client_ip(peer, xff, &self.config.trusted_proxies);
            out.push(Bucket {
                scope: "ip",
                key: ip.to_string(),
                rate,
            });
        }
        if let (Some(rate), Some(principal)) = (self.config.per_principal, principal) {
            out.push(Bucket {
                scope: "principal",
                key: hex(&principal[..16]),
                rate,
            });
        }
        if let (Some(rate), Some(session)) = (self.config.per_session, session) {
            out.push(Bucket {
                scope: "session",
                key: hex(&Sha256::digest(session.as_bytes())[..16]),
                rate,
            });
        }
        out
    }

    pub fn new(config: &RateLimits) -> Self {
        Self {
            ip: config.per_ip.map(Limiter::new),
            principal: config.per_principal.map(Limiter::new),
            session: config.per_session.map(Limiter::new),
            config: config.clone(),
        }
    }

    /// Takes a token in every configured scope that applies to this request.
    /// `headers`: the request's (`X-Forwarded-For` from trusted proxies); `peer`: the
    /// connection's address.
    pub fn check(
        &self,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
        principal: Option<&Principal>,
        session: Option<&str>,
    ) -> Result<(), Throttled> {
        let over = |scope: &'static str| move |retry_after| Throttled { scope, retry_after };
        if let (Some(limiter), Some(peer)) = (&self.ip, peer) {
            let xff = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
            let ip = client_ip(peer, xff, &self.config.trusted_proxies);
            limiter.check(&ip).map_err(over("ip"))?;
        }
        if let (Some(limiter), Some(principal)) = (&self.principal, principal) {
            limiter.check(principal).map_err(over("principal"))?;
        }
        if let (Some(limiter), Some(session)) = (&self.session, session) {
            limiter.check(session).map_err(over("session"))?;
        }
        Ok(())
    }
}
