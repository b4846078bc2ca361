//! The bridge's Streamable HTTP side: POST, GET and DELETE on `/mcp`, answered the way an MCP
//! server answers (the proxy in front never knows the difference). This file only dispatches:
//! `per_session` (a child per session), `pooled` (the shared pool: `mode: shared` sessions and
//! sessionless 2026-07-28 requests).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::clients::ClientSession;
use super::lines::{split, Kind, Message};
use super::replies::{plain, rpc_error, BridgeBody, SESSION_HEADER};
use super::session::{ExitReason, Session};
use super::{per_session, pooled, BridgeState};
use crate::config::StdioMode;

/// The path the bridge serves.
pub(super) const PATH: &str = "/mcp";
/// The revisions the bridge serves (`MCP-Protocol-Version`; 2026-07-28 by the shared pool).
const VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// 406 when the client cannot take what the bridge answers with: a POST must accept JSON and
/// SSE, a GET SSE (as the SDKs' servers require).
fn not_acceptable(method: &Method, headers: &http::HeaderMap) -> Option<Response<BridgeBody>> {
    let accept: String = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let (json, sse) = (
        accept.contains("application/json"),
        accept.contains("text/event-stream"),
    );
    let message = match *method {
        Method::POST if !(json && sse) => {
            "Not Acceptable: Client must accept both application/json and text/event-stream"
        }
        Method::GET if !sse => "Not Acceptable: Client must accept text/event-stream",
        _ => return None,
    };
    Some(rpc_error(StatusCode::NOT_ACCEPTABLE, None, -32000, message))
}

/// The session a request names.
enum Named {
    /// `per_session`: its own child.
    Child(Arc<Session>),
    /// `mode: shared`: served by the pool.
    Pooled(Arc<ClientSession>),
}

pub(super) async fn handle(
    state: Arc<BridgeState>,
    req: Request<Incoming>,
) -> Response<BridgeBody> {
    if req.uri().path() != PATH {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let session_id = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let version = req
        .headers()
        .get("mcp-protocol-version")
        .map(|v| v.to_str().unwrap_or_default());
    if let Some(v) = version.filter(|v| !VERSIONS.contains(v)) {
        let message = format!(
            "Bad Request: Unsupported protocol version {v:?} (supported versions: {})",
            VERSIONS.join(", ")
        );
        return rpc_error(StatusCode::BAD_REQUEST, None, -32000, &message);
    }
    let sessionless_era = version == Some("2026-07-28");
    let method = req.method().clone();
    if let Some(refusal) = not_acceptable(&method, req.headers()) {
        return refusal;
    }
    let session = match session_id.as_deref() {
        None => None,
        Some(id) => match (state.get(id), state.pool.clients.get(id)) {
            (Some(session), _) => Some(Named::Child(session)),
            (None, Some(session)) => Some(Named::Pooled(session)),
            (None, None) => {
                return rpc_error(StatusCode::NOT_FOUND, None, -32001, "Session not found")
            }
        },
    };
    match (method, session) {
        (Method::POST, session) => {
            let limit = state.settings.max_line;
            let body = match Limited::new(req.into_body(), limit).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return rpc_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        None,
                        -32600,
                        "body too large",
                    )
                }
            };
            let Some(messages) = split(&body) else {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    None,
                    -32700,
                    "Parse error: not JSON-RPC",
                );
            };
            post(&state, session, sessionless_era, messages).await
        }
        (Method::GET, Some(Named::Child(session))) => per_session::get(&session),
        (Method::GET, Some(Named::Pooled(session))) => pooled::get(&session),
        (Method::DELETE, Some(Named::Child(session))) => {
            state.remove(&session.id);
            session.stop(ExitReason::Deleted);
            plain(StatusCode::OK, "")
        }
        (Method::DELETE, Some(Named::Pooled(session))) => {
            state.pool.clients.remove(&session.id);
            plain(StatusCode::OK, "")
        }
        (Method::GET | Method::DELETE, None) => rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            -32000,
            "Bad Request: Mcp-Session-Id header is required",
        ),
        _ => {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            resp
        }
    }
}

async fn post(
    state: &Arc<BridgeState>,
    session: Option<Named>,
    sessionless_era: bool,
    messages: Vec<(Bytes, Message)>,
) -> Response<BridgeBody> {
    let shared = state.settings.upstream.mode == StdioMode::Shared;
    match session {
        Some(Named::Child(session)) => per_session::post(session, messages).await,
        Some(Named::Pooled(session)) => pooled::post(state, Some(session), messages).await,
        None => match initialize(&messages) {
            Some((line, msg)) if shared => pooled::initialize(state, line, msg).await,
            Some(_) => per_session::initialize(state, messages).await,
            None if sessionless_era => pooled::post(state, None, messages).await,
            None => rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                -32000,
                "Bad Request: Mcp-Session-Id header is required",
            ),
        },
    }
}

/// The body's `initialize` request, when that is all it holds.
fn initialize(messages: &[(Bytes, Message)]) -> Option<(&Bytes, &Message)> {
    match messages {
        [(line, m)] if m.kind == Kind::Request && m.method.as_deref() == Some("initialize") => {
            Some((line, m))
        }
        _ => None,
    }
}
