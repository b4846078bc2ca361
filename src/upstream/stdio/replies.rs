//! What the bridge answers with: SSE streams fed by a channel, plain and JSON-RPC error
//! replies, and the session ids it issues.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

pub(super) type BridgeBody = BoxBody<Bytes, Infallible>;

/// SSE events queued per response before the child is made to wait.
pub(super) const STREAM_QUEUE: usize = 64;
pub(super) const SESSION_HEADER: &str = "mcp-session-id";

pub(super) fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS CSPRNG; it does not fail on supported platforms, and a zero id would still be
    // unique enough within one bridge only by luck, so a failure is logged loudly.
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "stdio: no randomness for a session id");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An SSE response: `first` events, then whatever arrives until every sender is gone.
pub(super) fn sse(first: VecDeque<Bytes>, rx: mpsc::Receiver<Bytes>) -> Response<BridgeBody> {
    sse_guarded(first, rx, None)
}

/// Something a response stream holds until it is dropped (finished, or its client left).
pub(super) type Guard = Box<dyn Send + Sync>;

/// As [`sse`], holding `guard` for as long as the response body lives.
pub(super) fn sse_guarded(
    first: VecDeque<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    guard: Option<Guard>,
) -> Response<BridgeBody> {
    let body = SseBody {
        first,
        rx,
        _guard: guard,
    };
    let mut resp = Response::new(body.boxed());
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
    _guard: Option<Guard>,
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

pub(super) fn plain(status: StatusCode, text: &'static str) -> Response<BridgeBody> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *resp.status_mut() = status;
    resp
}

/// A JSON-RPC error answer; `id` is the request's id as JSON text (`None`: `null`).
pub(super) fn rpc_error(
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

/// A `200 application/json` answer holding one JSON-RPC message.
pub(super) fn json(message: &serde_json::Value) -> Response<BridgeBody> {
    let mut resp = Response::new(Full::new(Bytes::from(message.to_string())).boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
