//! The upstream set: resolved addresses, the request target on each upstream, and peer options.
//!
//! Names are resolved once at start-up: Pingora's `HttpPeer::new` resolves synchronously and
//! panics on failure, so a bad name must be a start-up error, not a request-time panic.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;

use crate::config::{Config, UpstreamConfig};
use crate::transport::upstream_conn::{ConnPolicy, WatchdogConnector};

/// How long an idle pooled upstream connection is kept. Below Node's default 5 s keep-alive
/// timeout, the usual MCP server runtime, so the proxy rarely reuses a connection the upstream
/// is closing (and a reused connection that fails before any response is retried).
const POOL_IDLE: Duration = Duration::from_secs(4);

/// One upstream MCP server.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    /// `Host` header value.
    pub authority: String,
    /// The upstream's MCP endpoint path (and query).
    pub path_and_query: String,
    connector: Arc<WatchdogConnector>,
}

/// Every configured upstream.
#[derive(Debug)]
pub struct UpstreamSet {
    upstreams: Vec<Upstream>,
}

// === impl UpstreamSet ===

impl UpstreamSet {
    /// Resolves every upstream; the error names the upstream that failed.
    pub fn resolve(config: &Config) -> Result<Self, String> {
        let policy = ConnPolicy {
            connect: config.timeouts.connect,
            request: config.timeouts.request,
            idle_stream: config.timeouts.idle_stream,
            keepalive: config.sse.keepalive,
        };
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Upstream::resolve(u, policy))
            .collect::<Result<_, _>>()?;
        Ok(Self { upstreams })
    }

    pub fn get(&self, index: usize) -> Option<&Upstream> {
        self.upstreams.get(index)
    }

    /// The upstream for a new request. One upstream for now: spreading requests over several
    /// needs session affinity, which arrives with session mapping.
    pub fn pick(&self) -> usize {
        0
    }

    pub fn len(&self) -> usize {
        self.upstreams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }
}

// === impl Upstream ===

impl Upstream {
    fn resolve(config: &UpstreamConfig, policy: ConnPolicy) -> Result<Self, String> {
        let url = &config.url;
        let addr = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| {
                format!(
                    "upstream {:?}: cannot resolve {}: {e}",
                    config.name, url.host
                )
            })?
            .next()
            .ok_or_else(|| format!("upstream {:?}: {} has no address", config.name, url.host))?;
        Ok(Self {
            name: config.name.clone(),
            addr,
            authority: url.authority(),
            path_and_query: url.path_and_query.clone(),
            connector: Arc::new(WatchdogConnector::new(policy)),
        })
    }

    /// The peer for one request. Pingora's own read timeout stays off: it is per read and would
    /// cut quiet SSE streams; the connector enforces the response deadline and the SSE idle
    /// limit, and writes keep-alives, itself.
    pub fn peer(&self, connect_timeout: Duration) -> Box<HttpPeer> {
        let mut peer = HttpPeer::new(self.addr, false, String::new());
        peer.options.connection_timeout = Some(connect_timeout);
        peer.options.total_connection_timeout = Some(connect_timeout);
        peer.options.read_timeout = None;
        peer.options.idle_timeout = Some(POOL_IDLE);
        peer.options.custom_l4 = Some(self.connector.clone());
        Box::new(peer)
    }

    /// The request target upstream: the upstream's path, plus the downstream query if any.
    pub fn target(&self, downstream_query: Option<&str>) -> String {
        match downstream_query {
            Some(q) if !q.is_empty() => {
                let sep = if self.path_and_query.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{sep}{q}", self.path_and_query)
            }
            _ => self.path_and_query.clone(),
        }
    }
}
