//! What the upstream receives: its own endpoint and credentials, the upstream session id,
//! forwarding headers, and none of the client's credentials (no token passthrough).

use std::fmt::Write;
use std::net::IpAddr;

use http::HeaderName;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;
use super::hop_by_hop::remove;
use super::McpProxy;

/// Request headers the proxy removes before going upstream (Pingora handles the standard
/// hop-by-hop ones).
static STRIP_UPSTREAM: [HeaderName; 5] = [
    // MCP has no upgrade (already dropped from the client's request; kept out whatever a
    // rule or filter adds).
    http::header::UPGRADE,
    // The proxy must see SSE uncompressed to frame it, and sends it uncompressed.
    http::header::ACCEPT_ENCODING,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    // Meant for this hop only, whatever the upstream's settings.
    http::header::PROXY_AUTHORIZATION,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const HTTP: http::HeaderValue = http::HeaderValue::from_static("http");

/// The client's credentials: never passed to an upstream (the MCP spec forbids token
/// passthrough) unless that upstream sets `forward_authorization`.
static CLIENT_CREDENTIALS: [HeaderName; 2] = [http::header::AUTHORIZATION, http::header::COOKIE];

// === impl McpProxy ===

impl McpProxy {
    /// Points the request at the upstream's endpoint and removes what must not travel
    /// (`upstream_request_filter`).
    pub(super) fn rewrite_upstream_request(
        &self,
        session: &Session,
        upstream_request: &mut RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        let upstream = ctx
            .upstream
            .and_then(|i| self.upstreams.get(i))
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream chosen"))?;
        let uri = upstream
            .target_uri(session.req_header().uri.query())
            .map_err(|e| Error::because(ErrorType::InternalError, "upstream target", e))?;
        upstream_request.set_uri(uri);
        // The client's `Host` names the proxy. The upstream's authority travels in the absolute
        // URI the exchange gives the HTTP client: as `Host` on HTTP/1.1 (the client adds it),
        // as `:authority` on HTTP/2, where a `Host` beside it is a duplicate some servers
        // (nginx) refuse with 400.
        remove(upstream_request, &http::header::HOST);
        for name in &STRIP_UPSTREAM {
            remove(upstream_request, name);
        }
        if !upstream.forward_authorization {
            for name in &CLIENT_CREDENTIALS {
                remove(upstream_request, name);
            }
        }
        for (name, value) in &upstream.headers {
            upstream_request.insert_header(name.clone(), value.clone())?;
        }
        self.rewrite_session_upstream(upstream_request, ctx)?;
        self.rewrite_last_event_id(upstream_request, ctx)?;
        self.trace_headers(upstream_request, ctx)?;
        if let Some(ip) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        {
            let mut xff = match upstream_request
                .headers
                .get(&X_FORWARDED_FOR)
                .and_then(|v| v.to_str().ok())
            {
                Some(prior) => format!("{prior}, "),
                None => String::with_capacity(15),
            };
            push_ip(&mut xff, ip);
            upstream_request.insert_header(X_FORWARDED_FOR, xff)?;
        }
        upstream_request.insert_header(X_FORWARDED_PROTO, HTTP.clone())?;
        // The body's length is the client's to set from the body it sends (the held body, or
        // the one a rule rewrote): whatever framing the client used, none of it travels.
        remove(upstream_request, &http::header::CONTENT_LENGTH);
        remove(upstream_request, &http::header::TRANSFER_ENCODING);
        Ok(())
    }
}

/// Appends `ip` as text. IPv4 octet by octet with `itoa`: `IpAddr`'s `Display` goes through the
/// formatting machinery (padding, width), which cost 0.9% of a JSON request's CPU (perf, json_max).
fn push_ip(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        let _ = write!(out, "{ip}");
        return;
    };
    let mut digits = itoa::Buffer::new();
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(digits.format(octet));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "9.99.199.200",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = String::from("x, ");
            push_ip(&mut out, ip);
            assert_eq!(out, format!("x, {ip}"));
        }
    }
}
