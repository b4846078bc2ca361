//! The request head the exchange sends upstream, prepared before `upstream_request_filter`:
//! headers the client's `Connection` names removed (never `Host` or the `X-Forwarded-*` the
//! proxy sets: such a request is refused) and the standard hop-by-hop headers removed. The
//! body's framing is the HTTP client's: it sends the held body with its own length (HTTP/1.1)
//! or as DATA frames (HTTP/2). `upstream_request_filter` then sets `Host`, the target and the
//! forwarding headers.

use http::header;
use http::HeaderName;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorType, Result};

/// Most `Connection` options followed (Pingora's bound: more is refused).
const MAX_NOMINATIONS: usize = 10;

/// Hop-by-hop headers that never travel upstream (RFC 9110 section 7.6.1, and the legacy ones).
/// Names, not strings: a `&str` name is parsed again on every lookup.
static HOP_BY_HOP: [HeaderName; 10] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

/// A `token` byte (RFC 9110 section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn refuse(why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::InvalidHTTPHeader, why).into_down()
}

/// Removes `name` if present: one lookup when absent, the usual case (Pingora's removal
/// looks in two maps).
pub fn remove(req: &mut RequestHeader, name: &HeaderName) {
    if req.headers.contains_key(name) {
        req.remove_header(name);
    }
}

/// MCP has no protocol upgrade: the client's `Upgrade` (and the `upgrade` option of its
/// `Connection`) are removed from the request itself, in `request_filter`, so Pingora's
/// downstream session never treats it as an upgrade and no upstream ever sees one.
pub fn drop_upgrade(req: &mut RequestHeader) {
    if !req.headers.contains_key(header::UPGRADE) {
        return;
    }
    req.remove_header(&header::UPGRADE);
    let kept: Vec<String> = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(b"upgrade"))
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .collect();
    req.remove_header(&header::CONNECTION);
    if !kept.is_empty() {
        // Names of tokens only (checked by `prepare` later); a lossy byte cannot form one.
        let _ = req.insert_header(header::CONNECTION, kept.join(", "));
    }
}

/// Hop-by-hop headers of an upstream response, removed before it goes downstream (the
/// response's framing is the downstream writer's: a length, or chunks).
static RESPONSE_HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes an upstream response's hop-by-hop headers, and those its `Connection` names.
pub fn strip_response_hop_by_hop(resp: &mut ResponseHeader) {
    let named: Vec<HeaderName> = resp
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
        .collect();
    for name in named.iter().chain(&RESPONSE_HOP_BY_HOP) {
        if resp.headers.contains_key(name) {
            resp.remove_header(name);
        }
    }
}

/// Prepares `req` (a copy of the client's head) before `upstream_request_filter`.
pub fn prepare(req: &mut RequestHeader) -> Result<()> {
    req.set_version(http::Version::HTTP_11);
    let mut named: Vec<HeaderName> = Vec::new();
    let tokens = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty());
    for token in tokens {
        if named.len() + 1 >= MAX_NOMINATIONS {
            return Err(refuse("too many Connection header nominations"));
        }
        if !token.iter().all(|b| is_tchar(*b)) {
            return Err(refuse("invalid token nominated by the Connection header"));
        }
        let name = HeaderName::from_bytes(token)
            .map_err(|_| refuse("invalid token nominated by the Connection header"))?;
        if matches!(
            name.as_str(),
            "host" | "x-forwarded-for" | "x-forwarded-host" | "x-forwarded-proto"
        ) {
            return Err(refuse(
                "protected header cannot be nominated by the Connection header",
            ));
        }
        named.push(name);
    }
    for name in &named {
        remove(req, name);
    }
    for name in &HOP_BY_HOP {
        remove(req, name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/mcp", None).unwrap();
        req.set_version(http::Version::HTTP_2);
        for (n, v) in headers {
            req.append_header(n.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn hop_by_hop_and_nominated_headers_are_removed() {
        let mut req = head(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("content-length", "2"),
            ("mcp-session-id", "s"),
        ]);
        prepare(&mut req).unwrap();
        assert_eq!(req.version, http::Version::HTTP_11);
        for gone in ["connection", "x-secret", "keep-alive", "te"] {
            assert!(!req.headers.contains_key(gone), "{gone}");
        }
        assert_eq!(req.headers["content-length"], "2");
        assert_eq!(req.headers["mcp-session-id"], "s");
    }

    /// Regression (issue "Fail closed", item 2): `Upgrade` went upstream on Pingora's path.
    #[test]
    fn regression_upgrade_is_dropped_from_the_request() {
        let mut req = head(&[
            ("connection", "Upgrade, keep-alive"),
            ("upgrade", "websocket"),
        ]);
        drop_upgrade(&mut req);
        assert!(!req.headers.contains_key("upgrade"));
        assert_eq!(req.headers["connection"], "keep-alive");
        let mut req = head(&[("connection", "upgrade"), ("upgrade", "h2c")]);
        drop_upgrade(&mut req);
        assert!(!req.headers.contains_key("upgrade"));
        assert!(!req.headers.contains_key("connection"));
        let mut req = head(&[("connection", "close")]);
        drop_upgrade(&mut req);
        assert_eq!(
            req.headers["connection"], "close",
            "untouched without Upgrade"
        );
    }

    #[test]
    fn protected_malformed_or_too_many_nominations_are_refused() {
        for value in ["host", "X-Forwarded-For", "\"x-a\"", "a,b,c,d,e,f,g,h,i,j"] {
            let mut req = head(&[("connection", value)]);
            let e = prepare(&mut req).unwrap_err();
            assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader, "{value}");
        }
    }
}
