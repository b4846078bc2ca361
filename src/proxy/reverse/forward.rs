//! What the upstream receives: its own endpoint and credentials, the upstream session id,
//! forwarding headers, and none of the client's credentials (no token passthrough).

use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;
use super::McpProxy;

/// Request headers the proxy removes before going upstream (Pingora handles the standard
/// hop-by-hop ones).
const STRIP_UPSTREAM: &[&str] = &[
    // The proxy must see SSE uncompressed to frame it, and sends it uncompressed.
    "accept-encoding",
    "proxy-connection",
    "keep-alive",
    // Meant for this hop only, whatever the upstream's settings.
    "proxy-authorization",
];

const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const HTTP: http::HeaderValue = http::HeaderValue::from_static("http");

/// The client's credentials: never passed to an upstream (the MCP spec forbids token
/// passthrough) unless that upstream sets `forward_authorization`.
const CLIENT_CREDENTIALS: &[&str] = &["authorization", "cookie"];

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
        upstream_request.insert_header(http::header::HOST, upstream.host())?;
        for name in STRIP_UPSTREAM {
            upstream_request.remove_header(*name);
        }
        if !upstream.forward_authorization {
            for name in CLIENT_CREDENTIALS {
                upstream_request.remove_header(*name);
            }
        }
        for (name, value) in &upstream.headers {
            upstream_request.insert_header(name.clone(), value.clone())?;
        }
        self.rewrite_session_upstream(upstream_request, ctx)?;
        self.rewrite_last_event_id(upstream_request, ctx)?;
        if let Some(ip) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        {
            let xff = match upstream_request
                .headers
                .get(&X_FORWARDED_FOR)
                .and_then(|v| v.to_str().ok())
            {
                Some(prior) => format!("{prior}, {ip}"),
                None => ip.to_string(),
            };
            upstream_request.insert_header(X_FORWARDED_FOR, xff)?;
        }
        upstream_request.insert_header(X_FORWARDED_PROTO, HTTP.clone())?;
        if let Some(ic) = &ctx.intercept {
            if let Some(len) = ic.body_len() {
                upstream_request.insert_header(http::header::CONTENT_LENGTH, len.to_string())?;
            }
            if ic.rechunks() {
                upstream_request.remove_header(&http::header::CONTENT_LENGTH);
                upstream_request.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
            }
        }
        Ok(())
    }
}
