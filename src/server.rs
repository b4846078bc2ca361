//! Builds the Pingora server from a validated [`Config`] and runs it.
//!
//! Everything that can fail does so here, before any listener is live: addresses in use (Pingora
//! would retry 30 s and then lose its listener silently), unresolvable upstream names (Pingora
//! would panic per request), bad metric registrations.

use crate::telemetry::Telemetry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::ShutdownWatch;
use pingora::server::{RunArgs, Server, ShutdownSignalWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::auth::Authenticator;
use crate::config::{Config, OnStoreError};
use crate::interceptor::Interceptors;
use crate::proxy::reverse::drain::Drain;
use crate::proxy::reverse::session::SessionTable;
use crate::proxy::reverse::upstream::UpstreamSet;
use crate::proxy::reverse::Metrics;
use crate::proxy::McpProxy;
use crate::tls::PeerIdentities;
use crate::upstream::stdio::{self, Bridge, ProcessGroups, StdioMetrics};
use reserve::reserve_all;
use signals::DrainOnSignal;
use tls::TlsEdge;
use watch::{Reload, RulesReload, Watcher};

mod accept;
mod reserve;
mod signals;
mod store_monitor;
pub mod tls;
pub mod upgrade;
mod watch;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{what} address {addr} is already in use")]
    AddrInUse {
        what: &'static str,
        addr: SocketAddr,
    },
    #[error("{what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Upstream(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("auth: {0}")]
    Auth(String),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::LoadError),
    #[error("recording: {0}")]
    Recording(String),
    #[error("--upgrade: {0}")]
    Upgrade(String),
    #[error("{0}")]
    Telemetry(String),
}

/// A built, not yet running, proxy.
pub struct Shadowcat {
    server: Server,
    /// The first MCP listener's address (the real port when the config said 0).
    pub listen: SocketAddr,
    /// Every MCP listener's address, in config order.
    pub listeners: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    ready: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    /// Set at shutdown: session GET streams end with `retry:`.
    drain: Arc<Drain>,
    grace: Duration,
    /// Every stdio child's process group, ended before the process exits.
    children: ProcessGroups,
}

impl std::fmt::Debug for Shadowcat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadowcat")
            .field("listen", &self.listen)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// Raises the open-files limit and lowers the connection and request limits to what it holds
/// (see `fd_budget`), saying so: past it the proxy would fail at random instead of answering 503.
fn fit_open_files(limits: &mut crate::config::Limits, upstreams: usize) {
    let Some(nofile) = crate::fd_budget::raise_nofile() else {
        return;
    };
    let fit = crate::fd_budget::requests_for(nofile, upstreams);
    for (key, value) in [
        ("limits.max_connections", &mut limits.max_connections),
        (
            "limits.max_concurrent_requests",
            &mut limits.max_concurrent_requests,
        ),
    ] {
        if *value > fit {
            tracing::warn!(
                open_files = nofile,
                configured = *value,
                now = fit,
                "{key} lowered to what the open-files limit holds (two per request); raise \
                 `ulimit -n` to allow more"
            );
            *value = fit;
        }
    }
}

/// Builds the server: checks the addresses, resolves upstreams, wires the services.
pub fn build(config: Config) -> Result<Shadowcat, StartError> {
    let mut config = config;
    match config.shutdown.upgrade {
        // The running process holds the addresses: their sockets come from it (bootstrap).
        true => upgrade::check_fixed_ports(&config)?,
        false => reserve_all(&mut config)?,
    }
    let stdio = StdioBridges::bind(&mut config)?;
    let upstreams = UpstreamSet::resolve(&config).map_err(StartError::Upstream)?;
    let exposed = config.listeners.iter().find(|l| !l.addr.ip().is_loopback());
    if let (Some(exposed), true) = (
        exposed,
        config.security == crate::config::Security::loopback(),
    ) {
        tracing::warn!(
            listen = %exposed.addr,
            "listening beyond loopback, but security.allowed_hosts/allowed_origins still allow only \
             loopback names: clients using other names get 403 until you list them"
        );
    }
    for warning in config.warnings() {
        tracing::warn!(%warning, "configuration is valid but probably not meant");
    }
    fit_open_files(&mut config.limits, config.upstreams.len());
    let mut metrics = Metrics::new()?;
    if let Some(stdio) = &stdio.metrics {
        for family in stdio.collectors() {
            metrics.register(family)?;
        }
    }
    let metrics = Arc::new(metrics);
    let ready = Arc::new(AtomicBool::new(true));
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));

    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(config.shutdown.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        // Pingora's "fast" timeouts run on a timer thread that ticks every millisecond while
        // any is armed, which is always under load (each request arms a read timeout). Every
        // timeout of a second or more goes to tokio's timer wheel instead. At a steady 305
        // req/s, perf's on-CPU samples per second fell from 766 to 540 and the timer thread's
        // share from 7.2% to 3.8% (one run each; loadtest/results/2026-12-01.md).
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        upgrade_sock: config.shutdown.upgrade_sock.display().to_string(),
        upgrade_sock_connect_accept_max_retries: Some(upgrade::TRANSFER_RETRIES),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade: config.shutdown.upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    // With `--upgrade`, this waits for the old process's sockets (it sends them on SIGQUIT).
    server.bootstrap();

    let telemetry = config
        .telemetry
        .as_ref()
        .map(|t| Telemetry::start(t, metrics.telemetry_dropped.clone()))
        .transpose()
        .map_err(StartError::Telemetry)?;
    let auth = config
        .auth
        .clone()
        .map(Authenticator::new)
        .transpose()
        .map_err(StartError::Auth)?
        .map(Arc::new);
    let config = Arc::new(config);
    let interceptors = Arc::new(Interceptors::new(
        config.interceptors.rules.clone(),
        config.interceptors.rules_file.clone(),
    ));
    let tls = config
        .listeners
        .iter()
        .filter_map(|l| Some((l.addr, l.tls.clone()?)))
        .map(|(addr, settings)| TlsEdge::new(addr, settings, &metrics).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    // Client identities are recorded only when some listener asks for certificates.
    let peers = config
        .listeners
        .iter()
        .any(|l| l.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some()))
        .then(|| Arc::new(PeerIdentities::default()));
    let recorder = config
        .recording
        .clone()
        .map(|settings| {
            let dir = settings.dir.display().to_string();
            crate::tape::Recorder::start(settings, metrics.tape_dropped.clone())
                .map_err(|e| StartError::Recording(format!("{dir}: {e}")))
        })
        .transpose()?
        .map(Arc::new);
    let proxy = McpProxy::new(
        config.clone(),
        upstreams,
        metrics.clone(),
        auth.clone(),
        interceptors.clone(),
    )
    .with_peer_identities(peers.clone())
    .with_recorder(recorder)
    .with_telemetry(telemetry);
    let in_flight = proxy.in_flight();
    let drain = proxy.drain();
    let cache = proxy.cache();
    let store = proxy.store();
    let sweeper = Sweeper {
        sessions: proxy.sessions(),
        idle: config.sessions.idle_timeout,
        metrics: metrics.clone(),
    };
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    // HTTP/2 heads are framed by the h2 layer, not timed by the accept layer's head clock:
    // Pingora closes an h2 connection with no stream in flight after this long, so a client
    // trickling a HEADERS frame (or sending nothing after its preface) is bounded the same way.
    options.h2_idle_timeout = Some(config.limits.header_read_timeout);
    let mut http = pingora::proxy::http_proxy(&server.configuration, proxy);
    http.server_options = Some(options);
    // The listener hands connections to the accept layer, which hands them to Pingora's proxy.
    let edge = accept::EdgeApp::new(http, &config.limits, true, &metrics, tls.clone(), peers);
    let mut service = Service::new("shadowcat".to_owned(), edge);
    // Every listener hands plain TCP to the accept layer, which terminates TLS itself
    // (`server::tls`). Pingora reads each downstream connection through a 64 KiB buffer by
    // default; an idle SSE stream then costs ~65 KB (measured). MCP requests are small, so a
    // smaller buffer costs at most a few more reads on large bodies.
    for l in &config.listeners {
        let listener = ListenerConfig::tcp(l.addr.to_string())
            .l4_buffer(L4BufferSettings::new(config.limits.read_buffer, 1460));
        service.add_listener(listener);
    }
    server.add_service(service);
    server.add_service(background_service("session sweeper", sweeper));
    if store.is_shared() {
        let monitor = store_monitor::StoreMonitor(store.clone());
        server.add_service(background_service("store monitor", monitor));
    }
    if let Some(auth) = auth {
        server.add_service(background_service("jwks refresher", JwksRefresher(auth)));
    }
    for bridge in stdio.bridges {
        let service = StdioBridgeService(std::sync::Mutex::new(Some(bridge)));
        server.add_service(background_service("stdio bridge", service));
    }
    let mut reloads: Vec<Box<dyn Reload>> = Vec::new();
    if interceptors.file().is_some() {
        reloads.push(Box::new(RulesReload {
            interceptors,
            watch: config.interceptors.watch,
            metrics: metrics.clone(),
        }));
    }
    reloads.extend(tls.into_iter().map(|t| Box::new(t) as Box<dyn Reload>));
    if !reloads.is_empty() {
        server.add_service(background_service("reload watcher", Watcher(reloads)));
    }

    if let Some(admin) = config.admin {
        let mut svc = Service::new(
            "shadowcat admin".to_owned(),
            HttpServer::new_app(
                AdminApp::new(metrics, ready.clone(), config.admin_bearer_token.clone())
                    .with_cache(cache)
                    .with_store(store, config.store.on_error == OnStoreError::Deny),
            ),
        );
        svc.threads = Some(1);
        svc.add_tcp(&admin.to_string());
        server.add_service(svc);
    }

    Ok(Shadowcat {
        server,
        listen: config.listen(),
        listeners: config.listeners.iter().map(|l| l.addr).collect(),
        admin: config.admin,
        ready,
        in_flight,
        drain,
        grace: config.shutdown.grace_period,
        children: stdio.groups,
    })
}

// === impl Shadowcat ===

impl Shadowcat {
    /// Runs until `shutdown` fires (tests pass their own watch).
    pub fn run(self, shutdown: Box<dyn ShutdownSignalWatch>) {
        self.server.run(RunArgs {
            shutdown_signal: shutdown,
        });
    }

    /// Runs until SIGTERM or SIGINT, then drains: listeners close, `/readyz` turns 503, session
    /// GET streams end with `retry:`, and the process exits as soon as no request is in
    /// flight, or after `shutdown.grace_period`. SIGQUIT does the same once the listening
    /// sockets went to a new process (`--upgrade`) and Pingora's 5 s overlap has passed.
    pub fn run_until_signal(self) {
        let watch = DrainOnSignal {
            ready: self.ready.clone(),
            in_flight: self.in_flight.clone(),
            drain: self.drain.clone(),
            grace: self.grace,
            children: self.children.clone(),
        };
        self.run(Box::new(watch));
    }
}

/// The stdio upstreams' bridges, bound before the upstreams are resolved: each stdio
/// upstream's target gets its bridge's loopback URL here.
struct StdioBridges {
    bridges: Vec<Bridge>,
    metrics: Option<StdioMetrics>,
    groups: ProcessGroups,
}

impl StdioBridges {
    fn bind(config: &mut Config) -> Result<Self, StartError> {
        let groups = ProcessGroups::default();
        if config.stdio.is_empty() {
            return Ok(Self {
                bridges: Vec::new(),
                metrics: None,
                groups,
            });
        }
        let metrics = StdioMetrics::new(config.stdio.iter().map(|s| s.name.as_str()))?;
        let mut bridges = Vec::with_capacity(config.stdio.len());
        for upstream in config.stdio.clone() {
            let settings = stdio::Settings::from_config(config, &upstream);
            let fail = |e: String| {
                StartError::Upstream(format!("upstream {:?}: stdio bridge: {e}", upstream.name))
            };
            let bridge = Bridge::bind(settings, metrics.clone(), groups.clone())
                .map_err(|e| fail(e.to_string()))?;
            let url = crate::config::UpstreamUrl::parse(&bridge.url()).map_err(fail)?;
            if let Some(u) = config
                .upstreams
                .iter_mut()
                .find(|u| u.name == upstream.name)
            {
                u.target = crate::config::UpstreamTarget::Stdio { bridge: Some(url) };
            }
            bridges.push(bridge);
        }
        Ok(Self {
            bridges,
            metrics: Some(metrics),
            groups,
        })
    }
}

/// Runs one bridge on Pingora's runtime. Its children are not ended when draining starts
/// (requests in flight may still need them): they end when the process exits
/// (`DrainOnSignal`), or when the runtime drops the bridge's tasks (fast shutdown).
struct StdioBridgeService(std::sync::Mutex<Option<Bridge>>);

#[async_trait]
impl BackgroundService for StdioBridgeService {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let bridge = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(bridge) = bridge {
            bridge.serve(std::future::pending()).await;
        }
    }
}

/// Expires idle sessions in the background (lookups also refuse expired ones on the spot).
struct Sweeper {
    sessions: Arc<SessionTable>,
    idle: Duration,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // A tenth of the idle timeout, within [100 ms, 30 s]: expiry is never late by more
        // than a tenth, and a large table is not scanned more than needed.
        let every = (self.idle / 10).clamp(Duration::from_millis(100), Duration::from_secs(30));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let expired = self.sessions.expire_idle(self.idle);
                    for _ in &expired {
                        self.metrics.session_event("expired", self.sessions.len());
                    }
                    if !expired.is_empty() {
                        tracing::debug!(expired = expired.len(), active = self.sessions.len(), "idle sessions expired");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Loads the JWKS at start and then every `auth.refresh`; a failure keeps the old keys.
struct JwksRefresher(Arc<Authenticator>);

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.0.refresh_every());
        loop {
            tokio::select! {
                _ = tick.tick() => match self.0.refresh().await {
                    Ok(n) => tracing::debug!(keys = n, "JWKS loaded"),
                    Err(e) => tracing::error!(error = %e, "JWKS refresh failed; keeping the previous keys"),
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (a test process aborted once with "IO Safety violation: owned file descriptor
    /// already closed"): port 0 for the listener and the admin address were reserved one
    /// after the other, each released at once, so both could get the same port; Pingora then
    /// opened the admin listener on the proxy listener's descriptor.
    #[test]
    fn regression_port_0_addresses_never_share_a_port() {
        for _ in 0..200 {
            let mut config = Config::default();
            config.listeners = vec![
                crate::config::Listener::plain(SocketAddr::from(([127, 0, 0, 1], 0))),
                crate::config::Listener::plain(SocketAddr::from(([127, 0, 0, 1], 0))),
            ];
            config.admin = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            reserve_all(&mut config).unwrap();
            let mut ports: Vec<u16> = config.listeners.iter().map(|l| l.addr.port()).collect();
            ports.push(config.admin.unwrap().port());
            assert!(ports.iter().all(|p| *p != 0));
            ports.sort_unstable();
            ports.dedup();
            assert_eq!(ports.len(), 3, "distinct ports");
        }
    }
}
