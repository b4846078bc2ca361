//! The bridge's Streamable HTTP side: POST, GET and DELETE on `/mcp`, answered the way an MCP
//! server with sessions answers (the proxy in front never knows the difference).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use tokio::sync::mpsc;

use super::child::{spawn, SpawnError};
use super::lines::{split, Kind, Message};
use super::session::{ExitReason, Refused, Session};
use super::BridgeState;

pub(super) type BridgeBody = BoxBody<Bytes, Infallible>;

/// SSE events queued per response before the child is made to wait.
const STREAM_QUEUE: usize = 64;
/// The path the bridge serves.
pub(super) const PATH: &str = "/mcp";
const SESSION_HEADER: &str = "mcp-session-id";

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
    let sessionless_era = req
        .headers()
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= "2026-07-28");
    let method = req.method().clone();
    let session = match session_id.as_deref().map(|id| state.get(id)) {
        Some(Some(session)) => Some(session),
        Some(None) => return rpc_error(StatusCode::NOT_FOUND, None, -32001, "Session not found"),
        None => None,
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
            match session {
                Some(session) => post(session, messages).await,
                None if is_initialize(&messages) => initialize(&state, messages).await,
                None if sessionless_era => rpc_error(
                    StatusCode::BAD_REQUEST,
                    None,
                    -32000,
                    "Bad Request: this stdio upstream serves sessions only (initialize first); \
                     sessionless 2026-07-28 requests are not supported yet",
                ),
                None => rpc_error(
                    StatusCode::BAD_REQUEST,
                    None,
                    -32000,
                    "Bad Request: Mcp-Session-Id header is required",
                ),
            }
        }
        (Method::GET, Some(session)) => get(&session),
        (Method::DELETE, Some(session)) => {
            state.remove(&session.id);
            session.stop(ExitReason::Deleted);
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

fn is_initialize(messages: &[(Bytes, Message)]) -> bool {
    matches!(messages, [(_, m)] if m.kind == Kind::Request && m.method.as_deref() == Some("initialize"))
}

/// A new session: a child started, `initialize` written, and the answer's head held until the
/// child's first message (bounded by `timeouts.request`), so a child that never answers gives
/// a 504 rather than an empty stream, and the session id goes out only once it works.
async fn initialize(
    state: &Arc<BridgeState>,
    messages: Vec<(Bytes, Message)>,
) -> Response<BridgeBody> {
    let (line, msg) = &messages[0];
    let id = msg.id.as_deref();
    let session = match spawn(state, new_session_id()) {
        Ok(session) => session,
        Err(SpawnError::AtCapacity) => {
            let mut resp = rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                -32000,
                "stdio upstream at max_children; try again later",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
        Err(SpawnError::Io(e)) => {
            tracing::error!(upstream = %state.settings.name, error = %e, "stdio: cannot start the MCP server");
            return rpc_error(
                StatusCode::BAD_GATEWAY,
                id,
                -32603,
                "cannot start the MCP server process",
            );
        }
    };
    // Dropped before the head is sent (timeout, the proxy left): the child goes too.
    let mut guard = StopOnDrop(Some(session.clone()));
    let (tx, mut rx) = mpsc::channel(STREAM_QUEUE);
    let requests = [(
        msg.id.clone().unwrap_or_default(),
        msg.progress_token.clone(),
    )];
    if session.expect(&requests, &tx).is_err() || session.write(line.clone()).await.is_err() {
        return rpc_error(
            StatusCode::BAD_GATEWAY,
            id,
            -32603,
            "the MCP server process exited",
        );
    }
    drop(tx);
    let first = match tokio::time::timeout(state.settings.init_timeout, rx.recv()).await {
        Ok(Some(first)) => first,
        Ok(None) => {
            return rpc_error(
                StatusCode::BAD_GATEWAY,
                id,
                -32603,
                "the MCP server process exited",
            )
        }
        Err(_) => {
            return rpc_error(
                StatusCode::GATEWAY_TIMEOUT,
                id,
                -32603,
                "the MCP server process did not answer initialize in time",
            )
        }
    };
    guard.0 = None;
    let mut resp = sse(VecDeque::from([first]), rx);
    if let Ok(value) = HeaderValue::from_str(&session.id) {
        resp.headers_mut().insert(SESSION_HEADER, value);
    }
    resp
}

/// Stops a session's child when dropped (unless forgotten).
struct StopOnDrop(Option<Arc<Session>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(session) = self.0.take() {
            session.stop(ExitReason::InitFailed);
        }
    }
}

async fn post(session: Arc<Session>, messages: Vec<(Bytes, Message)>) -> Response<BridgeBody> {
    session.touch();
    if messages
        .iter()
        .any(|(_, m)| m.method.as_deref() == Some("initialize"))
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            -32600,
            "Invalid Request: Server already initialized",
        );
    }
    let requests: Vec<(String, Option<String>)> = messages
        .iter()
        .filter(|(_, m)| m.kind == Kind::Request)
        .map(|(_, m)| (m.id.clone().unwrap_or_default(), m.progress_token.clone()))
        .collect();
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    if !requests.is_empty() {
        match session.expect(&requests, &tx) {
            Ok(()) => {}
            Err(Refused::DuplicateId(id)) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    Some(&id),
                    -32600,
                    "Invalid Request: a request with this id is in flight",
                )
            }
            Err(_) => return rpc_error(StatusCode::NOT_FOUND, None, -32001, "Session not found"),
        }
    }
    drop(tx);
    for (line, _) in messages {
        if session.write(line).await.is_err() {
            return rpc_error(StatusCode::NOT_FOUND, None, -32001, "Session not found");
        }
    }
    if requests.is_empty() {
        return plain(StatusCode::ACCEPTED, "");
    }
    sse(VecDeque::new(), rx)
}

fn get(session: &Arc<Session>) -> Response<BridgeBody> {
    session.touch();
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    match session.open_get(tx) {
        Ok(backlog) => sse(backlog.into(), rx),
        Err(Refused::StreamOpen) => rpc_error(
            StatusCode::CONFLICT,
            None,
            -32000,
            "Conflict: only one SSE stream is allowed per session",
        ),
        Err(_) => rpc_error(StatusCode::NOT_FOUND, None, -32001, "Session not found"),
    }
}

fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS CSPRNG; it does not fail on supported platforms, and a zero id would still be
    // unique enough within one bridge only by luck, so a failure is logged loudly.
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "stdio: no randomness for a session id");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An SSE response: `first` events, then whatever arrives until every sender is gone.
fn sse(first: VecDeque<Bytes>, rx: mpsc::Receiver<Bytes>) -> Response<BridgeBody> {
    let mut resp = Response::new(SseBody { first, rx }.boxed());
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

struct SseBody {
    first: VecDeque<Bytes>,
    rx: mpsc::Receiver<Bytes>,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(event) = self.first.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(event))));
        }
        self.rx
            .poll_recv(cx)
            .map(|event| event.map(|e| Ok(Frame::data(e))))
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<BridgeBody> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *resp.status_mut() = status;
    resp
}

/// A JSON-RPC error answer; `id` is the request's id as JSON text (`None`: `null`).
fn rpc_error(
    status: StatusCode,
    id: Option<&str>,
    code: i32,
    message: &str,
) -> Response<BridgeBody> {
    let id: serde_json::Value = id
        .and_then(|id| serde_json::from_str(id).ok())
        .unwrap_or(serde_json::Value::Null);
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
