//! A session SSE stream whose client went away: its upstream body is read on, into the
//! stream's replay buffer, for `sse.detached_grace`, so the upstream is not told to stop and
//! the client's reconnect (`GET` + `Last-Event-ID`) finds every event. No Pingora here.

use std::sync::Arc;

use super::streams::LiveStream;
use crate::transport::upstream_body::{Piece, UpstreamBody};

/// Spawns the task that owns `body` from now on: each upstream read goes into `stream` (a
/// connection that dies is resumed upstream as when the client was there), until the body
/// ends, fails, or the grace period passes; then the body is dropped (the upstream sees the
/// close) and the stream marked ended.
pub fn read_on(mut body: UpstreamBody, stream: Arc<LiveStream>) {
    let grace = stream.detached_grace();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        stream.body_end(false);
        return;
    };
    runtime.spawn(async move {
        let read_all = async {
            loop {
                match body.next().await {
                    Piece::Data(data) => stream.payload(data),
                    Piece::End => return true,
                    Piece::Idle | Piece::Failed(_) => return false,
                }
            }
        };
        let clean = tokio::time::timeout(grace, read_all).await.unwrap_or(false);
        stream.body_end(clean);
        tracing::debug!(
            clean,
            stream = stream.no,
            "detached upstream SSE stream ended"
        );
    });
}
