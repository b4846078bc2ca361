//! `logging`: the request's metrics (requests by method and status, duration, active SSE
//! streams) and its one structured access-log line.

use pingora::proxy::Session;
use pingora::Error;

use super::ctx::RequestCtx;
use super::{metrics, McpProxy};

// === impl McpProxy ===

impl McpProxy {
    /// Counts the finished request and writes its access-log line.
    pub(super) fn log_request(&self, session: &Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.sse.is_some() {
            self.metrics.sse_streams_active.dec();
        }
        let status = match ctx.status {
            0 => session.response_written().map_or(0, |r| r.status.as_u16()),
            s => s,
        };
        let ids = self.finish_trace(status, ctx);
        let status_label = metrics::status_label(status);
        self.metrics
            .requests
            .with_label_values(&[ctx.method_label, status_label])
            .inc();
        let elapsed = ctx.started.elapsed();
        self.metrics
            .request_duration
            .with_label_values(&[ctx.method_label])
            .observe(elapsed.as_secs_f64());
        let req = session.req_header();
        tracing::info!(
            target: "shadowcat::access",
            method = %req.method,
            mcp_method = ctx.method_label,
            status,
            upstream = self.upstream_name(ctx),
            sse_events = ctx.sse.as_ref().map_or(0, |s| s.events),
            ms = elapsed.as_millis() as u64,
            failure = ctx.failure.unwrap_or(""),
            error = e.map(|e| e.to_string()).unwrap_or_default(),
            trace_id = ids.as_ref().map(|i| i.0.as_str()),
            span_id = ids.as_ref().map(|i| i.1.as_str()),
        );
        if let Some(e) = e {
            tracing::debug!(error = %e, "request ended with an error");
        }
    }
}
