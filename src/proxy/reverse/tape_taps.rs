//! Recording in the phases (`recording:`; the tapes themselves: `crate::tape`).
//!
//! * `response_filter`, after the session mapping (an `initialize` answer has its session
//!   now): which tape (the session's, or the sessionless client's), the request's line, and
//!   a [`Collector`] for the response in the context.
//! * `response_body_filter`, last: each piece as it goes downstream (the proxy's event ids,
//!   the rules applied) is shown to the collector.
//! * `logging`: a request the proxy answered itself (a refusal, the cache, the rules, a
//!   replay from the stream buffer) gets its request line and its answer as written
//!   (`tape_local.rs` saw it leave); a collector still open (the client left) writes its end.
//!
//! Without `recording:` each of these is one `None` check.

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::tape_local::LocalAnswer;
use super::McpProxy;
use crate::mcp::ProtocolVersion;
use crate::tape::{Collector, Origin, Recorder, Tap};

// === impl McpProxy ===

impl McpProxy {
    /// The response head: the request's line, and the response's collector.
    pub(super) fn tape_response_header(
        &self,
        session: &mut Session,
        resp: &ResponseHeader,
        is_sse: bool,
        ctx: &mut RequestCtx,
    ) {
        if ctx.taped {
            // Its request is on the tape already (one exchange, one request line).
            return;
        }
        LocalAnswer::turn_off(session);
        let Some(tap) = self.tape_request(session, ctx) else {
            return;
        };
        let Some(recorder) = self.recorder.as_deref() else {
            return;
        };
        let headers = recorder.headers(header_pairs(&resp.headers));
        let status = resp.status.as_u16();
        let max = self.config.limits.max_sse_event;
        ctx.tape = Some(Box::new(match is_sse {
            true => Collector::sse(tap, status, headers, max),
            false => Collector::json(tap, status, headers, max),
        }));
    }

    /// A piece of the response as it leaves; at the end, the tape of a deleted session ends.
    pub(super) fn tape_body(
        &self,
        body: &Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) {
        let Some(collector) = ctx.tape.as_mut() else {
            return;
        };
        if let Some(chunk) = body {
            collector.chunk(chunk);
        }
        if end_of_stream {
            collector.finish();
            if ctx.is_delete && (200..300).contains(&ctx.status) {
                collector.tap().end_tape();
            }
        }
    }

    /// The request's end: one the proxy answered itself goes on the tape as it was written.
    pub(super) fn tape_done(&self, session: &mut Session, ctx: &mut RequestCtx) {
        if let Some(mut collector) = ctx.tape.take() {
            collector.finish();
            return;
        }
        if ctx.taped || ctx.status == 0 || self.recorder.is_none() {
            return;
        }
        let Some(tap) = self.tape_request(session, ctx) else {
            return;
        };
        let Some(recorder) = self.recorder.as_deref() else {
            return;
        };
        let Some(answer) = LocalAnswer::take(session) else {
            tap.response(ctx.status, Default::default(), None);
            return;
        };
        let pairs = answer
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()));
        let headers = recorder.headers(pairs);
        let sse = answer
            .headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with(b"text/event-stream"));
        let max = self.config.limits.max_sse_event;
        let mut collector = match sse {
            true => Collector::sse(tap, ctx.status, headers, max),
            false => Collector::json(tap, ctx.status, headers, max),
        };
        if !answer.over {
            answer.body.iter().for_each(|piece| collector.chunk(piece));
        }
        collector.finish();
    }

    /// The request's line on its tape, when the tape is recorded; the tap for its response.
    fn tape_request(&self, session: &Session, ctx: &mut RequestCtx) -> Option<Tap> {
        let recorder = self.recorder.as_deref()?;
        ctx.taped = true;
        let req = session.req_header();
        // MCP traffic only: not a probe of another path, nor the OAuth metadata.
        if req.uri.path() != self.config.endpoint {
            return None;
        }
        let (key, in_session): (Arc<str>, bool) = match &ctx.session {
            Some(s) => (format!("s:{}", s.id).into(), true),
            None => (client_key(session, ctx).into(), false),
        };
        if !recorder.wants(&key) {
            return None;
        }
        let origin = Origin {
            protocol_version: protocol_version(ctx),
            upstream: Arc::from(self.upstream_name(ctx)),
            principal: ctx.principal,
            session: in_session,
        };
        let tap = recorder.tap(key, Arc::new(origin));
        tap.request(
            http_method(req),
            request_headers(recorder, req),
            ctx.body.clone(),
        );
        Some(tap)
    }
}

/// A sessionless client: its principal (hashed), else its address.
fn client_key(session: &Session, ctx: &RequestCtx) -> String {
    match (
        &ctx.principal,
        session.client_addr().and_then(|a| a.as_inet()),
    ) {
        (Some(p), _) => format!("c:p:{}", crate::tape::writer_hex(p)),
        (None, Some(addr)) => format!("c:ip:{}", addr.ip()),
        (None, None) => "c:unknown".to_owned(),
    }
}

/// The version the request speaks; for `initialize`, the one it asks for.
fn protocol_version(ctx: &RequestCtx) -> &'static str {
    if ctx.is_initialize {
        let asked = ctx
            .body
            .as_deref()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v["params"]["protocolVersion"].as_str().map(str::to_owned));
        if let Some(v) = asked {
            return ProtocolVersion::from_header(Some(v.as_bytes())).as_str();
        }
    }
    ctx.version.as_str()
}

fn http_method(req: &RequestHeader) -> &'static str {
    match req.method {
        http::Method::POST => "POST",
        http::Method::GET => "GET",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn request_headers(recorder: &Recorder, req: &RequestHeader) -> crate::tape::format::Headers {
    recorder.headers(header_pairs(&req.headers))
}

fn header_pairs(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, &[u8])> {
    headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()))
}
