//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process runs) and
//! `/readyz` (upstreams resolved and not shutting down). Kept off the MCP listener so metrics
//! are never exposed to MCP clients. With `admin.bearer_token`, `/metrics` needs
//! `Authorization: Bearer <token>` (metrics name upstreams, rules and tools); the probes stay
//! open, since orchestrators call them without credentials and they reveal nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::config::BearerToken;
use crate::proxy::reverse::Metrics;

/// Serves the admin endpoints.
#[derive(Debug)]
pub struct AdminApp {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    /// Required for `/metrics` when set.
    token: Option<BearerToken>,
}

impl AdminApp {
    pub fn new(metrics: Arc<Metrics>, ready: Arc<AtomicBool>, token: Option<BearerToken>) -> Self {
        Self {
            metrics,
            ready,
            token,
        }
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
