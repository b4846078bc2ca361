//! `shadowcat replay`: tapes served as a Streamable HTTP MCP server (hyper's HTTP/1.1
//! server), with no upstream.
//!
//! * `POST initialize`: the recorded answer, with the new request's id and, when the recorded
//!   server issued sessions, a fresh session id (256 random bits, as the proxy mints).
//! * `POST` of another request: the recorded answer to the same method and parameters
//!   ([`Library`]), as JSON or as SSE with the recorded spacing divided by `--speed` (0: none).
//!   The answer's `id` becomes the new request's, and its progress notifications carry the
//!   new request's `progressToken`. No match: a JSON-RPC error naming the closest recorded
//!   request (-32602 when the method was recorded, -32601 when it never was).
//! * `POST` of notifications or responses: 202. `GET`: the recorded standalone stream (its
//!   events, then held open until the client leaves) or its recorded refusal; 405 when none
//!   was recorded. `DELETE`: the session ends.
//! * Sessions (when recorded): a request without one gets 400, an unknown one 404, as MCP
//!   servers answer. A sessionless (2026-07-28) tape is served without sessions.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub use super::matcher::Library;
use super::matcher::{Answer, Event, Recorded};
use crate::transport::sse::SseEvent;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body read.
const MAX_BODY: usize = 4 << 20;
const SESSION: &str = "mcp-session-id";

/// The replay server.
#[derive(Debug, Clone)]
pub struct Server {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    library: Library,
    speed: f64,
    endpoint: String,
    /// Live sessions, each with how often it asked each request (its next recording).
    sessions: Mutex<HashMap<String, Uses>>,
    /// The same, for a sessionless replay.
    sessionless: Mutex<Uses>,
}

type Uses = HashMap<(String, String), usize>;

// === impl Server ===

impl Server {
    pub fn new(library: Library, speed: f64, endpoint: String) -> Self {
        Self {
            state: Arc::new(State {
                library,
                speed,
                endpoint,
                sessions: Mutex::default(),
                sessionless: Mutex::default(),
            }),
        }
    }

    /// Serves connections from `listener` until the future is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "replay: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let state = self.state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "replay: connection ended");
                }
            });
        }
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() != state.endpoint {
        return plain(StatusCode::NOT_FOUND);
    }
    let session = req
        .headers()
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match req.method().clone() {
        Method::POST => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return rpc_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &Value::Null,
                        -32600,
                        "body too large",
                    )
                }
            };
            post(state, session, &body)
        }
        Method::GET => match refusal(state, session.as_deref()) {
            Some(refused) => refused,
            None => match &state.library.get {
                Some(answer) => respond(state, answer, None, true),
                None => plain(StatusCode::METHOD_NOT_ALLOWED),
            },
        },
        Method::DELETE => match refusal(state, session.as_deref()) {
            Some(refused) => refused,
            None => {
                if let Some(id) = session {
                    lock(&state.sessions).remove(&id);
                }
                plain(StatusCode::OK)
            }
        },
        _ => plain(StatusCode::METHOD_NOT_ALLOWED),
    }
}

fn post(state: &State, session: Option<String>, body: &[u8]) -> Response<Body> {
    let Ok(message) = serde_json::from_slice::<Value>(body) else {
        return rpc_error(StatusCode::BAD_REQUEST, &Value::Null, -32700, "Parse error");
    };
    if message.is_array() {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32600,
            "batches are not replayed",
        );
    }
    let (Some(method), Some(id)) = (message["method"].as_str(), message.get("id")) else {
        // A notification or a response: accepted, as a server does.
        return match refusal(state, session.as_deref()) {
            Some(refused) if session.is_some() => refused,
            _ => plain(StatusCode::ACCEPTED),
        };
    };
    let lib = &state.library;
    if method == "initialize" {
        let Some(init) = &lib.initialize else {
            return rpc_error(StatusCode::OK, id, -32601, "no initialize on the tapes");
        };
        let mut resp = respond(state, &init.answer, Some((init, &message)), false);
        if lib.sessions {
            let sid = new_session_id();
            lock(&state.sessions).insert(sid.clone(), Uses::new());
            if let Ok(v) = HeaderValue::from_str(&sid) {
                resp.headers_mut().insert(SESSION, v);
            }
        }
        return resp;
    }
    if let Some(refused) = refusal(state, session.as_deref()) {
        return refused;
    }
    let params = lib.normalize(&message["params"]);
    let key = (method.to_owned(), params);
    let nth = {
        let mut sessions = lock(&state.sessions);
        let mut sessionless = lock(&state.sessionless);
        let uses = match session.as_ref().and_then(|s| sessions.get_mut(s)) {
            Some(uses) => uses,
            None => &mut *sessionless,
        };
        let n = uses.entry(key.clone()).or_insert(0);
        *n += 1;
        *n - 1
    };
    match lib.find(&key.0, &key.1, nth) {
        Some(recorded) => respond(state, &recorded.answer, Some((recorded, &message)), false),
        None => no_match(lib, method, &key.1, id),
    }
}

/// A JSON-RPC error naming the closest recorded request.
fn no_match(lib: &Library, method: &str, params: &str, id: &Value) -> Response<Body> {
    let (code, mut text) = match lib.knows_method(method) {
        true => (
            -32602,
            format!("replay: no recorded {method} has these params {params}"),
        ),
        false => (
            -32601,
            format!("replay: no recorded request has method {method}"),
        ),
    };
    let closest = lib.closest(method, params);
    if let Some(c) = closest {
        text.push_str(&format!("; closest recorded: {} {}", c.method, c.params));
    }
    let data =
        closest.map(|c| json!({"closest": {"method": c.method, "params": c.request["params"]}}));
    let mut body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": text}});
    if let Some(data) = data {
        body["error"]["data"] = data;
    }
    json_response(StatusCode::OK, body.to_string())
}

/// A recorded answer; `for_request` (recorded, new) rewrites its id and progress token.
fn respond(
    state: &State,
    answer: &Answer,
    for_request: Option<(&Recorded, &Value)>,
    hold_open: bool,
) -> Response<Body> {
    let rewrite = |data: &str| match for_request {
        Some((recorded, new)) => rewrite(data, &recorded.request, new),
        None => data.to_owned(),
    };
    match answer {
        Answer::Json {
            status,
            headers,
            body,
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            let mut resp = match body {
                Some(b) => json_response(status, rewrite(b)),
                None => plain(status),
            };
            if let Some(ct) = headers
                .get("content-type")
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            resp
        }
        Answer::Sse { status, events } => {
            let events: Vec<Event> = events
                .iter()
                .map(|e| Event {
                    data: e.data.as_deref().map(rewrite),
                    ..e.clone()
                })
                .collect();
            sse(*status, events, state.speed, hold_open)
        }
    }
}

/// The recorded message with the new request's id (a response to it) and progress token.
fn rewrite(data: &str, recorded: &Value, new: &Value) -> String {
    let Ok(mut message) = serde_json::from_str::<Value>(data) else {
        return data.to_owned();
    };
    let is_response = message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some());
    if is_response && message["id"] == recorded["id"] {
        message["id"] = new["id"].clone();
    }
    let old_token = &recorded["params"]["_meta"]["progressToken"];
    let new_token = &new["params"]["_meta"]["progressToken"];
    if message["method"] == "notifications/progress"
        && !old_token.is_null()
        && &message["params"]["progressToken"] == old_token
    {
        message["params"]["progressToken"] = new_token.clone();
    }
    message.to_string()
}

/// An SSE response: the events with their recorded spacing (divided by `speed`; 0: none),
/// then the end, or (`hold_open`, the GET stream) held until the client leaves.
fn sse(status: u16, events: Vec<Event>, speed: f64, hold_open: bool) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        for e in events {
            if speed > 0.0 && e.delay_ms > 0 {
                let wait = Duration::from_secs_f64(e.delay_ms as f64 / 1000.0 / speed);
                tokio::time::sleep(wait.min(Duration::from_secs(3600))).await;
            }
            let event = SseEvent {
                id: e.id,
                event: e.event,
                data: e.data,
                retry: e.retry,
            };
            if tx.send(event.encode()).await.is_err() {
                return;
            }
        }
        if hold_open {
            tx.closed().await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The session check of a recorded server with sessions: 400 without one, 404 unknown;
/// `None` when the request may go on.
fn refusal(state: &State, session: Option<&str>) -> Option<Response<Body>> {
    if !state.library.sessions {
        return None;
    }
    match session {
        None => Some(rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32000,
            "Bad Request: Mcp-Session-Id header is required",
        )),
        Some(s) if lock(&state.sessions).contains_key(s) => None,
        Some(_) => Some(rpc_error(
            StatusCode::NOT_FOUND,
            &Value::Null,
            -32001,
            "Session not found",
        )),
    }
}

fn new_session_id() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: a unique id still (the replay is a test server, not a vault).
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes[..16].copy_from_slice(&n.to_le_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn plain(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(BodyExt::boxed_unsync(Full::new(Bytes::new())));
    *resp.status_mut() = status;
    resp
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(BodyExt::boxed_unsync(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn rpc_error(status: StatusCode, id: &Value, code: i32, message: &str) -> Response<Body> {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    json_response(status, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_take_the_new_id_and_progress_token() {
        let recorded =
            json!({"id": 7, "method": "tools/call", "params": {"_meta": {"progressToken": 7}}});
        let new = json!({"id": "n-1", "method": "tools/call", "params": {"_meta": {"progressToken": "p"}}});
        let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1}}"#;
        let out: Value = serde_json::from_str(&rewrite(progress, &recorded, &new)).unwrap();
        assert_eq!(out["params"]["progressToken"], "p");
        let result = r#"{"jsonrpc":"2.0","id":7,"result":{}}"#;
        let out: Value = serde_json::from_str(&rewrite(result, &recorded, &new)).unwrap();
        assert_eq!(out["id"], "n-1");
        let request = r#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage"}"#;
        let out: Value = serde_json::from_str(&rewrite(request, &recorded, &new)).unwrap();
        assert_eq!(out["id"], 7, "a server's own request keeps its id");
        assert_eq!(rewrite("not json", &recorded, &new), "not json");
    }
}
