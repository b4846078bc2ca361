//! The reverse proxy: a Pingora `ProxyHttp` for MCP Streamable HTTP.
//!
//! [`McpProxy`] holds the shared state (sessions, rules, upstreams, metrics); `phases.rs` holds
//! its `impl ProxyHttp`, each phase a few lines that call the file of its concern, and
//! per-request state lives in [`RequestCtx`]. `README.md` beside this file follows a JSON
//! request and an SSE stream through the phases, file by file.

mod admission;
mod authn;
pub mod body_read;
mod cache;
mod cache_batch;
mod cache_taps;
mod ctx;
mod detached;
pub mod drain;
mod edge_tls;
pub mod error_classes;
mod exchange;
mod head_clock;
mod hop_by_hop;
mod intercept_state;
mod interceptor;
pub mod metrics;
mod phases;
mod principal;
mod request_body;
pub mod request_checks;
mod request_log;
mod respond;
pub mod resume;
pub mod session;
pub mod session_ended;
mod session_keys;
mod session_plan;
pub mod session_quota;
mod session_routing;
pub mod sse;
mod sse_relay;
mod store_checks;
pub mod streams;
mod tape_local;
mod tape_taps;
mod throttle;
mod traced;
pub mod upstream;
mod upstream_choice;
mod upstream_request;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

pub use ctx::RequestCtx;
pub use metrics::Metrics;
use session::SessionTable;
use throttle::Throttle;
use upstream::UpstreamSet;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::interceptor::Interceptors;

/// The MCP reverse proxy service.
#[derive(Debug)]
pub struct McpProxy {
    config: Arc<Config>,
    upstreams: UpstreamSet,
    sessions: Arc<SessionTable>,
    /// Seals session ids (`sessions.keys`); `None`: random ids this process alone knows.
    sealer: Option<Arc<crate::sealed_id::Sealer>>,
    /// Sealed ids that ended here, refused until they expire.
    ended: Arc<session_ended::EndedIds>,
    /// The shared store (`store:`): ended sessions and rate-limit buckets across replicas.
    store: Arc<crate::store::Store>,
    throttle: Throttle,
    auth: Option<Arc<Authenticator>>,
    interceptors: Arc<Interceptors>,
    /// The MCP result cache; `None` with `cache.enabled: false`.
    cache: Option<Arc<crate::cache::Cache>>,
    /// How session SSE streams are held (replay buffers).
    streams: streams::StreamConfig,
    metrics: Arc<Metrics>,
    in_flight: Arc<AtomicUsize>,
    /// Set when shutdown begins: session `GET` streams end with `retry:` (`drain.rs`).
    drain: Arc<drain::Drain>,
    /// Verified client certificates by connection (`None`: no listener asks for them).
    peers: Option<Arc<crate::tls::PeerIdentities>>,
    /// Records tapes (`recording:`); `None`: nothing is recorded, at no cost.
    recorder: Option<Arc<crate::tape::Recorder>>,

    /// OpenTelemetry traces; `None` without `telemetry:` (no span, headers untouched).
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

// === impl McpProxy ===

impl McpProxy {
    pub fn new(
        config: Arc<Config>,
        upstreams: UpstreamSet,
        metrics: Arc<Metrics>,
        auth: Option<Arc<Authenticator>>,
        interceptors: Arc<Interceptors>,
    ) -> Self {
        let caps = &config.sessions;
        let sessions = Arc::new(
            SessionTable::new(caps.max, upstreams.len())
                .with_caps(caps.max_per_principal, caps.max_per_ip),
        );
        let store = crate::store::Store::new(&config.store, metrics.store_errors.clone());
        Self {
            store,
            sealer: config.sessions.sealer().map(Arc::new),
            throttle: Throttle::new(&config.rate_limits),
            auth,
            interceptors,
            cache: config.cache.as_ref().map(crate::cache::Cache::shared),
            streams: streams::StreamConfig::from_config(&config, metrics.replay_total.clone()),
            config,
            upstreams,
            sessions,
            ended: Arc::default(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            drain: Arc::default(),
            metrics,
            peers: None,
            recorder: None,

            telemetry: None,
        }
    }

    /// Traces requests (`telemetry:`).
    pub fn with_telemetry(mut self, telemetry: Option<Arc<crate::telemetry::Telemetry>>) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Where the accept layer records verified client certificates (mTLS listeners).
    pub fn with_peer_identities(mut self, peers: Option<Arc<crate::tls::PeerIdentities>>) -> Self {
        self.peers = peers;
        self
    }

    /// Records tapes through `recorder` (`recording:`).
    pub fn with_recorder(mut self, recorder: Option<Arc<crate::tape::Recorder>>) -> Self {
        self.recorder = recorder;
        self
    }

    /// The result cache (the admin listener purges it).
    pub fn cache(&self) -> Option<Arc<crate::cache::Cache>> {
        self.cache.clone()
    }

    /// Requests in flight right now (shutdown waits for this to reach zero).
    pub fn in_flight(&self) -> Arc<AtomicUsize> {
        self.in_flight.clone()
    }

    /// The drain signal the shutdown watch sets (`drain.rs`).
    pub fn drain(&self) -> Arc<drain::Drain> {
        self.drain.clone()
    }

    fn upstream_name(&self, ctx: &RequestCtx) -> &str {
        ctx.upstream
            .and_then(|i| self.upstreams.get(i))
            .map_or("none", |u| u.name.as_str())
    }

    /// The shared store (`/readyz` reports it; its monitor pings it).
    pub fn store(&self) -> Arc<crate::store::Store> {
        self.store.clone()
    }

    /// The session table (the sweeper expires idle sessions in it).
    pub fn sessions(&self) -> Arc<SessionTable> {
        self.sessions.clone()
    }
}
