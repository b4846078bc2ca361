//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process runs) and
//! `/readyz` (upstreams resolved and not shutting down). Kept off the MCP listener so metrics
//! are never exposed to MCP clients. With `admin.bearer_token`, `/metrics` needs
//! `Authorization: Bearer <token>` (metrics name upstreams, rules and tools); the probes stay
//! open, since orchestrators call them without credentials and they reveal nothing.
//! `POST /cache/purge` drops cached results (all, or `?upstream=NAME`, `?method=METHOD`, or
//! both); it changes state, so with a token it needs the token too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::cache::{Cache, Purge};
use crate::config::BearerToken;
use crate::proxy::reverse::Metrics;

/// Serves the admin endpoints.
#[derive(Debug)]
pub struct AdminApp {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    /// Required for `/metrics` when set.
    token: Option<BearerToken>,
    /// The result cache `/cache/purge` drops entries of (`None`: disabled).
    cache: Option<Arc<Cache>>,
}

impl AdminApp {
    pub fn new(metrics: Arc<Metrics>, ready: Arc<AtomicBool>, token: Option<BearerToken>) -> Self {
        Self {
            metrics,
            ready,
            token,
            cache: None,
        }
    }

    pub fn with_cache(mut self, cache: Option<Arc<Cache>>) -> Self {
        self.cache = cache;
        self
    }

    /// `POST /cache/purge[?upstream=NAME][&method=METHOD]`: how many entries went, as JSON.
    fn purge(&self, method: &http::Method, query: Option<&str>) -> (StatusCode, Vec<u8>) {
        if method != http::Method::POST {
            return (StatusCode::METHOD_NOT_ALLOWED, b"use POST\n".to_vec());
        }
        let Some(cache) = &self.cache else {
            return (StatusCode::NOT_FOUND, b"the cache is disabled\n".to_vec());
        };
        let mut purge = Purge::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match name {
                "upstream" => purge.upstream = Some(value),
                "method" => purge.method = Some(value),
                _ => {
                    let msg = format!("unknown parameter {name:?} (use upstream, method)\n");
                    return (StatusCode::BAD_REQUEST, msg.into_bytes());
                }
            }
        }
        let purged = cache.store.purge(&purge);
        self.metrics.cache_bytes.set(cache.store.bytes() as i64);
        tracing::info!(purged, upstream = ?purge.upstream, method = ?purge.method, "cache purged");
        (
            StatusCode::OK,
            format!("{{\"purged\":{purged}}}\n").into_bytes(),
        )
    }

    /// Is the request allowed to read `/metrics`? With a token: exactly one `Authorization`
    /// header, carrying it.
    fn may_read_metrics(&self, headers: &http::HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => token.admits(value.as_bytes()),
            _ => false,
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let (status, content_type, body) = match req.uri.path() {
            "/metrics" if !self.may_read_metrics(&req.headers) => (
                StatusCode::UNAUTHORIZED,
                "text/plain",
                b"unauthorized\n".to_vec(),
            ),
            "/metrics" => (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            ),
            "/cache/purge" if !self.may_read_metrics(&req.headers) => (
                StatusCode::UNAUTHORIZED,
                "text/plain",
                b"unauthorized\n".to_vec(),
            ),
            "/cache/purge" => {
                let (status, body) = self.purge(&req.method, req.uri.query());
                let ct = if status == StatusCode::OK {
                    "application/json"
                } else {
                    "text/plain"
                };
                (status, ct, body)
            }
            "/healthz" => (StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => {
                (StatusCode::OK, "text/plain", b"ready\n".to_vec())
            }
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                b"shutting down\n".to_vec(),
            ),
            _ => (StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        };
        let len = body.len();
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        headers.insert(http::header::CONTENT_LENGTH, len.into());
        if status == StatusCode::UNAUTHORIZED {
            let challenge = http::HeaderValue::from_static(r#"Bearer realm="shadowcat-admin""#);
            headers.insert(http::header::WWW_AUTHENTICATE, challenge);
        }
        resp
    }
}

/// `%XX` escapes (a method name carries `/`, which a client may escape) and `+` as space.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
