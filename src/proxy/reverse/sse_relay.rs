//! SSE responses in the phases. At the head (`response_filter`): headers made for streaming and
//! the response's framer ([`SseStream`](super::sse::SseStream)) set up. Per upstream read
//! (`response_body_filter`): the cache sees the upstream's bytes first (`cache.rs`); a session
//! stream then frames, numbers and buffers them and hands back what its client gets
//! (`resume.rs`, `streams.rs`); otherwise the rules judge event by event (`interceptor.rs`), or
//! the framer only counts events and bounds their size, and the read leaves as it came.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::Result;

use super::ctx::RequestCtx;
use super::{error_classes, sse, McpProxy};

// === impl McpProxy ===

impl McpProxy {
    /// Is the response SSE? If so its headers are made for streaming (no length, no caching,
    /// no buffering) and its framer is set up, watched by the cache.
    pub(super) fn start_sse(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        if !sse::is_event_stream(resp) {
            return Ok(false);
        }
        sse::prepare_headers(resp)?;
        let max_event = self.config.limits.max_sse_event;
        ctx.sse = Some(sse::SseStream::new(max_event).watched(self.cache_watch(ctx)));
        self.trace_sse_start(ctx);
        self.metrics.sse_streams_active.inc();
        Ok(true)
    }

    /// One upstream read of an SSE response: replaced by what the session stream queued, or
    /// filtered by the rules, or framed and forwarded unchanged. A framing error (an event
    /// past `limits.max_sse_event`) ends the stream.
    pub(super) fn relay_sse(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.trace_sse(body, ctx);
        self.cache_sse_body(body, ctx);
        if self.drain_stream(body, ctx)? {
            return Ok(());
        }
        let framed = match self.intercept_sse_chunk(body, ctx) {
            Ok(true) => {
                if end_of_stream {
                    self.intercept_sse_end(body, ctx);
                }
                Ok(())
            }
            Ok(false) => match (ctx.sse.as_mut(), body.as_ref()) {
                (Some(stream), Some(chunk)) => stream.on_chunk(chunk, &self.metrics),
                _ => Ok(()),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = framed {
            tracing::warn!(error = %e, "ending SSE stream");
            return Err(error_classes::sse_error(e));
        }
        if let (true, Some(stream)) = (end_of_stream, ctx.sse.as_mut()) {
            stream.finish();
        }
        Ok(())
    }
}
