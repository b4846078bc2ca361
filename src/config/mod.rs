//! Configuration: YAML (serde, unknown keys rejected) → validated [`Config`], before any port is
//! bound. `check-config` runs exactly this code. Errors are one line naming the field path.
//!
//! * `raw` — the file as written (every key optional);
//! * `validate` — typed values, defaults, cross-field rules, CLI overrides;
//! * `units` — `5s`/`30m` durations and `4MiB` sizes.

mod bearer_token;
mod defaults;
mod listeners;
mod log;
mod raw;
mod replicas;
mod shutdown;
mod telemetry;
mod units;
mod upstream;
mod upstream_url;
mod validate;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::authority::AuthorityPattern;
use crate::glob::Glob;
pub use crate::ratelimit::{Cidr, Rate};

pub use bearer_token::BearerToken;
pub use listeners::{CertPair, ClientAuth, Listener, SniCert, TlsConfig};
pub use log::{LogConfig, LogFormat};
pub use replicas::{OnStoreError, SessionKey, StoreConfig, StoreKind};
pub use shutdown::{Shutdown, DEFAULT_UPGRADE_SOCK};
pub use telemetry::{OtlpConfig, OtlpProtocol, TelemetryConfig, DEFAULT_SERVICE_NAME};
pub use units::{format_duration, parse_duration, parse_size};
pub use upstream::{
    Http2Mode, StdioMode, StdioUpstream, UpstreamConfig, UpstreamTarget, UpstreamTls, UpstreamUrl,
    DEFAULT_MAX_CHILDREN, DEFAULT_POOL_SIZE,
};

/// Where the proxy listens when nothing says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));
/// `security.hsts.max_age` when not given: one year.
pub const DEFAULT_HSTS_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// At least one; `listen:` and `--bind` give one plain listener.
    pub listeners: Vec<Listener>,
    pub admin: Option<SocketAddr>,
    /// `admin.bearer_token`: when set, `/metrics` needs `Authorization: Bearer <token>`.
    pub admin_bearer_token: Option<BearerToken>,
    pub endpoint: String,
    /// Worker threads for the proxy; `None`: one per CPU core.
    pub threads: Option<usize>,
    pub upstreams: Vec<UpstreamConfig>,
    /// Keys the file set that no longer do anything (each a line for `warnings`).
    pub obsolete: Vec<String>,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub sse: SseConfig,
    pub shutdown: Shutdown,
    pub load_balancing: LoadBalancing,
    pub health: Health,
    pub sessions: Sessions,
    pub security: Security,
    pub rate_limits: RateLimits,
    /// OAuth 2.1 resource server; `None` = no authentication at the proxy.
    pub auth: Option<AuthConfig>,
    pub interceptors: InterceptorsConfig,
    /// The MCP result cache; `None` with `cache.enabled: false`.
    pub cache: Option<crate::cache::Settings>,
    /// Recording tapes (`recording:` or `--record DIR`); `None`: nothing is recorded.
    pub recording: Option<crate::tape::Settings>,
    /// The upstreams that are stdio programs (`upstreams[].command`). Each also has an entry
    /// in `upstreams` (same name) with `UpstreamTarget::Stdio`, whose bridge URL the server
    /// sets once it has bound that upstream's bridge (`crate::upstream::stdio`).
    pub stdio: Vec<StdioUpstream>,
    /// `log:` how log lines are written.
    pub log: LogConfig,
    /// `store:` where replicas share state (`memory`: each process alone).
    pub store: StoreConfig,

    /// `telemetry:` OpenTelemetry traces; `None`: no span, nothing exported.
    pub telemetry: Option<TelemetryConfig>,
}

/// Interceptor rules (see `crate::interceptor`), validated with the config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InterceptorsConfig {
    /// The rules in force at start-up (empty: interception costs nothing).
    pub rules: crate::interceptor::RuleSet,
    /// Where they came from; read again on SIGHUP (and on change with `watch`).
    pub rules_file: Option<std::path::PathBuf>,
    /// Reload when the file changes (checked once a second).
    pub watch: bool,
}

/// Bearer-token validation (see `crate::auth`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// This proxy's canonical MCP URL: the required `aud`, and the `resource` of its metadata.
    pub resource: String,
    /// The required `iss`.
    pub issuer: String,
    /// Listed in the protected-resource metadata (default: the issuer).
    pub authorization_servers: Vec<String>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<std::path::PathBuf>,
    pub refresh: Duration,
    /// Accepted signature algorithms; never `none`, never HMAC.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub leeway: Duration,
    pub scopes_supported: Vec<String>,
    /// First match wins: a call to `method` (and `tool`, if set) needs all of `scopes`.
    pub required_scopes: Vec<ScopeRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScopeRule {
    pub method: Glob,
    pub tool: Option<Glob>,
    pub scopes: Vec<String>,
}

/// Token-bucket limits; each scope is off unless configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimits {
    /// Per principal (the `Authorization` a request carries).
    pub per_principal: Option<Rate>,
    /// Per client IP (see `trusted_proxies`).
    pub per_ip: Option<Rate>,
    /// Per session.
    pub per_session: Option<Rate>,
    /// Peers whose `X-Forwarded-For` names the client; anyone else's is ignored.
    pub trusted_proxies: Vec<Cidr>,
}

/// Browser-facing checks against DNS rebinding: which `Origin` and `Host` values are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// A request with an `Origin` matching none gets 403 (see [`AuthorityPattern`]).
    pub allowed_origins: Vec<AuthorityPattern>,
    /// Against `Host` (or the request target's authority). No match: 403.
    pub allowed_hosts: Vec<AuthorityPattern>,
    /// `Strict-Transport-Security` for responses on TLS listeners; `None`: not sent.
    pub hsts: Option<http::HeaderValue>,
}

/// Loopback hosts, with or without a port: the safe default.
const LOOPBACK_HOSTS: [&str; 6] = [
    "localhost",
    "localhost:*",
    "127.0.0.1",
    "127.0.0.1:*",
    "[::1]",
    "[::1]:*",
];

impl Security {
    pub fn loopback() -> Self {
        let origins = LOOPBACK_HOSTS
            .iter()
            .flat_map(|h| [format!("http://{h}"), format!("https://{h}")]);
        Self {
            allowed_origins: origins.map(|o| AuthorityPattern::new(&o)).collect(),
            allowed_hosts: LOOPBACK_HOSTS
                .iter()
                .map(|h| AuthorityPattern::new(h))
                .collect(),
            hsts: None,
        }
    }

    /// Is this `Origin` value (well-formed and) on `allowed_origins`?
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|p| p.matches_origin(origin))
    }

    /// Is this `Host` value or request-target authority (well-formed and) on `allowed_hosts`?
    pub fn host_allowed(&self, host: &str) -> bool {
        self.allowed_hosts.iter().any(|p| p.matches_host(host))
    }
}

/// How new sessions and sessionless requests choose an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancing {
    /// Weighted round robin.
    RoundRobin,
    /// The upstream holding the fewest sessions (ties: the earliest listed).
    LeastSessions,
}

/// Passive health checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// An upstream that fails to connect is avoided by new sessions for this long.
    pub down_for: Duration,
}

/// Proxy-owned sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sessions {
    /// A session unused this long is forgotten (its id then gets 404).
    pub idle_timeout: Duration,
    /// At most this many sessions; past it `initialize` gets 503.
    pub max: usize,
    /// At most this many sessions per principal; past it `initialize` gets 429. At most `max`.
    pub max_per_principal: usize,
    /// At most this many sessions per client network (an IPv4 address, an IPv6 /64) for
    /// clients the proxy does not authenticate (no `auth:`); past it 429. At most `max`.
    pub max_per_ip: usize,
    /// With `keys`: a sealed id older than this gets 404 on every replica.
    pub max_age: Duration,
    /// Keys that seal session ids (the first seals, all open); empty: random ids held in
    /// this process only.
    pub keys: Vec<SessionKey>,
}

/// The default per-client session cap (`sessions.max_per_principal` and `max_per_ip`).
/// An MCP client holds one session per server connection; a busy agent host a few hundred.
/// A thousand leaves them room, and makes filling the default `sessions.max` (100,000) take a
/// hundred clients rather than one.
pub const DEFAULT_SESSIONS_PER_CLIENT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Upstream response deadline: time until the response headers arrive.
    pub request: Duration,
    /// An SSE stream with this much total upstream silence is closed.
    pub idle_stream: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body: u64,
    pub max_sse_event: usize,
    /// Request headers past this count → 431.
    pub max_headers: usize,
    /// Request header bytes (names + values) past this → 431.
    pub max_header_bytes: usize,
    /// Longest wait for the next piece of a request body (slow senders) → 408.
    pub body_read_timeout: Duration,
    /// Total time for a body the proxy reads before any upstream contact (pre-read, or read
    /// whole with policy on); bytes never extend it → 408.
    pub body_total_timeout: Duration,
    /// An idle keep-alive connection is closed after this long.
    pub keepalive_idle: Duration,
    /// Total time for a request head, from accept or from the end of the previous response
    /// (keep-alive); never moved by a byte. Past it the connection closes.
    pub header_read_timeout: Duration,
    /// Requests in flight at once, SSE streams included; past it → 503.
    pub max_concurrent_requests: usize,
    /// Client connections open at once, counted from accept until they close (idle keep-alive
    /// and HTTP/2 included); a new one past it is closed at once.
    pub max_connections: usize,
    /// Requests in flight at once within one session (its SSE streams); past it → 429.
    pub max_streams_per_session: usize,
    /// Read buffer per downstream connection (Pingora's default is 64 KiB, which dominates the
    /// memory of an idle SSE stream).
    pub read_buffer: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseConfig {
    /// `None` when keep-alive comments are off (`keepalive: 0`).
    pub keepalive: Option<Duration>,
    /// Events kept per stream for replay (session streams, MCP up to 2025-11-25); 0 = none.
    pub replay_buffer: usize,
    /// Bytes kept per stream for replay.
    pub replay_bytes: usize,
    /// Bytes kept in every replay buffer together.
    pub replay_total: usize,
    /// How long the proxy keeps reading a stream whose client went away.
    pub detached_grace: Duration,
}

impl Config {
    /// The first listener's address (the only one unless `listeners` lists more).
    pub fn listen(&self) -> SocketAddr {
        self.listeners.first().map_or(DEFAULT_LISTEN, |l| l.addr)
    }
}

// === impl Config ===

impl Config {
    /// Settings that are valid but probably not meant: logged at start-up and printed by
    /// `check-config` (which still succeeds).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = self.obsolete.clone();
        for u in self.upstreams.iter().filter(|u| u.tls.insecure_skip_verify) {
            out.push(format!(
                "upstreams[{:?}].tls.insecure_skip_verify: the upstream's certificate is NOT \
                 verified; anyone on the path can read and change its traffic",
                u.name
            ));
        }
        if let (Some(admin), None) = (self.admin, &self.admin_bearer_token) {
            if !admin.ip().is_loopback() {
                out.push(format!(
                    "admin: {admin} is not a loopback address and admin.bearer_token is not set: \
                     /metrics is open to anyone who can reach it (set admin.bearer_token, or \
                     bind the admin listener to 127.0.0.1)"
                ));
            }
        }
        out
    }
}

/// A config problem, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read file: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    /// The field path (or flag, or file) the error is about.
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Io { path, .. } => path,
            ConfigError::Invalid { field, .. } => field,
        }
    }
}

/// Command-line values that replace config keys; applied before validation, so
/// `reverse --bind X --upstream URL` works with no file at all.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    /// With `tls_key`: the listener from `--bind` (or `listen`) terminates TLS.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// An address, or `off`/`none` to disable the admin listener.
    pub admin: Option<String>,
    /// Replaces the upstream list with one upstream named `default`.
    pub upstream: Option<String>,
    /// Replaces the upstream list with one stdio upstream named `default`: program, args.
    pub upstream_command: Option<Vec<String>>,
    pub threads: Option<usize>,
    /// `text` or `json` (replaces `log.format`).
    pub log_format: Option<String>,
    /// `--record DIR`: records tapes there (replaces `recording.dir`).
    pub record: Option<String>,
    /// `--upgrade`: take the listening sockets of the running process (`shutdown.upgrade`).
    pub upgrade: bool,
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(Some(path), &Overrides::default())
}

/// Parses and validates YAML text.
pub fn from_yaml_str(text: &str) -> Result<Config, ConfigError> {
    from_yaml_str_with(Some(text), &Overrides::default())
}

/// Reads the file (if any), applies the overrides and validates.
pub fn load_with(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let text = path
        .map(|p| {
            std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                path: p.display().to_string(),
                source,
            })
        })
        .transpose()?;
    from_yaml_str_with(text.as_deref(), overrides)
}

/// Parses the text (`None` = an empty document), applies the overrides and validates.
pub fn from_yaml_str_with(
    text: Option<&str>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let raw = match text {
        Some(t) => parse(t)?,
        None => raw::RawConfig::default(),
    };
    validate::validate(raw, overrides)
}

/// The typed pass names the field path. Only when it fails is the text parsed untyped, to tell
/// an empty document (nothing, comments, `---`, `null`: all defaults) and broken YAML (a
/// scanner error, reported as `(yaml)`: the typed pass would blame whatever field it was in)
/// from a wrong value.
fn parse(text: &str) -> Result<raw::RawConfig, ConfigError> {
    let de = serde_yaml::Deserializer::from_str(text);
    let typed_error = match serde_path_to_error::deserialize(de) {
        Ok(raw) => return Ok(raw),
        Err(e) => e,
    };
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(serde_yaml::Value::Null) => return Ok(raw::RawConfig::default()),
        Ok(_) => {}
        Err(e) => {
            let message = one_line(&e.to_string());
            // Scanner errors carry no path; value errors (an integer past u64) lead with one.
            let has_path = message
                .split_once(": ")
                .is_some_and(|(p, _)| !p.is_empty() && !p.contains(char::is_whitespace));
            if !has_path {
                return Err(ConfigError::Invalid {
                    field: "(yaml)".to_owned(),
                    message,
                });
            }
        }
    }
    let path = one_line(&typed_error.path().to_string());
    let field = if path.is_empty() || path == "." {
        "(yaml)".to_owned()
    } else {
        path
    };
    let message = one_line(&typed_error.into_inner().to_string());
    Err(ConfigError::Invalid {
        message: strip_yaml_path(&field, &message).to_owned(),
        field,
    })
}

/// serde_yaml starts its message with its own path (`limits: unknown field ...`); the error
/// already leads with the (longer or equal) field path, so that prefix would only repeat it.
fn strip_yaml_path<'a>(field: &str, message: &'a str) -> &'a str {
    match message.split_once(": ") {
        Some((prefix, rest))
            if field == prefix
                || field
                    .strip_prefix(prefix)
                    .is_some_and(|tail| tail.starts_with(['.', '['])) =>
        {
            rest
        }
        _ => message,
    }
}

/// Errors are one line: control characters (a key may hold CRs) are shown escaped.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod listener_tests;
#[cfg(test)]
mod tests;
