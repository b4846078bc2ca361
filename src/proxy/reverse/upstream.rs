//! The upstream set: resolved addresses, request targets, selection and passive health.
//!
//! Names are checked once at start-up (a name that does not resolve is a start-up error);
//! each upstream has its own HTTP client (`crate::upstream_client`: pooled connections, TLS,
//! HTTP/1.1 or HTTP/2), which resolves the name again for every new connection.
//!
//! Selection applies to new sessions and sessionless requests only; a session stays on the
//! upstream that created it. An upstream that fails to connect is marked down for
//! `health.down_for`; selection avoids it meanwhile (unless every upstream is down, when the
//! normal choice is tried anyway, since being wrong about health beats refusing all traffic).
//! A request's own choice and failover are in `upstream_choice.rs`. No Pingora here.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Config, LoadBalancing, UpstreamConfig};
use crate::upstream_client::{ClientSettings, UpstreamClient};

/// One upstream MCP server.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    /// `Host` header value.
    pub authority: String,
    /// The upstream's MCP endpoint path (and query).
    pub path_and_query: String,
    /// `path_and_query` and `authority`, parsed once (not per request).
    uri: http::Uri,
    /// `http` or `https`, and the authority: the absolute URI the client is given.
    scheme: http::uri::Scheme,
    uri_authority: http::uri::Authority,
    pub weight: u32,
    /// Pass the client's `Authorization` and `Cookie` on (off by default).
    pub forward_authorization: bool,
    /// The upstream's own credentials and extra headers.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The upstream's HTTP client (its own pool, TLS settings and HTTP version).
    pub client: UpstreamClient,
    /// Milliseconds (since the set's origin) until which the upstream counts as down.
    down_until: AtomicU64,
}

/// Every configured upstream, and how to choose among them.
#[derive(Debug)]
pub struct UpstreamSet {
    upstreams: Vec<Upstream>,
    strategy: LoadBalancing,
    /// Weighted round robin order: each index appears `weight` times, interleaved.
    wheel: Vec<usize>,
    next: AtomicUsize,
    down_for: Duration,
    origin: Instant,
}

// === impl UpstreamSet ===

impl UpstreamSet {
    /// Resolves every upstream; the error names the upstream that failed.
    pub fn resolve(config: &Config) -> Result<Self, String> {
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Upstream::resolve(u, config.timeouts.connect))
            .collect::<Result<Vec<_>, _>>()?;
        let weights: Vec<u32> = upstreams.iter().map(|u| u.weight).collect();
        Ok(Self {
            wheel: smooth_wheel(&weights),
            upstreams,
            strategy: config.load_balancing,
            next: AtomicUsize::new(0),
            down_for: config.health.down_for,
            origin: Instant::now(),
        })
    }

    pub fn get(&self, index: usize) -> Option<&Upstream> {
        self.upstreams.get(index)
    }

    pub fn len(&self) -> usize {
        self.upstreams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Upstream> {
        self.upstreams.iter()
    }

    fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_millis() as u64
    }

    /// Is the upstream believed reachable?
    pub fn is_up(&self, index: usize) -> bool {
        self.upstreams
            .get(index)
            .is_some_and(|u| u.down_until.load(Ordering::Relaxed) <= self.now_ms())
    }

    /// Passive health: a connection to the upstream failed.
    pub fn mark_down(&self, index: usize) {
        if let Some(u) = self.upstreams.get(index) {
            let until = self.now_ms() + self.down_for.as_millis() as u64;
            u.down_until.store(until, Ordering::Relaxed);
        }
    }

    /// Chooses an upstream for a new session or a sessionless request, skipping `tried` and
    /// upstreams that are down. `sessions_on` tells how many sessions an upstream holds.
    /// `None` when every upstream was tried.
    pub fn pick(&self, tried: &[usize], sessions_on: impl Fn(usize) -> usize) -> Option<usize> {
        let untried = |i: &usize| !tried.contains(i);
        let candidates = || (0..self.upstreams.len()).filter(untried);
        let healthy = candidates().filter(|i| self.is_up(*i)).count() > 0;
        let usable = |i: usize| untried(&i) && (!healthy || self.is_up(i));
        match self.strategy {
            LoadBalancing::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..self.wheel.len())
                    .map(|k| self.wheel[(start + k) % self.wheel.len()])
                    .find(|i| usable(*i))
            }
            LoadBalancing::LeastSessions => candidates()
                .filter(|i| usable(*i))
                .min_by_key(|i| (sessions_on(*i), *i)),
        }
    }
}

/// Smooth weighted round robin (as nginx does it), unrolled into one cycle: weights 5,1,1 give
/// a a b a c a a, not a a a a a b c.
fn smooth_wheel(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .filter_map(|_| {
            for (c, w) in current.iter_mut().zip(weights) {
                *c += i64::from(*w);
            }
            let (best, _) = current
                .iter()
                .enumerate()
                .max_by_key(|(i, c)| (**c, -(*i as i64)))?;
            current[best] -= total;
            Some(best)
        })
        .collect()
}

// === impl Upstream ===

impl Upstream {
    fn resolve(config: &UpstreamConfig, connect: Duration) -> Result<Self, String> {
        let url = config.url().ok_or_else(|| {
            format!(
                "upstream {:?}: stdio upstream without a bridge (not started)",
                config.name
            )
        })?;
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
        let uri = url
            .path_and_query
            .parse()
            .map_err(|e| format!("upstream {:?}: path: {e}", config.name))?;
        let uri_authority = http::uri::Authority::try_from(url.authority())
            .map_err(|e| format!("upstream {:?}: host: {e}", config.name))?;
        let client = UpstreamClient::new(&ClientSettings::from_config(config, url, connect))
            .map_err(|e| format!("upstream {:?}: {e}", config.name))?;
        Ok(Self {
            name: config.name.clone(),
            addr,
            authority: url.authority(),
            path_and_query: url.path_and_query.clone(),
            uri,
            scheme: match url.https {
                true => http::uri::Scheme::HTTPS,
                false => http::uri::Scheme::HTTP,
            },
            uri_authority,
            weight: config.weight,
            forward_authorization: config.forward_authorization,
            headers: config.headers.clone(),
            client,
            down_until: AtomicU64::new(0),
        })
    }

    /// The absolute URI of `target` (a path and query) on this upstream, as the HTTP client
    /// takes it.
    pub fn absolute_uri(&self, target: &http::Uri) -> http::Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.uri_authority.clone());
        parts.path_and_query = target.path_and_query().cloned();
        http::Uri::from_parts(parts).unwrap_or_else(|_| target.clone())
    }

    /// [`Self::target`] as a URI; without a downstream query, the one parsed at start-up.
    pub fn target_uri(
        &self,
        downstream_query: Option<&str>,
    ) -> Result<http::Uri, http::uri::InvalidUri> {
        match downstream_query {
            Some(q) if !q.is_empty() => self.target(Some(q)).parse(),
            _ => Ok(self.uri.clone()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{UpstreamConfig, UpstreamTarget, UpstreamUrl};

    fn set(weights: &[u32], strategy: LoadBalancing) -> UpstreamSet {
        let config = Config {
            upstreams: weights
                .iter()
                .enumerate()
                .map(|(i, w)| UpstreamConfig {
                    name: format!("u{i}"),
                    target: UpstreamTarget::Url(
                        UpstreamUrl::parse(&format!("http://127.0.0.1:{}/mcp", 1000 + i)).unwrap(),
                    ),
                    weight: *w,
                    forward_authorization: false,
                    headers: Vec::new(),
                    tls: Default::default(),
                    http2: Default::default(),
                })
                .collect(),
            load_balancing: strategy,
            ..Config::default()
        };
        UpstreamSet::resolve(&config).unwrap()
    }

    #[test]
    fn smooth_weighted_wheel() {
        assert_eq!(smooth_wheel(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_wheel(&[1, 1]), vec![0, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_by_weight_and_avoids_down_upstreams() {
        let s = set(&[2, 1], LoadBalancing::RoundRobin);
        let picks: Vec<_> = (0..6).map(|_| s.pick(&[], |_| 0).unwrap()).collect();
        assert_eq!(picks.iter().filter(|i| **i == 0).count(), 4);
        s.mark_down(0);
        assert!((0..5).all(|_| s.pick(&[], |_| 0) == Some(1)));
        assert_eq!(
            s.pick(&[1], |_| 0),
            Some(0),
            "a down upstream still beats none"
        );
        assert_eq!(s.pick(&[0, 1], |_| 0), None);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(s.is_up(0), "down_for passed");
    }

    #[tokio::test]
    async fn least_sessions_prefers_the_emptiest() {
        let s = set(&[1, 1, 1], LoadBalancing::LeastSessions);
        let counts = [5, 2, 2];
        assert_eq!(s.pick(&[], |i| counts[i]), Some(1));
        assert_eq!(s.pick(&[1], |i| counts[i]), Some(2));
        s.mark_down(1);
        assert_eq!(s.pick(&[], |i| counts[i]), Some(2));
    }
}
