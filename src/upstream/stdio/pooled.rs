//! Streamable HTTP answers served by the shared pool: sessionless (2026-07-28) requests on any
//! stdio upstream, and every request of a `mode: shared` upstream's sessions.
//!
//! * `initialize` (`mode: shared`) is answered by the bridge from what the pool's child
//!   answered the proxy (the revision lowered to the client's, when the client asked for an
//!   older one), with a new session id; the session has no child of its own.
//! * `server/discover` (2026-07-28) is answered the same way: the child's capabilities, server
//!   info and instructions, and the revisions the bridge serves.
//! * Requests go to one pool child, ids rewritten ([`super::shared`]); their answers come on
//!   the POST's SSE stream. Client notifications go to the children; `notifications/cancelled`
//!   only to the child running that client's request; responses to server requests only to
//!   the child that asked, and only from the session that was asked.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::clients::ClientSession;
use super::lines::{Kind, Message};
use super::pool::{Pool, PoolError};
use super::replies::{
    json, new_session_id, plain, rpc_error, sse, sse_guarded, BridgeBody, SESSION_HEADER,
    STREAM_QUEUE,
};
use super::rewrite::{self, CANCELLED_ID};
use super::shared::{InitError, Owner, SharedChild};
use super::BridgeState;

/// The revision without sessions or `initialize`.
const SESSIONLESS: &str = "2026-07-28";
/// Revisions a client may ask for in `initialize`, oldest first.
const HANDSHAKE: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// A `mode: shared` session's `initialize`.
pub(super) async fn initialize(
    state: &Arc<BridgeState>,
    line: &Bytes,
    msg: &Message,
) -> Response<BridgeBody> {
    let id = msg.id.as_deref();
    let child = match Pool::child(state).await {
        Ok(child) => child,
        Err(e) => return refused(state, e, id),
    };
    let Some(info) = child.init_info() else {
        return rpc_error(
            StatusCode::BAD_GATEWAY,
            id,
            -32603,
            "the MCP server process is not initialized",
        );
    };
    let asked: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
    let asked = asked["params"]["protocolVersion"]
        .as_str()
        .unwrap_or_default();
    let mut result = info.result.clone();
    result["protocolVersion"] = Value::from(negotiate(asked, &info.version));
    let session = state.pool.clients.open(new_session_id());
    let mut resp = json(&json!({"jsonrpc": "2.0", "id": raw_id(id), "result": result}));
    if let Ok(value) = HeaderValue::from_str(&session.id) {
        resp.headers_mut().insert(SESSION_HEADER, value);
    }
    resp
}

/// The client's revision when the child speaks it too (revisions only add), else the child's.
fn negotiate<'a>(asked: &'a str, child: &'a str) -> &'a str {
    let known = |v: &str| HANDSHAKE.iter().position(|k| *k == v);
    match (known(asked), known(child)) {
        (Some(a), Some(c)) if a <= c => asked,
        _ => child,
    }
}

/// `server/discover` (2026-07-28), answered from the pool child's `initialize` result.
async fn discover(state: &Arc<BridgeState>, msg: &Message) -> Response<BridgeBody> {
    let id = msg.id.as_deref();
    let child = match Pool::child(state).await {
        Ok(child) => child,
        Err(e) => return refused(state, e, id),
    };
    let Some(info) = child.init_info() else {
        return rpc_error(
            StatusCode::BAD_GATEWAY,
            id,
            -32603,
            "the MCP server process is not initialized",
        );
    };
    let mut result = json!({
        "supportedVersions": [info.version, SESSIONLESS],
        "capabilities": info.result["capabilities"],
        "serverInfo": info.result["serverInfo"],
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(instructions) = info.result.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    json(&json!({"jsonrpc": "2.0", "id": raw_id(id), "result": result}))
}

/// A POST without a session (2026-07-28), or in a `mode: shared` session.
pub(super) async fn post(
    state: &Arc<BridgeState>,
    session: Option<Arc<ClientSession>>,
    messages: Vec<(Bytes, Message)>,
) -> Response<BridgeBody> {
    if let Some(session) = &session {
        session.touch();
    }
    let method = |m: &Message| m.method.as_deref().unwrap_or_default().to_owned();
    if messages.iter().any(|(_, m)| method(m) == "initialize") {
        let why = match session {
            Some(_) => "Invalid Request: Server already initialized",
            None => "Invalid Request: initialize cannot be batched",
        };
        return rpc_error(StatusCode::BAD_REQUEST, None, -32600, why);
    }
    if let [(_, msg)] = &messages[..] {
        if session.is_none() && msg.kind == Kind::Request && method(msg) == "server/discover" {
            return discover(state, msg).await;
        }
    }
    if session.is_none() && messages.iter().any(|(_, m)| m.kind == Kind::Response) {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            -32600,
            "Invalid Request: a client without a session (2026-07-28) sends no responses",
        );
    }
    let owner = Owner {
        key: session
            .as_ref()
            .map_or_else(|| state.pool.clients.new_key(), |s| s.key),
        session,
    };
    let (requests, others): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .partition(|(_, m)| m.kind == Kind::Request);
    for (line, msg) in &others {
        pass_on(state, &owner, line, msg).await;
    }
    if requests.is_empty() {
        return plain(StatusCode::ACCEPTED, "");
    }
    let first_id = requests[0].1.id.clone();
    let child = match Pool::child(state).await {
        Ok(child) => child,
        Err(e) => return refused(state, e, first_id.as_deref()),
    };
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let Some(ids) = child.send(&requests, &tx, &owner).await else {
        return rpc_error(
            StatusCode::BAD_GATEWAY,
            first_id.as_deref(),
            -32603,
            "the MCP server process exited",
        );
    };
    drop(tx);
    sse_guarded(VecDeque::new(), rx, Some(Box::new(Abandon { child, ids })))
}

/// A client notification or response (see the module doc).
async fn pass_on(state: &Arc<BridgeState>, owner: &Owner, line: &Bytes, msg: &Message) {
    let children = state.pool.children();
    match (msg.kind, msg.method.as_deref()) {
        (Kind::Response, _) => {
            let id = msg.id.as_deref().unwrap_or_default();
            if !state.pool.requests.answer(owner.key, line, id).await {
                tracing::debug!(upstream = %state.settings.name, id, "stdio: response to no server request of this session; dropped");
            }
        }
        // The proxy initialized the children itself.
        (_, Some("notifications/initialized")) => {}
        (_, Some("notifications/cancelled")) => {
            let Some(id) = rewrite::get(line, CANCELLED_ID) else {
                return;
            };
            for child in children {
                if child.cancel(owner.key, line, &id).await {
                    break;
                }
            }
        }
        _ => {
            for child in children {
                child.notify(line.clone()).await;
            }
        }
    }
}

/// Held by a request stream: when it ends, what is still unanswered is cancelled.
struct Abandon {
    child: Arc<SharedChild>,
    ids: Vec<u64>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        self.child.abandon(&self.ids);
    }
}

/// A `mode: shared` session's GET stream: server messages that belong to no request.
pub(super) fn get(session: &Arc<ClientSession>) -> Response<BridgeBody> {
    session.touch();
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    match session.open_get(tx) {
        Ok(backlog) => sse(backlog.into(), rx),
        Err(_) => rpc_error(
            StatusCode::CONFLICT,
            None,
            -32000,
            "Conflict: only one SSE stream is allowed per session",
        ),
    }
}

fn raw_id(id: Option<&str>) -> Value {
    id.and_then(|id| serde_json::from_str(id).ok())
        .unwrap_or(Value::Null)
}

/// Why the pool could not take a request, as the HTTP answer the proxy passes on.
fn refused(state: &BridgeState, e: PoolError, id: Option<&str>) -> Response<BridgeBody> {
    let retry = |resp: &mut Response<BridgeBody>, wait: std::time::Duration| {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, value);
        }
    };
    let (status, message, wait) = match e {
        PoolError::AtCapacity => (
            StatusCode::SERVICE_UNAVAILABLE,
            "stdio upstream at max_children; try again later".to_owned(),
            Some(std::time::Duration::from_secs(1)),
        ),
        PoolError::RateLimited(wait) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "stdio upstream at its spawn_rate; try again later".to_owned(),
            Some(wait),
        ),
        PoolError::Backoff(wait) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the MCP server process is restarting after failures; try again later".to_owned(),
            Some(wait),
        ),
        PoolError::Spawn(e) => {
            tracing::error!(upstream = %state.settings.name, error = %e, "stdio: cannot start the MCP server");
            (
                StatusCode::BAD_GATEWAY,
                "cannot start the MCP server process".to_owned(),
                None,
            )
        }
        PoolError::Init(InitError::Timeout) => (
            StatusCode::GATEWAY_TIMEOUT,
            "the MCP server process did not answer initialize in time".to_owned(),
            None,
        ),
        PoolError::Init(InitError::Exited) => (
            StatusCode::BAD_GATEWAY,
            "the MCP server process exited".to_owned(),
            None,
        ),
        PoolError::Init(InitError::Refused(why)) => (
            StatusCode::BAD_GATEWAY,
            format!("the MCP server process refused initialize: {why}"),
            None,
        ),
    };
    let mut resp = rpc_error(status, id, -32603, &message);
    if let Some(wait) = wait {
        retry(&mut resp, wait);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_gets_its_revision_when_the_child_speaks_it() {
        assert_eq!(negotiate("2025-03-26", "2025-11-25"), "2025-03-26");
        assert_eq!(negotiate("2025-11-25", "2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("1999-01-01", "2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("2025-06-18", "2099-01-01"), "2099-01-01");
    }
}
