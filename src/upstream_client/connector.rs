//! TCP, then TLS for `https://`, under one connect deadline.
//!
//! hyper-util's `HttpConnector` bounds the TCP connect only; a server that accepts and then
//! never finishes the handshake would hold a request until the caller's response deadline.
//! [`Connector`] puts [`ClientSettings::connect_timeout`](super::ClientSettings) around both.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// The connect deadline passed: TCP connect and TLS handshake together took too long.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:?}")]
pub(super) struct ConnectTimeout(pub Duration);

/// A URI whose scheme this upstream's client does not speak.
#[derive(Debug, thiserror::Error)]
#[error("{0} URI sent to a client for {1} upstreams")]
pub(super) struct WrongScheme(String, &'static str);

#[derive(Clone)]
pub(super) enum Connector {
    Plain {
        http: HttpConnector,
        timeout: Duration,
    },
    Tls {
        https: HttpsConnector<HttpConnector>,
        timeout: Duration,
    },
}

impl Connector {
    /// `tls`: the client config and the name to verify, for an `https://` upstream.
    pub(super) fn new(
        tls: Option<(rustls::ClientConfig, ServerName<'static>)>,
        timeout: Duration,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        // The scheme is checked here and by `HttpsConnector`; let it pass `https` URIs.
        http.enforce_http(false);
        match tls {
            None => Self::Plain { http, timeout },
            Some((config, name)) => Self::Tls {
                https: HttpsConnector::new(
                    http,
                    config,
                    true,
                    Arc::new(FixedServerNameResolver::new(name)),
                ),
                timeout,
            },
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Plain { http, .. } => http.poll_ready(cx).map_err(Into::into),
            Self::Tls { https, .. } => https.poll_ready(cx),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let scheme = dst.scheme_str().unwrap_or("relative").to_owned();
        match self {
            Self::Plain { http, timeout } => {
                if scheme != "http" {
                    return Box::pin(async move { Err(WrongScheme(scheme, "http://").into()) });
                }
                let connecting = http.call(dst);
                let timeout = *timeout;
                Box::pin(async move {
                    match tokio::time::timeout(timeout, connecting).await {
                        Ok(tcp) => Ok(MaybeHttpsStream::Http(tcp?)),
                        Err(_) => Err(ConnectTimeout(timeout).into()),
                    }
                })
            }
            Self::Tls { https, timeout } => {
                if scheme != "https" {
                    return Box::pin(async move { Err(WrongScheme(scheme, "https://").into()) });
                }
                let connecting = https.call(dst);
                let timeout = *timeout;
                Box::pin(async move {
                    match tokio::time::timeout(timeout, connecting).await {
                        Ok(stream) => stream,
                        Err(_) => Err(ConnectTimeout(timeout).into()),
                    }
                })
            }
        }
    }
}
