//! Stdio MCP servers behind the edge: a **bridge** per stdio upstream.
//!
//! Most MCP servers are stdio programs: newline-delimited JSON-RPC on stdin and stdout. The
//! proxy runs them itself, and keeps every edge feature (auth, rules, sessions, replay, rate
//! limits, caching, metrics) by not treating them specially at all: each stdio upstream gets
//! an in-process Streamable HTTP server on `127.0.0.1:0` (hyper, HTTP/1.1), and at start-up
//! the upstream's URL becomes that server's `http://127.0.0.1:PORT/mcp`. The proxy then talks
//! to it with the same HTTP client, through the same phases, as to any HTTP upstream.
//!
//! ```text
//! client ── proxy (sessions, rules, replay, ...) ── HTTP ── bridge ── stdin/stdout ── child
//!                                                   loopback        one child per session
//! ```
//!
//! The cost is one loopback HTTP/1.1 hop per request (pooled connections, no TLS); the gain is
//! one code path for every upstream, so nothing can behave differently because a server
//! happens to be a program.
//!
//! What the bridge does with `mode: per_session` (one child per session):
//! * `initialize` without a session starts a child ([`child`]), writes the request, and holds
//!   the answer's head until the child's first message (at most `timeouts.request`: a child
//!   that never answers gives 504 and is stopped). The answer carries the bridge's own
//!   `Mcp-Session-Id` (the proxy maps it to the id it gives the client, as for any upstream).
//!   `upstreams[].max_children` children at most: past it, 503 with `Retry-After`.
//! * A POST holding requests is answered with an SSE stream that carries what belongs to them
//!   ([`session`] routes each message to exactly one stream) and ends after their responses;
//!   one holding only notifications and responses is written to stdin and answered 202.
//! * GET opens the session's stream of server messages that belong to no request (one at a
//!   time: a second gets 409). DELETE ends the child. An unknown or ended session gets 404, so
//!   the proxy forgets its mapping and the client re-initializes, as with an HTTP upstream.
//! * A child ends on DELETE, after `sessions.idle_timeout` without a request, at shutdown, or by
//!   itself; requests still waiting get a JSON-RPC error and every stream ends cleanly.
//!   Ending is SIGTERM to its process group, then SIGKILL after [`KILL_GRACE`] ([`process`]
//!   says what happens when the proxy itself is killed).
//! * Stdout lines are bounded by `limits.max_sse_event` (longer ones are skipped, never held);
//!   lines that are not JSON-RPC are logged and skipped; stderr lines are logged with the
//!   upstream's name, at most 20 a second per child.
//! * Children get only the configured `env` plus `PATH`, never the proxy's environment.
//!
//! The **shared pool** ([`pool`]) serves `mode: shared` sessions and sessionless 2026-07-28
//! requests of any stdio upstream: children the proxy initializes itself, many clients per
//! child, every id rewritten so nothing collides and every message reaches its own client
//! ([`shared`] says how, and what cannot be attributed). Its slots restart after failures
//! with a doubling backoff; `spawn_rate` bounds child starts of either kind.
//!
//! Files: `http` (dispatch), `per_session` and `pooled` (the answers of each kind), `replies`
//! (SSE and error responses), `session` (routing one session's messages), `pool` (slots,
//! choice, restarts), `shared` (one shared child's routing), `clients` (the pool's sessions),
//! `server_requests` (server requests in flight to sessions), `rewrite` (id and token edits),
//! `child` (starting and supervising a child, its pipes), `process` (the command, process
//! groups, signals), `lines` (NDJSON framing and the message peek), `metrics`.

mod child;
mod clients;
mod http;
mod lines;
mod metrics;
mod per_session;
mod pool;
mod pooled;
mod process;
mod replies;
mod rewrite;
mod server_requests;
mod session;
mod shared;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::config::{Config, StdioMode, StdioUpstream};
use crate::ratelimit::Limiter;
pub use metrics::StdioMetrics;
use pool::Pool;
pub use process::{ProcessGroups, KILL_GRACE};
pub use session::ExitReason;
use session::Session;

/// What one bridge needs from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The upstream's name (logs, metric labels).
    pub name: String,
    pub upstream: StdioUpstream,
    /// Longest stdout line and POST body (`limits.max_sse_event`).
    pub max_line: usize,
    /// A session without requests this long is ended (`sessions.idle_timeout`).
    pub idle_timeout: Duration,
    /// Longest wait for the child's answer to `initialize` (`timeouts.request`).
    pub init_timeout: Duration,
}

// === impl Settings ===

impl Settings {
    pub fn from_config(config: &Config, upstream: &StdioUpstream) -> Self {
        Self {
            name: upstream.name.clone(),
            upstream: upstream.clone(),
            max_line: config.limits.max_sse_event,
            idle_timeout: config.sessions.idle_timeout,
            init_timeout: config.timeouts.request,
        }
    }
}

/// State shared by a bridge's connections and its children's tasks.
struct BridgeState {
    settings: Settings,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Children alive (started and not yet reaped), at most `max_children`.
    live: AtomicUsize,
    /// `spawn_rate`: child starts allowed (one bucket for the upstream).
    spawn_rate: Option<Limiter>,
    /// The shared pool (`mode: shared`, and sessionless requests in any mode).
    pool: Pool,
    /// Shutdown has begun: no child starts any more.
    closing: AtomicBool,
    metrics: StdioMetrics,
    groups: ProcessGroups,
}

// === impl BridgeState ===

impl BridgeState {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.table().get(id).cloned()
    }

    fn insert(&self, id: String, session: Arc<Session>) {
        self.table().insert(id, session);
    }

    fn remove(&self, id: &str) {
        self.table().remove(id);
    }

    fn all(&self) -> Vec<Arc<Session>> {
        self.table().values().cloned().collect()
    }
}

/// One stdio upstream's bridge: bound at start-up (so its URL is known before the proxy
/// resolves upstreams), served once the runtime runs.
pub struct Bridge {
    state: Arc<BridgeState>,
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("upstream", &self.state.settings.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

// === impl Bridge ===

impl Bridge {
    /// Binds `127.0.0.1:0`. `groups` records every child, for shutdown.
    pub fn bind(
        settings: Settings,
        metrics: StdioMetrics,
        groups: ProcessGroups,
    ) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(BridgeState {
            spawn_rate: settings.upstream.spawn_rate.map(Limiter::new),
            pool: Pool::new(settings.upstream.pool_size),
            settings,
            sessions: Mutex::default(),
            live: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            metrics,
            groups,
        });
        Ok(Self {
            state,
            listener,
            addr,
        })
    }

    /// The MCP endpoint the proxy uses as this upstream's URL.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, http::PATH)
    }

    /// Serves until `shutdown` completes; then ends every child (SIGTERM, then SIGKILL after
    /// [`KILL_GRACE`]) and returns once they are gone.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let listener = match tokio::net::TcpListener::from_std(self.listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(upstream = %self.state.settings.name, error = %e, "stdio bridge cannot listen");
                return;
            }
        };
        let sweeper = tokio::spawn(sweep_idle(self.state.clone()));
        if self.state.settings.upstream.mode == StdioMode::Shared {
            Pool::warm_all(&self.state);
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve_connection(self.state.clone(), stream));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "stdio bridge: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        sweeper.abort();
        let state = &self.state;
        state.closing.store(true, Ordering::Release);
        for session in state.all() {
            session.stop(ExitReason::Shutdown);
        }
        for child in state.pool.children() {
            child.stop(ExitReason::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + KILL_GRACE + Duration::from_secs(1);
        while state.live.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve_connection(state: Arc<BridgeState>, stream: tokio::net::TcpStream) {
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(http::handle(state, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "stdio bridge: connection ended");
    }
}

/// Ends sessions that had no request for `idle_timeout` (checked every tenth of it).
async fn sweep_idle(state: Arc<BridgeState>) {
    let idle = state.settings.idle_timeout;
    let every = (idle / 10).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(since) = tokio::time::Instant::now().checked_sub(idle) else {
            continue;
        };
        for session in state.all() {
            if session.idle_since(since) {
                state.remove(&session.id);
                session.stop(ExitReason::Idle);
            }
        }
        state.pool.clients.sweep(since);
        // A per_session upstream's pool serves only sessionless clients: an unused child goes
        // (the next request starts one). `mode: shared` keeps its pool running.
        if state.settings.upstream.mode == StdioMode::PerSession {
            for child in state.pool.children() {
                if child.idle_since(since) {
                    child.stop(ExitReason::Idle);
                }
            }
        }
    }
}
