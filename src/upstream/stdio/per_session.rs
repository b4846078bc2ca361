//! `mode: per_session` answers: a new child for each `initialize`, and a session's POST and
//! GET served by its own child.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use tokio::sync::mpsc;

use super::child::{spawn_session, SpawnError};
use super::lines::{Kind, Message};
use super::replies::{
    new_session_id, plain, rpc_error, sse, BridgeBody, SESSION_HEADER, STREAM_QUEUE,
};
use super::session::{ExitReason, Refused, Session};
use super::BridgeState;

/// A new session: a child started, `initialize` written, and the answer's head held until the
/// child's first message (bounded by `timeouts.request`), so a child that never answers gives
/// a 504 rather than an empty stream, and the session id goes out only once it works.
pub(super) async fn initialize(
    state: &Arc<BridgeState>,
    messages: Vec<(Bytes, Message)>,
) -> Response<BridgeBody> {
    let (line, msg) = &messages[0];
    let id = msg.id.as_deref();
    let session = match spawn_session(state, new_session_id()) {
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
        Err(SpawnError::RateLimited(wait)) => {
            let mut resp = rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                -32000,
                "stdio upstream at its spawn_rate; try again later",
            );
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, value);
            }
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

pub(super) async fn post(
    session: Arc<Session>,
    messages: Vec<(Bytes, Message)>,
) -> Response<BridgeBody> {
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

pub(super) fn get(session: &Arc<Session>) -> Response<BridgeBody> {
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
