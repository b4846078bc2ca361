//! The upstream settings: an HTTP(S) MCP endpoint (`url`, `tls`, `http2`) or a stdio MCP
//! server the proxy runs itself (`command`), as validated from `upstreams[]`.

use std::path::PathBuf;

/// One `upstreams[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub name: String,
    /// Where requests go: an HTTP(S) endpoint, or a stdio server the proxy runs.
    pub target: UpstreamTarget,
    /// Share of new sessions and sessionless requests (round robin), 1 to 1000.
    pub weight: u32,
    /// Forward the client's `Authorization` and `Cookie` to this upstream. Off by default: the
    /// MCP spec forbids token passthrough, and the upstream gets `headers` instead.
    pub forward_authorization: bool,
    /// Headers added to every request to this upstream (its own credentials). Values are marked
    /// sensitive, so they never show in debug output.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `tls:` for an `https://` upstream (all empty for `http://`).
    pub tls: UpstreamTls,
    /// `http2:` which HTTP versions the proxy speaks to this upstream.
    pub http2: Http2Mode,
}

/// What an upstream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// An MCP endpoint over HTTP(S) (`url`).
    Url(UpstreamUrl),
    /// A stdio MCP server the proxy runs (`command`; its settings are in `Config::stdio` under
    /// the same name). `bridge` is the loopback URL of its Streamable HTTP bridge, set by the
    /// server once the bridge is bound (`None` in a config just loaded).
    Stdio { bridge: Option<UpstreamUrl> },
}

// === impl UpstreamConfig ===

impl UpstreamConfig {
    /// The URL requests go to: the endpoint written, or a stdio upstream's bound bridge
    /// (`None` before it is bound).
    pub fn url(&self) -> Option<&UpstreamUrl> {
        match &self.target {
            UpstreamTarget::Url(url) => Some(url),
            UpstreamTarget::Stdio { bridge } => bridge.as_ref(),
        }
    }

    /// How the upstream is named in logs: its URL, or `stdio:<name>`.
    pub fn describe(&self) -> String {
        match &self.target {
            UpstreamTarget::Url(url) => url.original.clone(),
            UpstreamTarget::Stdio { .. } => format!("stdio:{}", self.name),
        }
    }
}

/// `upstreams[].tls`: how the proxy checks an `https://` upstream, and proves itself to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The name sent as SNI and checked against the certificate, instead of the URL's host.
    pub server_name: Option<String>,
    /// Trust only the CAs in this PEM bundle (instead of the system's roots).
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) for upstreams that require mTLS; with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Accept any certificate (handshake signatures are still checked). Only when written out;
    /// the server logs a warning at start.
    pub insecure_skip_verify: bool,
}

/// `upstreams[].http2`: which HTTP versions to speak to an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Http2Mode {
    /// https: offer h2 and http/1.1 by ALPN, the server picks; http://: HTTP/1.1.
    #[default]
    Auto,
    /// https: h2 only by ALPN; http://: h2c with prior knowledge.
    Always,
    /// HTTP/1.1 only.
    Never,
}

/// An upstream MCP endpoint URL (`http[s]://host[:port][/path][?query]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `https://` (TLS to the upstream); `false` for `http://`.
    pub https: bool,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path_and_query: String,
    pub original: String,
}

/// `upstreams[]` with `command:`: an MCP server the proxy runs itself, as child processes
/// speaking newline-delimited JSON-RPC on stdin/stdout, served to the proxy by an in-process
/// Streamable HTTP bridge (see `crate::upstream::stdio`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioUpstream {
    /// The upstream's name (as in `upstreams[].name`).
    pub name: String,
    /// The program: an absolute path, found at validation (on `PATH`, or the path written,
    /// taken from the proxy's working directory).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The children's whole environment besides `PATH` (values with `${VAR}` read).
    pub env: Vec<(String, String)>,
    /// The children's working directory (default: the proxy's).
    pub cwd: Option<PathBuf>,
    pub mode: StdioMode,
    /// Children alive at once; an `initialize` past it gets 503.
    pub max_children: usize,
    /// Children of the shared pool (`mode: shared`, and sessionless 2026-07-28 clients of a
    /// `per_session` upstream), 1 to `max_children`.
    pub pool_size: usize,
    /// Child starts allowed (`None`: no limit); past it, 503 with `Retry-After`.
    pub spawn_rate: Option<crate::ratelimit::Rate>,
}

/// `upstreams[].mode` of a stdio upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StdioMode {
    /// One child per MCP session, started by its `initialize`.
    #[default]
    PerSession,
    /// A pool of `pool_size` children the proxy initializes itself, serving every client,
    /// request ids rewritten.
    Shared,
}

/// `upstreams[].max_children` when not given.
pub const DEFAULT_MAX_CHILDREN: usize = 100;
/// `upstreams[].pool_size` when not given.
pub const DEFAULT_POOL_SIZE: usize = 1;
