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
//! * **TLS listeners** ([`super::tls`]): the handshake runs here, bounded by its own timeout,
//!   before the head clock starts; Pingora gets the decrypted stream ([`super::tls::TlsConn`]),
//!   which says whether ALPN chose h2. A verified client certificate is recorded for the
//!   connection's life in `tls::PeerIdentities`, where the proxy phases find it.
//!
//! One `EdgeApp` serves every listener (one Pingora service, one runtime): the listener a
//! connection came in on is found by its local address.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{GetSocketDigest, Peek, Ssl, Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use prometheus::IntCounterVec;

use super::tls::TlsEdge;
use crate::proxy::McpProxy;
use crate::tls::{PeerGuard, PeerIdentities};
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
    /// The TLS listeners (any other is plain).
    tls: Vec<Arc<TlsEdge>>,
    /// Where verified client certificates are recorded (`None`: no listener asks for them).
    peers: Option<Arc<PeerIdentities>>,
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
        tls: Vec<Arc<TlsEdge>>,
        peers: Option<Arc<PeerIdentities>>,
    ) -> Self {
        Self {
            tls,
            peers,
            proxy: Arc::new(proxy),
            max_connections: limits.max_connections,
            header_read_timeout: limits.header_read_timeout,
            h2c,
            open: metrics.connections.clone(),
            rejected: metrics.connections_rejected.clone(),
        }
    }

    /// The TLS listener this connection came in on, if it is one.
    fn tls_of(&self, stream: &Stream) -> Option<&Arc<TlsEdge>> {
        if self.tls.is_empty() {
            return None;
        }
        let digest = stream.get_socket_digest()?;
        let local = *digest.local_addr()?.as_inet()?;
        self.tls.iter().find(|t| {
            t.addr == local || (t.addr.port() == local.port() && t.addr.ip().is_unspecified())
        })
    }

    /// The TLS handshake on a TLS listener (`None`: it failed, the connection is closed),
    /// with the client certificate's identity recorded while the connection lives.
    async fn terminate(&self, stream: Stream) -> Option<(Stream, Option<PeerGuard>)> {
        let Some(tls) = self.tls_of(&stream) else {
            return Some((stream, None));
        };
        let conn = tls.handshake(stream).await?;
        let guard = self.peers.as_ref().and_then(|peers| {
            let identity = conn.client_identity()?;
            let digest = conn.get_socket_digest()?;
            let local = *digest.local_addr()?.as_inet()?;
            let peer = *digest.peer_addr()?.as_inet()?;
            Some(peers.enter(local, peer, identity.into()))
        });
        Some((Box::new(conn), guard))
    }

    /// HTTP/2 connections have no per-request head for the clock to time once the preface is
    /// in (under the clock: ALPN `h2` says nothing about whether the client will send it); an
    /// HTTP/1.1 one keeps it. `false`: the peek failed (deadline, or the client left).
    async fn settle_protocol(&self, stream: &mut HeadDeadline) -> bool {
        let alpn_h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        if !alpn_h2 && (!self.h2c || stream.get_ssl_digest().is_some()) {
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
        let (stream, _identity) = self.terminate(stream).await?;
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
