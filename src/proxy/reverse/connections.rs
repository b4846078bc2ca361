//! `limits.max_connections`: HTTP/1.1 client connections open at once.
//!
//! Pingora has no hook for a connection opening or closing, but it carries a value of ours from
//! one request of a keep-alive connection to the next (`persist_connection_context`) and drops
//! it when the connection closes. So a connection is counted from its first request: a token
//! made then lives in each request's context and, between requests, with the idle connection;
//! the count goes down when the last holder drops it. A connection past the limit gets 503
//! and is closed. HTTP/2 connections carry no such value; their streams are bounded by
//! `limits.max_concurrent_requests`.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::McpProxy;

/// One counted connection; the count drops with the last clone.
#[derive(Debug)]
pub struct ConnToken(Arc<AtomicUsize>);

impl Drop for ConnToken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl McpProxy ===

impl McpProxy {
    /// The first request of an HTTP/1.1 connection counts it (a reused one brought its token).
    pub(super) fn count_connection(&self, session: &Session, ctx: &mut RequestCtx) {
        if ctx.conn.is_some() || session.is_http2() {
            return;
        }
        let open = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        ctx.conn = Some(Arc::new(ConnToken(self.connections.clone())));
        ctx.over_connections = open > self.config.limits.max_connections;
    }
}

/// The token travels with the idle keep-alive connection to its next request.
pub(super) fn persist(ctx: &RequestCtx) -> Option<Box<dyn Any + Send + Sync>> {
    let token = ctx.conn.clone()?;
    Some(Box::new(token))
}

pub(super) fn reuse(ctx: &mut RequestCtx, prev: Box<dyn Any + Send + Sync>) {
    if let Ok(token) = prev.downcast::<Arc<ConnToken>>() {
        ctx.conn = Some(*token);
    }
}
