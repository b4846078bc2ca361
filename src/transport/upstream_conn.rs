//! Upstream connections for Pingora: a custom L4 connector that hands out watchdog sockets
//! (`transport::watchdog_socket`) over a pool of its own.
//!
//! Pingora's proxy loop has no hook that runs on a timer (`response_body_filter` runs only when
//! the upstream sends bytes) and its `read_timeout` is per read, so it would cut a quiet SSE
//! stream. But Pingora lets a peer bring its own L4 connector, and a connection can be any
//! `AsyncRead + AsyncWrite`: [`WatchdogConnector`] wraps each upstream TCP connection in a
//! [`WatchdogSocket`]. Pingora 0.9 cannot pool such sockets (see `idle_pool`), so each socket
//! carries one request and the TCP connection goes back to [`IdlePool`] when it ends cleanly.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::l4::virt::VirtualSocketStream;
use pingora::{Error, ErrorType, Result};
use tokio::net::TcpStream;

use super::idle_pool::IdlePool;
use super::stream_slot::StreamSlot;
pub use super::upstream_timeout::UpstreamTimeout;
pub use super::watchdog_socket::WatchdogSocket;

/// How long an idle upstream connection is kept: below Node's default 5 s keep-alive timeout
/// (the usual MCP server runtime), so the proxy rarely reuses one the upstream is closing.
pub const POOL_IDLE: Duration = Duration::from_secs(4);
/// Idle connections kept per upstream.
pub const POOL_CAPACITY: usize = 256;

/// Timeouts and keep-alive for one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnPolicy {
    pub connect: Duration,
    pub request: Duration,
    pub idle_stream: Duration,
    pub keepalive: Option<Duration>,
}

/// Pingora L4 connector that hands out watchdog sockets.
#[derive(Debug)]
pub struct WatchdogConnector {
    policy: ConnPolicy,
    pool: Arc<IdlePool>,
}

impl WatchdogConnector {
    pub fn new(policy: ConnPolicy) -> Self {
        Self {
            policy,
            pool: Arc::new(IdlePool::new(POOL_IDLE, POOL_CAPACITY)),
        }
    }

    /// Idle connections held for reuse right now.
    pub fn idle(&self) -> usize {
        self.pool.len()
    }
}

#[async_trait]
impl L4Connect for WatchdogConnector {
    async fn connect(&self, addr: &SocketAddr) -> Result<Stream> {
        self.connect_with(addr, None).await
    }
}

/// One request's connector: a watchdog socket whose SSE body goes to the request's slot.
#[derive(Debug)]
pub struct SlotConnector {
    pub inner: Arc<WatchdogConnector>,
    pub slot: Arc<StreamSlot>,
}

#[async_trait]
impl L4Connect for SlotConnector {
    async fn connect(&self, addr: &SocketAddr) -> Result<Stream> {
        self.inner.connect_with(addr, Some(self.slot.clone())).await
    }
}

impl WatchdogConnector {
    async fn connect_with(
        &self,
        addr: &SocketAddr,
        slot: Option<Arc<StreamSlot>>,
    ) -> Result<Stream> {
        self.open(addr, slot).await
    }

    /// A watchdog socket to `addr` (from the idle pool, else new) as a Pingora stream.
    pub async fn open(&self, addr: &SocketAddr, slot: Option<Arc<StreamSlot>>) -> Result<Stream> {
        let peer = addr.as_inet().copied();
        if let Some(tcp) = self.pool.take() {
            let socket = WatchdogSocket::new(tcp, self.policy)
                .returning_to(self.pool.clone())
                .with_slot(slot, peer);
            return Ok(VirtualSocketStream::new(Box::new(socket)).into());
        }
        let inet = addr.as_inet().ok_or_else(|| {
            Error::explain(ErrorType::ConnectError, "upstream is not a TCP address")
        })?;
        let tcp = match tokio::time::timeout(self.policy.connect, TcpStream::connect(inet)).await {
            Err(_) => {
                return Error::e_explain(
                    ErrorType::ConnectTimedout,
                    format!("connecting to {inet}"),
                )
            }
            Ok(Err(e)) => {
                let etype = match e.kind() {
                    io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                    io::ErrorKind::TimedOut => ErrorType::ConnectTimedout,
                    _ => ErrorType::ConnectError,
                };
                return Error::e_because(etype, format!("connecting to {inet}"), e);
            }
            Ok(Ok(tcp)) => tcp,
        };
        tcp.set_nodelay(true)
            .map_err(|e| Error::because(ErrorType::SocketError, "TCP_NODELAY", e))?;
        let socket = WatchdogSocket::new(tcp, self.policy)
            .returning_to(self.pool.clone())
            .with_slot(slot, peer);
        Ok(VirtualSocketStream::new(Box::new(socket)).into())
    }
}
