//! The request body in `request_filter`: read (or planned to stream) before any upstream
//! contact, and, when any policy is on, judged exactly as the upstream will read it or refused.
//!
//! Policy (interceptor rules, `hide_tools`, required scopes) decides on what the judge reads
//! (`mcp::judge`), so with policy on this refuses, before any upstream contact:
//! a body on a GET, DELETE or OPTIONS (no rule looks there); a POST whose `Content-Type` is
//! not one `application/json` in UTF-8, or with a `Content-Encoding` (415); a body the judge
//! cannot read (400); MCP 2026-07-28 `Mcp-Method`/`Mcp-Name` headers that are repeated,
//! unreadable or disagree with the body (400, -32020). One rule snapshot serves the whole
//! request, so a reload mid-request cannot turn policy on after the body went unjudged.

use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;
use super::handlers::{Rejection, Route};
use super::json;
use super::{failure, respond, McpProxy};
use crate::mcp::{judge, ErrorCode, ProtocolVersion, METHOD, NAME};

/// A body where the MCP endpoint takes none.
const UNEXPECTED_BODY: Rejection = Rejection {
    status: 400,
    code: ErrorCode::InvalidRequest,
    message: "Invalid Request: GET, DELETE and OPTIONS take no body here",
    allow: None,
};

// === impl McpProxy ===

impl McpProxy {
    /// Reads or plans the request body; `Ok(true)`: answered here (refused).
    pub(super) async fn take_body(
        &self,
        session: &mut Session,
        route: Route,
        policy: bool,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let post = route == Route::Post;
        if !post && session.is_body_empty() {
            return Ok(false);
        }
        if !post && policy {
            return self.reject(session, ctx, UNEXPECTED_BODY).await;
        }
        if post && policy {
            let headers = &session.req_header().headers;
            let values = |name| headers.get_all(name).into_iter().map(|v| v.as_bytes());
            let refused = judge::content_type_refusal(values(http::header::CONTENT_TYPE))
                .or_else(|| judge::encoding_refusal(values(http::header::CONTENT_ENCODING)));
            if let Some(r) = refused {
                return self.reject(session, ctx, r.into()).await;
            }
        }
        let max_body = self.config.limits.max_body;
        if json::declared_too_large(json::content_length(session), max_body) {
            let f = failure::classify(&Error::explain(ErrorType::HTTPStatus(413), ""));
            respond::jsonrpc_error(session, f.status, None, f.code, f.message, &[], true).await?;
            ctx.status = f.status;
            ctx.failure = Some(f.kind);
            return Ok(true);
        }
        let total = self.config.limits.body_total_timeout;
        json::read_whole(session, ctx, max_body, total, post).await?;
        if !policy || !post {
            return Ok(false);
        }
        let mut refused = ctx.unjudgeable.map(Rejection::from);
        if refused.is_none() && ctx.version == ProtocolVersion::V2026_07_28 {
            let headers = &session.req_header().headers;
            let values = |name| headers.get_all(name).into_iter().map(|v| v.as_bytes());
            let body = ctx.body.as_deref().unwrap_or_default();
            refused = judge::mcp_header_refusal(values(METHOD), values(NAME), body).map(Into::into);
        }
        match refused {
            Some(r) => self.reject(session, ctx, r).await,
            None => Ok(false),
        }
    }
}
