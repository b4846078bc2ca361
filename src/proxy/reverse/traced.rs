//! OpenTelemetry in the phases (`crate::telemetry` holds the spans): the trace begun at the
//! head, the upstream attempt's CLIENT span and the trace context it carries (headers, and
//! `params._meta` with `telemetry.propagate_in_meta`), the SSE tap, and the end in `logging`.
//! Every function here is a no-op without `telemetry:` (the context has no trace then).

use bytes::Bytes;
use opentelemetry::KeyValue;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::ctx::RequestCtx;
use super::{edge_tls, hop_by_hop, McpProxy};
use crate::telemetry::{propagation, ServerRequest};

// === impl McpProxy ===

impl McpProxy {
    /// The request's trace, begun at its head (its parent: the `traceparent` header, or the
    /// body's `params._meta` once read).
    pub(super) fn begin_trace(&self, session: &Session, ctx: &mut RequestCtx) {
        let Some(telemetry) = &self.telemetry else {
            return;
        };
        let req = session.req_header();
        ctx.trace = Some(
            telemetry.begin(&ServerRequest {
                headers: &req.headers,
                method: &req.method,
                path: req.uri.path(),
                scheme: if edge_tls::is_tls(session) {
                    "https"
                } else {
                    "http"
                },
                client: session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .map(|a| a.ip()),
                http_version: if session.is_http2() { "2" } else { "1.1" },
            }),
        );
    }

    /// A new attempt at the chosen upstream: its CLIENT span.
    pub(super) fn trace_attempt(&self, ctx: &mut RequestCtx, method: &str) {
        let upstream = ctx.upstream.and_then(|i| self.upstreams.get(i));
        if let (Some(trace), Some(u)) = (ctx.trace.as_mut(), upstream) {
            let uri = u.absolute_uri(&u.target_uri(None).unwrap_or_default());
            trace.start_client(&u.name, &uri, method);
        }
    }

    /// The attempt's answer (its head) or failure.
    pub(super) fn trace_attempt_end(
        &self,
        ctx: &mut RequestCtx,
        status: Option<u16>,
        error: Option<&'static str>,
    ) {
        if let Some(trace) = ctx.trace.as_mut() {
            trace.end_client(status, error);
        }
    }

    /// The upstream request carries the proxy's span context in place of the client's.
    pub(super) fn trace_headers(&self, req: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
        let Some(trace) = &ctx.trace else {
            return Ok(());
        };
        hop_by_hop::remove(req, &http::HeaderName::from_static(propagation::TRACESTATE));
        for (name, value) in trace.upstream_fields() {
            req.insert_header(name, value)?;
        }
        Ok(())
    }

    /// With `propagate_in_meta`, the upstream body's messages carry the span context in
    /// `params._meta` too (a body the proxy cannot read goes as it came).
    pub(super) fn trace_body(&self, body: &mut Option<Bytes>, ctx: &RequestCtx) {
        let (Some(telemetry), Some(trace)) = (&self.telemetry, &ctx.trace) else {
            return;
        };
        if !telemetry.propagate_in_meta() {
            return;
        }
        if let Some(new) = body
            .as_deref()
            .and_then(|b| propagation::write_meta(b, &trace.upstream_fields()))
        {
            *body = Some(new);
        }
    }

    /// An SSE response starts: the trace watches its events for the requests' answers.
    pub(super) fn trace_sse_start(&self, ctx: &mut RequestCtx) {
        if let Some(trace) = ctx.trace.as_mut() {
            trace.on_sse_start(self.config.limits.max_sse_event);
        }
    }

    /// One upstream read of an SSE response, before anything changes it.
    pub(super) fn trace_sse(&self, body: &Option<Bytes>, ctx: &mut RequestCtx) {
        if let (Some(trace), Some(chunk)) = (ctx.trace.as_mut(), body.as_ref()) {
            trace.on_sse_chunk(chunk);
        }
    }

    /// The request is done: every span ends; the ids for the access log.
    pub(super) fn finish_trace(
        &self,
        status: u16,
        ctx: &mut RequestCtx,
    ) -> Option<(String, String)> {
        let trace = ctx.trace.as_mut()?;
        let session = ctx.session.as_ref().map(|s| &*s.id);
        trace.finish(status, session, ctx.failure);
        trace.ids()
    }
}

// === impl RequestCtx ===

impl RequestCtx {
    /// An event on the request's span (a rule's action, a rate limit, an auth refusal).
    pub(super) fn trace_event(&self, name: &'static str, attributes: &[(&'static str, &str)]) {
        if let Some(trace) = &self.trace {
            let attributes = attributes
                .iter()
                .map(|(k, v)| KeyValue::new(*k, (*v).to_owned()))
                .collect();
            trace.event(name, attributes);
        }
    }
}
