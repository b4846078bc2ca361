//! Per-method routing on the listener, and the checks on a request head before any upstream
//! contact (`Origin`/`Host`, header limits): what goes upstream and what the proxy refuses
//! ([`Rejection`]). Pure decisions over the method, path and headers, so they are tested
//! without a server.

use http::Method;

use crate::config::Security;
use crate::mcp::ErrorCode;

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

impl From<crate::mcp::judge::Refusal> for Rejection {
    fn from(r: crate::mcp::judge::Refusal) -> Self {
        Rejection {
            status: r.status,
            code: r.code,
            message: r.message,
            allow: None,
        }
    }
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
/// us, gets 403. Inputs no browser sends are refused rather than waved through: an HTTP/1.1
/// request without `Host` (RFC 9112 section 3.2), an HTTP/2 one without `:authority` or
/// `Host`, two `Host` or two `Origin` headers, a value that is not visible ASCII (400), and
/// a request target whose authority (absolute form, `:authority`) disagrees with `Host`
/// (400); that authority is judged like `Host`. An HTTP/1.0 request may lack `Host`, and one
/// without `Origin` is not from a browser: neither is judged by the missing header.
///
/// Pingora 0.9.1 already refuses two `Host` headers, userinfo and an absolute-form authority
/// that differs from `Host` byte for byte (400 before any phase runs, and its request `Uri`
/// then carries no authority: `raw_target` does). These checks hold without it.
pub fn check_origin_and_host(
    version: http::Version,
    uri: &http::Uri,
    raw_target: &[u8],
    headers: &http::HeaderMap,
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
    let host = single(
        headers,
        &http::header::HOST,
        "Bad Request: more than one Host header",
    )?
    .map(|v| visible_ascii(v, "Bad Request: malformed Host header"))
    .transpose()?;
    let origin = single(
        headers,
        &http::header::ORIGIN,
        "Bad Request: more than one Origin header",
    )?
    .map(|v| visible_ascii(v, "Bad Request: malformed Origin header"))
    .transpose()?;
    let target = match uri.authority() {
        Some(a) => Some(a.as_str()),
        None => absolute_form_authority(raw_target)?,
    };
    match (host, target) {
        (None, None) if version == http::Version::HTTP_11 => {
            return Err(bad_request("Bad Request: HTTP/1.1 request without Host"));
        }
        (None, None) if version == http::Version::HTTP_2 => {
            return Err(bad_request(
                "Bad Request: request without :authority or Host",
            ));
        }
        (None, Some(_)) if version == http::Version::HTTP_11 => {
            return Err(bad_request("Bad Request: HTTP/1.1 request without Host"));
        }
        (Some(h), Some(t)) if !h.eq_ignore_ascii_case(t) => {
            return Err(bad_request(
                "Bad Request: Host disagrees with the request target's authority",
            ));
        }
        _ => {}
    }
    if let Some(origin) = origin {
        if !security.origin_allowed(origin) {
            return Err(ORIGIN);
        }
    }
    if let Some(name) = target.or(host) {
        if !security.host_allowed(name) {
            return Err(HOST);
        }
    }
    Ok(())
}

fn bad_request(message: &'static str) -> Rejection {
    Rejection {
        status: 400,
        code: ErrorCode::InvalidRequest,
        message,
        allow: None,
    }
}

/// The authority of an absolute-form request target (`http://host:port/path`), if it is one;
/// an authority that is not visible ASCII is refused like such a `Host`.
fn absolute_form_authority(target: &[u8]) -> Result<Option<&str>, Rejection> {
    let Some(colon) = target.iter().position(|b| *b == b':') else {
        return Ok(None);
    };
    let (scheme, rest) = target.split_at(colon);
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b));
    let Some(rest) = rest.strip_prefix(b"://").filter(|_| scheme_ok) else {
        return Ok(None);
    };
    let end = rest
        .iter()
        .position(|b| b"/?#\\".contains(b))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let bad = || bad_request("Bad Request: malformed request-target authority");
    if authority.is_empty() || !authority.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(bad());
    }
    std::str::from_utf8(authority).map(Some).map_err(|_| bad())
}

/// The header's value when it is there once; two lines are ambiguous (which one would a
/// check judge, and which one would the upstream use?), so they are refused.
fn single<'h>(
    headers: &'h http::HeaderMap,
    name: &http::HeaderName,
    twice: &'static str,
) -> Result<Option<&'h http::HeaderValue>, Rejection> {
    let mut all = headers.get_all(name).iter();
    let first = all.next();
    match all.next() {
        Some(_) => Err(bad_request(twice)),
        None => Ok(first),
    }
}

/// The value as text when it is non-empty visible ASCII (no space, no control byte, nothing
/// past 0x7E), the only thing a `Host` or `Origin` can be.
fn visible_ascii<'v>(
    value: &'v http::HeaderValue,
    bad: &'static str,
) -> Result<&'v str, Rejection> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(bad_request(bad));
    }
    std::str::from_utf8(bytes).map_err(|_| bad_request(bad))
}

/// Header limits (431) and headers the proxy can judge on its own (400): a session id sent
/// twice with different values is ambiguous, and so are two `Authorization` headers (which
/// one names the principal, with or without `auth:`?); a protocol version that is not a date
/// is no version at all (unknown dates go upstream, which decides whether it supports them).
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
    single(
        headers,
        &http::header::AUTHORIZATION,
        "Bad Request: more than one Authorization header",
    )?;
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

/// Too many requests in flight in the whole proxy.
pub const OVERLOADED: Rejection = Rejection {
    status: 503,
    code: ErrorCode::Overloaded,
    message: "Service Unavailable: too many requests in flight (limits.max_concurrent_requests)",
    allow: None,
};

#[cfg(test)]
mod tests;
