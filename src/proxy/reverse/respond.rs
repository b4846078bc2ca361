//! The one place that writes answers the proxy makes itself.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, Result};
use serde_json::value::RawValue;

use std::time::Duration;

use super::ctx::RequestCtx;
use super::request_checks::Rejection;
use super::{error_classes, McpProxy};
use crate::mcp::{error_body, ErrorCode};

/// Writes a complete local response (an empty `content_type` sends none). `close` ends the
/// downstream connection afterwards (used when the request body was not read, so the
/// connection is not in a reusable state).
pub async fn send(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Bytes,
    extra: &[(&'static str, &str)],
    close: bool,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    if !content_type.is_empty() {
        resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    for (name, value) in extra {
        resp.insert_header(*name, *value)?;
    }
    if close {
        session.set_keepalive(None);
        // HTTP/2 has no connection-specific headers (sending one is a protocol error); there
        // the stream simply ends.
        if !session.is_http2() {
            resp.insert_header(http::header::CONNECTION, "close")?;
        }
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// A JSON-RPC error response with the given HTTP status.
pub async fn jsonrpc_error(
    session: &mut Session,
    status: u16,
    id: Option<&RawValue>,
    code: ErrorCode,
    message: &str,
    extra: &[(&'static str, &str)],
    close: bool,
) -> Result<()> {
    let body = error_body(id, code, message);
    send(session, status, "application/json", body, extra, close).await
}

// === impl McpProxy ===

impl McpProxy {
    /// Answers a request the proxy refuses, with the request's id when it is known. The
    /// connection closes when the request body was not read.
    pub(super) async fn reject(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        r: Rejection,
    ) -> Result<bool> {
        self.reject_with(session, ctx, r, None).await
    }

    /// [`Self::reject`] with a `Retry-After` of `retry_after` (rounded up to whole seconds).
    pub(super) async fn reject_with(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        r: Rejection,
        retry_after: Option<Duration>,
    ) -> Result<bool> {
        let mut extra: Vec<(&'static str, &str)> = Vec::new();
        if let Some(allow) = r.allow {
            extra.push(("allow", allow));
        }
        let wait = retry_after.map(|d| d.as_secs_f64().ceil().max(1.0).to_string());
        match (&wait, r.status) {
            (Some(secs), _) => extra.push(("retry-after", secs)),
            (None, 503) => extra.push(("retry-after", "5")),
            _ => {}
        }
        let close = !session.is_body_done();
        jsonrpc_error(
            session,
            r.status,
            ctx.reply_id(),
            r.code,
            r.message,
            &extra,
            close,
        )
        .await?;
        ctx.status = r.status;
        Ok(true)
    }

    /// `fail_to_proxy`: the failure classified once (the `kind` for metrics and the log), and
    /// answered as a JSON-RPC error with the request's id when the client is still there and
    /// nothing was sent yet. Returns the status written (0: none).
    pub(super) async fn answer_failure(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> u16 {
        let f = error_classes::classify(e);
        ctx.failure = Some(f.kind);
        // Connect failures were counted per attempt in `fail_to_connect`.
        if f.upstream_fault && !f.kind.starts_with("connect_") {
            self.metrics
                .upstream_errors
                .with_label_values(&[self.upstream_name(ctx), f.kind])
                .inc();
        }
        let mut code = f.status;
        if session.response_written().is_some() {
            code = 0;
        }
        if code > 0 {
            let id = ctx.reply_id();
            let (rpc_code, message, extra) = match f.status {
                503 => (f.code, f.message, vec![("retry-after", "1")]),
                _ => (f.code, f.message, Vec::new()),
            };
            if let Err(write) =
                jsonrpc_error(session, code, id, rpc_code, message, &extra, true).await
            {
                tracing::debug!(error = %write, "client gone before the error reply");
            }
            ctx.status = code;
        }
        code
    }
}
