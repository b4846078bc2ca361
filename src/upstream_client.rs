//! The upstream HTTP client: one engine for every exchange with an upstream MCP server.
//!
//! [`UpstreamClient`] is hyper-util's pooled legacy `Client` over a hyper-rustls connector over
//! hyper-util's `HttpConnector`. One well-kept engine gives us connection pooling, TLS (with
//! ALPN), HTTP/1.1, h2 and h2c, instead of a socket layer of our own. No Pingora here: the
//! proxy's exchange code (`proxy::reverse`) calls [`UpstreamClient::send`] and streams the
//! response body itself.
//!
//! * Deadlines. The client owns only the connect deadline ([`ClientSettings::connect_timeout`],
//!   covering TCP connect *and* the TLS handshake). The response deadline, body idle time and
//!   SSE silence are the caller's, with tokio timers around `send` and the body reads: dropping
//!   the future or the body cancels the exchange (h1: the connection is closed, not pooled;
//!   h2: the stream is reset).
//! * Retries. None of our own. hyper-util retries a request only when a *pooled* connection
//!   turned out closed before any of the request was written (`retry_canceled_requests`, on by
//!   default): that request never reached the upstream, so resending it is safe, and it hides
//!   the race between the upstream closing an idle keep-alive connection and our reuse of it.
//!   A fresh connection that fails is never retried. Whether to try *another* upstream is the
//!   caller's call, from [`UpstreamError::is_connect`].
//! * Pool. Idle connections are dropped after [`ClientSettings::pool_idle`] (4 s by default:
//!   below Node's 5 s keep-alive, the commonest MCP server runtime, so we close first rather
//!   than race the server's close), at most [`ClientSettings::pool_max_idle`] per host.
//! * `Host`. On HTTP/1 hyper-util adds `Host` from the URI only when the request has none. On
//!   HTTP/2 it adds nothing: `:authority` comes from the URI and a `Host` header the caller set
//!   is sent as a plain header next to it (h2 does not strip it), so keep the two equal (the
//!   URI's authority is the upstream's `host:port`).
//! * h2 keep-alive. A PING every 30 s while streams are open (not when idle), 10 s to answer:
//!   it finds a dead connection under a quiet SSE stream without tripping servers' ping-flood
//!   limits (those count pings on idle connections).
//!
//! Files: `connector` (TCP + TLS with one deadline), `tls_config` (rustls client config: roots,
//! client certificate, skip-verify), `error` (what went wrong, as a metric label and a message).

mod connector;
mod error;
#[cfg(test)]
mod tests;
mod tls_config;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use crate::config::Http2Mode;
use crate::config::{UpstreamConfig, UpstreamTls, UpstreamUrl};
pub use error::UpstreamError;

/// The error a request body may fail with: any boxed error (an `io::Error` boxes too). It
/// surfaces from [`UpstreamClient::send`] as kind `other`, with this error in the source chain.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request body: full bytes, or a stream the caller adapts (e.g. `StreamBody` + `boxed`).
pub type RequestBody = BoxBody<Bytes, BodyError>;

/// A body of exactly these bytes.
pub fn full_body(b: Bytes) -> RequestBody {
    Full::new(b).map_err(|never| match never {}).boxed()
}

/// No body.
pub fn empty_body() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Idle time after which a pooled connection is closed: below Node's 5 s keep-alive.
pub const DEFAULT_POOL_IDLE: Duration = Duration::from_secs(4);
/// Idle connections kept per upstream.
pub const DEFAULT_POOL_MAX_IDLE: usize = 256;
/// h2: PING interval while streams are open, and how long an answer may take.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything one upstream's client is built from.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub scheme_https: bool,
    /// SNI and the name the certificate must be valid for: the URL's host (an IP address is
    /// checked as an IP), or `tls.server_name`. Unused for `http://`.
    pub server_name: String,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    pub http2: Http2Mode,
    pub tls: TlsSettings,
    pub pool_idle: Duration,
    pub pool_max_idle: usize,
}

/// The TLS half of [`ClientSettings`] (ignored for `http://`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Trust only this PEM bundle; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for mTLS upstreams; both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any certificate (handshake signatures are still checked).
    pub insecure_skip_verify: bool,
}

impl ClientSettings {
    /// An upstream's settings for requests to `url` (the upstream's, or its stdio bridge's);
    /// `connect_timeout` is `timeouts.connect`.
    pub fn from_config(
        upstream: &UpstreamConfig,
        url: &UpstreamUrl,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            scheme_https: url.https,
            server_name: upstream
                .tls
                .server_name
                .clone()
                .unwrap_or_else(|| url.host.clone()),
            connect_timeout,
            http2: upstream.http2,
            tls: TlsSettings::from_config(&upstream.tls),
            pool_idle: DEFAULT_POOL_IDLE,
            pool_max_idle: DEFAULT_POOL_MAX_IDLE,
        }
    }
}

impl TlsSettings {
    pub fn from_config(tls: &UpstreamTls) -> Self {
        Self {
            ca_file: tls.ca_file.clone(),
            cert_file: tls.cert_file.clone(),
            key_file: tls.key_file.clone(),
            insecure_skip_verify: tls.insecure_skip_verify,
        }
    }
}

/// One upstream's HTTP client: pooled connections, TLS, HTTP/1.1 and HTTP/2. Cheap to clone
/// (`Arc` inside); clones share the pool.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<connector::Connector, RequestBody>,
    /// A handshake since the last response head had the server ask for a client certificate
    /// (see [`tls_config::AskRecorder`]).
    asked_for_cert: Arc<AtomicBool>,
    server_name: String,
    https: bool,
    http2: Http2Mode,
}

impl UpstreamClient {
    /// Builds the client; reads the CA bundle and client certificate files. An error is a
    /// start-up error naming the problem (bad CA file, key not matching the certificate...).
    pub fn new(settings: &ClientSettings) -> Result<Self, String> {
        let asked_for_cert = Arc::new(AtomicBool::new(false));
        let tls = if settings.scheme_https {
            let mut config = settings.tls.client_config()?;
            config.client_auth_cert_resolver = Arc::new(tls_config::AskRecorder {
                inner: config.client_auth_cert_resolver.clone(),
                asked: asked_for_cert.clone(),
            });
            config.alpn_protocols = match settings.http2 {
                Http2Mode::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                Http2Mode::Always => vec![b"h2".to_vec()],
                Http2Mode::Never => vec![b"http/1.1".to_vec()],
            };
            Some((config, tls_config::server_name(&settings.server_name)?))
        } else {
            None
        };
        let connector = connector::Connector::new(tls, settings.connect_timeout);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle)
            .pool_max_idle_per_host(settings.pool_max_idle)
            .http2_only(settings.http2 == Http2Mode::Always)
            .http2_keep_alive_interval(H2_PING_INTERVAL)
            .http2_keep_alive_timeout(H2_PING_TIMEOUT)
            .http2_keep_alive_while_idle(false);
        Ok(Self {
            inner: Arc::new(Inner {
                client: builder.build(connector),
                asked_for_cert,
                server_name: settings.server_name.clone(),
                https: settings.scheme_https,
                http2: settings.http2,
            }),
        })
    }

    /// Sends a request whose URI is absolute (`scheme://authority/path`). Resolves when the
    /// response head is in. No deadline here but the connect one: the caller owns the response
    /// deadline (a tokio timer around this future; dropping it cancels the exchange).
    pub async fn send(
        &self,
        req: http::Request<RequestBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, UpstreamError> {
        match self.inner.client.request(req).await {
            Ok(resp) => {
                self.inner.asked_for_cert.store(false, Ordering::Relaxed);
                Ok(resp)
            }
            Err(e) => {
                let e = UpstreamError::new(e, &self.inner.server_name);
                // A server that asked for a client certificate and then dropped the connection
                // before any answer refused it. Its alert may be lost: over HTTP/2 the
                // connection's error never reaches a request that was not dispatched yet
                // (`connection was not ready`), so the ask is what tells.
                Err(match self.inner.asked_for_cert.load(Ordering::Relaxed) {
                    true => e.refused_client_cert(),
                    false => e,
                })
            }
        }
    }
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("https", &self.inner.https)
            .field("server_name", &self.inner.server_name)
            .field("http2", &self.inner.http2)
            .finish_non_exhaustive()
    }
}
