//! The accept layer above Pingora's HTTP server: shedding at accept and the request-head
//! deadline, which Pingora has no hooks for.
//!
//! Pingora's listening service hands each accepted connection to a [`ServerApp`]; its HTTP
//! proxy is one. [`EdgeApp`] is the `ServerApp` the listener gets instead, and hands every
//! connection it keeps to Pingora's proxy unchanged but for one wrapper:
//!
//! * **`limits.max_connections` counts connections from accept**, whatever they send (an
//!   HTTP/1.1 connection that never completes a head, an idle keep-alive one, an HTTP/2 one).
//!   Past the limit a new connection is closed at once and counted in
//!   `shadowcat_connections_rejected_total{reason="max_connections"}`: the limit sits below the
//!   open-files budget (`fd_budget`), so accepting never fails and nothing waits in the
//!   backlog for a descriptor.
//! * **Every request head has a total deadline** (`limits.header_read_timeout`), counted from
//!   accept and, on keep-alive, from the end of the previous response, never moved by a byte
//!   ([`HeadDeadline`]). A connection past it is closed and counted (`reason="header_timeout"`).
//!   The first proxy phase disarms the clock once a head is in (`McpProxy::head_read`), and
//!   `logging` re-arms it for the next one. HTTP/2 connections are disarmed once their preface
//!   arrived: the h2 layer frames their requests, and Pingora's `h2_idle_timeout` (set to the
//!   same limit) closes one that has no request in flight for that long, however it trickles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Peek, Ssl, Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use prometheus::IntCounterVec;

use crate::proxy::McpProxy;
use crate::transport::head_deadline::{HeadClock, HeadDeadline};

/// The HTTP/2 connection preface (RFC 9113 section 3.4), as Pingora's h2c check reads it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Pingora's HTTP proxy behind the accept-time limits.
pub struct EdgeApp {
    proxy: Arc<HttpProxy<McpProxy>>,
    max_connections: usize,
    header_read_timeout: Duration,
    /// The listener takes h2c (cleartext HTTP/2 with prior knowledge).
    h2c: bool,
    /// Connections open now (the `shadowcat_connections_open` gauge reads it).
    open: Arc<AtomicUsize>,
    rejected: IntCounterVec,
}

/// Counts a connection while it lives.
struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl EdgeApp ===

impl EdgeApp {
    pub fn new(
        proxy: HttpProxy<McpProxy>,
        limits: &crate::config::Limits,
        h2c: bool,
        metrics: &crate::proxy::reverse::Metrics,
    ) -> Self {
        Self {
            proxy: Arc::new(proxy),
            max_connections: limits.max_connections,
            header_read_timeout: limits.header_read_timeout,
            h2c,
            open: metrics.connections.clone(),
            rejected: metrics.connections_rejected.clone(),
        }
    }

    /// HTTP/2 connections have no per-request head for the clock to time once the preface is
    /// in; an HTTP/1.1 one keeps it. `false`: the peek failed (deadline, or the client left).
    async fn settle_protocol(&self, stream: &mut HeadDeadline) -> bool {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            stream.clock().disarm();
            return true;
        }
        if !self.h2c || stream.get_ssl_digest().is_some() {
            return true;
        }
        let mut preface = [0u8; H2_PREFACE.len()];
        match stream.try_peek(&mut preface).await {
            Ok(true) if preface == H2_PREFACE => {
                stream.clock().disarm();
                true
            }
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "connection closed before its first request");
                false
            }
        }
    }
}

#[async_trait]
impl ServerApp for EdgeApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let _open = Open(&self.open);
        if open > self.max_connections {
            self.rejected.with_label_values(&["max_connections"]).inc();
            // Dropping the stream closes it: no head is read, no descriptor held.
            return None;
        }
        let clock = HeadClock::new(self.header_read_timeout);
        let mut stream = HeadDeadline::new(stream, clock.clone());
        if self.settle_protocol(&mut stream).await {
            // Pingora's own loop: h2c detection, HTTP/1.1 keep-alive, the proxy phases.
            ServerApp::process_new(&self.proxy, Box::new(stream), shutdown).await;
        }
        if clock.expired() {
            self.rejected.with_label_values(&["header_timeout"]).inc();
        }
        None
    }

    async fn cleanup(&self) {
        self.proxy.cleanup().await;
    }
}
