//! Per-request state shared by the `ProxyHttp` phases.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::principal::Principal;
use super::session::{ActiveGuard, Reservation, Session};
use super::sse::SseStream;
use crate::mcp::{judge, peek, ProtocolVersion};

/// What the proxy learned about one request, phase by phase.
#[derive(Debug)]
pub struct RequestCtx {
    pub started: Instant,
    pub version: ProtocolVersion,
    /// `mcp_method` label: the JSON-RPC method, `GET`, `DELETE`, or `unknown`/`invalid`.
    pub method_label: &'static str,
    /// The request body (every body is read whole before the upstream is contacted).
    pub body: Option<Bytes>,
    /// Where the single request's `id` sits in `body`, to echo it in a JSON-RPC error.
    id_range: Option<Range<usize>>,
    /// The requests in `body` (calls with an id, which a POST's SSE stream answers): `Some`
    /// with the place of the single request's id, `Some(None)` for a single message that is not
    /// a request; `None` for a batch, unread, or unparseable body (peeked again when needed).
    single_request_id: Option<Option<Range<usize>>>,
    pub upstream: Option<usize>,
    pub status: u16,
    pub sse: Option<SseStream>,
    /// Why the request failed, as classified by the proxy (metrics, logs, error body).
    pub failure: Option<&'static str>,
    /// The body is a single `initialize` request.
    pub is_initialize: bool,
    /// Every message's JSON-RPC method and `params.name` (tool or prompt), decoded: escapes
    /// resolved, so a scope rule cannot be dodged by spelling a name differently, and every
    /// member of a batch listed, so none hides behind another.
    pub calls: Vec<(Box<str>, Option<Box<str>>)>,
    /// `calls` is needed (scopes are checked): without `auth:` it is never built.
    pub want_calls: bool,
    /// The bearer token's identity (with `auth:`).
    pub identity: Option<crate::auth::Identity>,
    /// Why the body cannot be judged (the peek refused it), refused when policy is on.
    pub unjudgeable: Option<judge::Refusal>,
    pub is_delete: bool,
    /// The live session this request belongs to.
    pub session: Option<Arc<Session>>,
    /// A place held for the session an `initialize` may create.
    pub new_session: Option<Reservation>,
    pub principal: Option<Principal>,
    /// The verified client certificate's principal (mTLS), found at the first phase.
    pub client_cert: Option<Principal>,
    /// Upstreams that failed to connect for this request (not chosen again).
    pub tried: Vec<usize>,
    /// Counts this request among its session's requests in flight.
    pub session_active: Option<ActiveGuard>,
    /// A cacheable request on its way upstream (its response may be stored).
    pub cache: Option<Box<super::cache_taps::Pending>>,
    /// Interceptor state; `None` when no rule is configured (interception costs nothing).
    pub intercept: Option<Box<super::intercept_state::Intercept>>,
    /// The session stream this response feeds and drains.
    pub live: Option<Arc<super::streams::LiveStream>>,
    /// What a GET with `Last-Event-ID` resumes.
    pub resume: Option<super::streams::Resume>,
    /// A sealed id this response ended, and how long until it would expire: the shared
    /// store is told before the response leaves.
    pub ended: Option<(Arc<str>, std::time::Duration)>,

    /// The response on its way to a tape (`recording:`); `None` when not recorded.
    pub tape: Option<Box<crate::tape::Collector>>,
    /// This request went on a tape already (its response's head was seen).
    pub taped: bool,

    /// The request's spans (`telemetry:`); `None` when tracing is off.
    pub trace: Option<crate::telemetry::RequestTrace>,
    _in_flight: InFlight,
}

// === impl RequestCtx ===

impl RequestCtx {
    pub fn new(in_flight: &Arc<AtomicUsize>) -> Self {
        Self {
            started: Instant::now(),
            version: ProtocolVersion::V2025_03_26,
            method_label: "unknown",
            body: None,
            id_range: None,
            single_request_id: None,
            upstream: None,
            status: 0,
            sse: None,
            failure: None,
            is_initialize: false,
            calls: Vec::new(),
            want_calls: false,
            identity: None,
            unjudgeable: None,
            is_delete: false,
            session: None,
            new_session: None,
            principal: None,
            client_cert: None,
            tried: Vec::new(),
            session_active: None,
            cache: None,
            intercept: None,
            live: None,
            resume: None,
            ended: None,

            tape: None,
            taped: false,

            trace: None,
            _in_flight: InFlight::enter(in_flight),
        }
    }

    /// Records the body and what the peek found in it: the method label and the id's place.
    pub fn set_body(&mut self, body: Bytes) {
        let peeked = peek::peek(&body);
        self.unjudgeable = judge::refusal(&peeked);
        match peeked {
            Ok(p) => {
                self.method_label = p.method().map_or("invalid", super::metrics::method_label);
                self.id_range = p.reply_id().and_then(|id| subslice_range(&body, id.get()));
                self.single_request_id = match &p {
                    peek::Peek::Single(m) if m.is_request() => {
                        Some(m.id.and_then(|id| subslice_range(&body, id.get())))
                    }
                    peek::Peek::Single(_) => Some(None),
                    peek::Peek::Batch(_) => None,
                };
                self.is_initialize = !p.is_batch() && p.method() == Some("initialize");
                if let Some(trace) = self.trace.as_mut() {
                    trace.on_messages(&body, p.messages(), self.version.as_str());
                }
                self.calls = if !self.want_calls {
                    Vec::new()
                } else {
                    p.messages()
                        .iter()
                        .map(|m| {
                            (
                                Box::from(m.method.as_deref().unwrap_or("")),
                                m.name.as_deref().map(Box::from),
                            )
                        })
                        .collect()
                };
            }
            Err(_) => self.method_label = "invalid",
        }
        self.body = Some(body);
    }

    /// The ids (raw JSON) of the requests in the body, which a POST's SSE stream answers. A
    /// single message's come from the peek `set_body` made; a batch is peeked again.
    pub fn request_ids(&self) -> Vec<Box<str>> {
        let Some(body) = self.body.as_deref() else {
            return Vec::new();
        };
        match &self.single_request_id {
            Some(range) => range
                .clone()
                .and_then(|r| std::str::from_utf8(body.get(r)?).ok())
                .map(Box::from)
                .into_iter()
                .collect(),
            None => peek::peek(body)
                .map(|p| {
                    crate::interceptor::calls_of(&p)
                        .into_iter()
                        .map(|c| c.id)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The id of the request being answered, when it was a parseable single request.
    pub fn reply_id(&self) -> Option<&RawValue> {
        let range = self.id_range.clone()?;
        let text = std::str::from_utf8(self.body.as_ref()?.get(range)?).ok()?;
        serde_json::from_str(text).ok()
    }
}

/// Where `inner` (a slice borrowed from `outer`) sits in `outer`.
fn subslice_range(outer: &[u8], inner: &str) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start + inner.len();
    (end <= outer.len()).then_some(start..end)
}

/// Counts requests in flight so shutdown can end as soon as they drain.
#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_request_id_for_error_replies() {
        let counter = Arc::new(AtomicUsize::new(0));
        let mut ctx = RequestCtx::new(&counter);
        assert_eq!(counter.load(Ordering::Relaxed), 1);
        ctx.set_body(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":"a-7","method":"tools/call","params":{"name":"x"}}"#,
        ));
        assert_eq!(ctx.method_label, "tools/call");
        assert_eq!(ctx.reply_id().unwrap().get(), r#""a-7""#);
        drop(ctx);
        assert_eq!(counter.load(Ordering::Relaxed), 0);

        let mut ctx = RequestCtx::new(&counter);
        ctx.set_body(Bytes::from_static(b"not json"));
        assert_eq!(ctx.method_label, "invalid");
        assert!(ctx.reply_id().is_none());
    }
}
