//! One request's spans: the HTTP SERVER span, a span per JSON-RPC message inside it, and a
//! CLIENT span per upstream attempt. Attribute names follow the OpenTelemetry HTTP and MCP
//! semantic conventions; no argument values, no tokens, and the session only as a hash.
//!
//! The server span starts when the first thing needs it (normally the body), with the
//! request's start time: a request without a `traceparent` header may carry one in
//! `params._meta`, and the parent is known only once the body is read.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use sha2::{Digest, Sha256};

use super::propagation;
use crate::mcp::peek::{Message, MessageKind};
use crate::transport::sse::SseScanner;

/// What the request head says, for the server span.
pub struct ServerRequest<'a> {
    pub headers: &'a http::HeaderMap,
    pub method: &'a http::Method,
    pub path: &'a str,
    pub scheme: &'static str,
    pub client: Option<std::net::IpAddr>,
    /// `1.1` or `2`.
    pub http_version: &'static str,
}

/// The head's facts, kept until the server span starts (attributes are built only for a
/// sampled span: an unsampled request costs little more than its context).
#[derive(Debug)]
struct Head {
    method: http::Method,
    path: String,
    scheme: &'static str,
    client: Option<std::net::IpAddr>,
    http_version: &'static str,
}

impl Head {
    fn attributes(&self) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new("http.request.method", self.method.as_str().to_owned()),
            KeyValue::new("url.path", self.path.clone()),
            KeyValue::new("url.scheme", self.scheme),
            KeyValue::new("http.route", self.path.clone()),
            KeyValue::new("network.protocol.version", self.http_version),
        ];
        if let Some(ip) = self.client {
            attributes.push(KeyValue::new("client.address", ip.to_string()));
        }
        attributes
    }
}

/// One JSON-RPC message's span.
#[derive(Debug)]
struct MessageSpan {
    cx: Context,
    /// The request's id as JSON text; `None` for a notification.
    id: Option<Box<str>>,
    progress: i64,
}

/// The spans of one request (see the module doc).
#[derive(Debug)]
pub struct RequestTrace {
    tracer: SdkTracer,
    start: SystemTime,
    head: Head,
    parent: Context,
    from_headers: bool,
    server: OnceLock<Context>,
    messages: Vec<MessageSpan>,
    client: Option<Context>,
    /// Frames an SSE response to find each request's answer and its progress notifications.
    sse: Option<SseScanner>,
    first_byte: bool,
}

impl RequestTrace {
    pub(super) fn new(tracer: SdkTracer, req: &ServerRequest<'_>) -> Self {
        let parent = propagation::from_headers(req.headers);
        Self {
            tracer,
            start: SystemTime::now(),
            head: Head {
                method: req.method.clone(),
                path: req.path.to_owned(),
                scheme: req.scheme,
                client: req.client,
                http_version: req.http_version,
            },
            from_headers: parent.is_some(),
            parent: parent.unwrap_or_default(),
            server: OnceLock::new(),
            messages: Vec::new(),
            client: None,
            sse: None,
            first_byte: false,
        }
    }

    /// The SERVER span's context, started now if nothing needed it before.
    fn server(&self) -> &Context {
        self.server.get_or_init(|| {
            let name = format!("{} {}", self.head.method, self.head.path);
            let mut span = SpanBuilder::from_name(name)
                .with_kind(SpanKind::Server)
                .with_start_time(self.start)
                .start_with_context(&self.tracer, &self.parent);
            if span.is_recording() {
                span.set_attributes(self.head.attributes());
            }
            self.parent.with_span(span)
        })
    }

    /// Is this trace recorded (sampled)? Unsampled, only the context travels.
    fn recording(&self) -> bool {
        self.server().span().is_recording()
    }

    /// The body is read: its `params._meta.traceparent` is the parent when the headers had
    /// none, and each request and notification gets its span.
    pub fn on_messages(&mut self, body: &[u8], messages: &[Message<'_>], version: &'static str) {
        if !self.from_headers && self.server.get().is_none() {
            if let Some(parent) = propagation::from_meta(body) {
                self.parent = parent;
            }
        }
        if !self.recording() {
            return;
        }
        let server = self.server().clone();
        for m in messages {
            let Some(method) = m.method.as_deref() else {
                continue;
            };
            let mut attributes = vec![
                KeyValue::new("mcp.method.name", method.to_owned()),
                KeyValue::new("mcp.protocol.version", version),
                KeyValue::new("jsonrpc.protocol.version", "2.0"),
            ];
            let id = match (m.kind, m.id) {
                (MessageKind::Request, Some(id)) => Some(id_text(id.get())),
                _ => None,
            };
            if let Some(id) = &id {
                attributes.push(KeyValue::new("jsonrpc.request.id", id.to_string()));
            }
            let target = match (method, m.name.as_deref()) {
                ("tools/call", Some(tool)) => {
                    attributes.push(KeyValue::new("gen_ai.tool.name", tool.to_owned()));
                    attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
                    Some(tool)
                }
                ("prompts/get", Some(prompt)) => {
                    attributes.push(KeyValue::new("gen_ai.prompt.name", prompt.to_owned()));
                    Some(prompt)
                }
                _ => None,
            };
            if let Some(uri) = m.uri.as_deref() {
                attributes.push(KeyValue::new("mcp.resource.uri", uri.to_owned()));
            }
            let name = match target {
                Some(t) => format!("{method} {t}"),
                None => method.to_owned(),
            };
            let span = SpanBuilder::from_name(name)
                .with_kind(SpanKind::Server)
                .with_attributes(attributes)
                .start_with_context(&self.tracer, &server);
            self.messages.push(MessageSpan {
                cx: server.with_span(span),
                id,
                progress: 0,
            });
        }
    }

    /// An event on the server span (a rule's action, a rate limit, an auth refusal).
    pub fn event(&self, name: &'static str, attributes: Vec<KeyValue>) {
        self.server().span().add_event(name, attributes);
    }

    /// A CLIENT span for one attempt at the upstream (ending the previous attempt's); its
    /// context is what the upstream request carries.
    pub fn start_client(&mut self, upstream: &str, uri: &http::Uri, method: &str) {
        self.end_client(None, Some("retried"));
        let server = self.server().clone();
        let mut builder = SpanBuilder::from_name(method.to_owned()).with_kind(SpanKind::Client);
        if server.span().is_recording() {
            let mut attributes = vec![
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("shadowcat.upstream", upstream.to_owned()),
            ];
            if let Some(host) = uri.host() {
                attributes.push(KeyValue::new("server.address", host.to_owned()));
            }
            if let Some(port) = uri.port_u16() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
            attributes.push(KeyValue::new("url.full", without_query(uri)));
            builder = builder.with_attributes(attributes);
        }
        let span = builder.start_with_context(&self.tracer, &server);
        self.client = Some(server.with_span(span));
    }

    /// The upstream answered with `status` (its head is in), or failed with `error`.
    pub fn end_client(&mut self, status: Option<u16>, error: Option<&'static str>) {
        let Some(cx) = self.client.as_ref() else {
            return;
        };
        let span = cx.span();
        if !span.span_context().is_valid() {
            return;
        }
        if let Some(status) = status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 400 {
                span.set_attribute(KeyValue::new("error.type", status.to_string()));
                span.set_status(Status::error(""));
            }
        }
        if let Some(error) = error {
            span.set_attribute(KeyValue::new("error.type", error));
            span.set_status(Status::error(error));
        }
        span.end();
    }

    /// `traceparent`/`tracestate` for the upstream request: the CLIENT span's context (the
    /// server span's before any attempt).
    pub fn upstream_fields(&self) -> Vec<(&'static str, String)> {
        propagation::to_fields(self.client.as_ref().unwrap_or_else(|| self.server()))
    }

    /// An SSE response starts: its events are watched for the requests' answers.
    pub fn on_sse_start(&mut self, max_event: usize) {
        if self.messages.iter().any(|m| m.id.is_some()) {
            self.sse = Some(SseScanner::new(max_event));
        }
    }

    /// One upstream read of the SSE response: the first byte is an event on each request's
    /// span; progress notifications are counted; a request's span ends with its answer.
    pub fn on_sse_chunk(&mut self, chunk: &bytes::Bytes) {
        let Some(scanner) = self.sse.as_mut() else {
            return;
        };
        if !self.first_byte {
            self.first_byte = true;
            for m in self.messages.iter().filter(|m| m.id.is_some()) {
                m.cx.span().add_event("first_byte", Vec::new());
            }
        }
        let mut seen = Vec::new();
        let framed = scanner.feed(chunk, |ev| {
            if let Some(data) = ev.data() {
                if let Ok(p) = crate::mcp::peek::peek(&data) {
                    for m in p.messages() {
                        seen.push(Seen::of(m));
                    }
                }
            }
        });
        if framed.is_err() {
            self.sse = None;
        }
        for s in seen {
            match s {
                Seen::Progress => self
                    .messages
                    .iter_mut()
                    .filter(|m| m.id.is_some())
                    .for_each(|m| m.progress += 1),
                Seen::Answer(id, error) => {
                    if let Some(i) = self
                        .messages
                        .iter()
                        .position(|m| m.id.as_deref() == Some(&*id))
                    {
                        let m = self.messages.swap_remove(i);
                        end_message(m, error, None);
                    }
                }
                Seen::Other => {}
            }
        }
        if !self.messages.iter().any(|m| m.id.is_some()) {
            // Every request has its answer: the rest of the stream is not framed again.
            self.sse = None;
        }
    }

    /// The response is done: every open span ends; the session (as a hash) and status are
    /// recorded. Returns nothing; [`Self::ids`] gives the ids for the access log.
    pub fn finish(&mut self, status: u16, session_id: Option<&str>, failure: Option<&'static str>) {
        self.end_client(None, failure.filter(|_| self.client.is_some()));
        if !self.recording() {
            self.server().span().end();
            return;
        }
        let hash = session_id.map(session_hash);
        for m in std::mem::take(&mut self.messages) {
            end_message(m, None, hash.clone());
        }
        let span = self.server().span();
        if status > 0 {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(hash) = hash {
            span.set_attribute(KeyValue::new("mcp.session.id", hash));
        }
        if let Some(failure) = failure {
            span.set_attribute(KeyValue::new("error.type", failure));
        }
        if status >= 500 || (status == 0 && failure.is_some()) {
            span.set_status(Status::error(failure.unwrap_or("")));
        }
        span.end();
    }

    /// The server span's trace and span ids (hex), when it is sampled.
    pub fn ids(&self) -> Option<(String, String)> {
        let sc = self.server.get()?.span().span_context().clone();
        (sc.is_valid() && sc.is_sampled())
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    }
}

/// What an SSE event told about the requests.
enum Seen {
    Progress,
    Answer(Box<str>, Option<String>),
    Other,
}

impl Seen {
    fn of(m: &Message<'_>) -> Self {
        match (m.kind, m.id) {
            (MessageKind::Notification, _)
                if m.method.as_deref() == Some("notifications/progress") =>
            {
                Seen::Progress
            }
            (MessageKind::Response, Some(id)) => Seen::Answer(id_text(id.get()), None),
            (MessageKind::Error, Some(id)) => Seen::Answer(id_text(id.get()), Some("error".into())),
            _ => Seen::Other,
        }
    }
}

fn end_message(m: MessageSpan, error: Option<String>, session: Option<String>) {
    let span = m.cx.span();
    if m.progress > 0 {
        span.set_attribute(KeyValue::new("mcp.progress.count", m.progress));
    }
    if let Some(hash) = session {
        span.set_attribute(KeyValue::new("mcp.session.id", hash));
    }
    if let Some(e) = error {
        span.set_attribute(KeyValue::new("error.type", "jsonrpc_error"));
        span.set_status(Status::error(e));
    }
    span.end();
}

/// A JSON-RPC id as the conventions write it: a string's characters, a number's digits.
fn id_text(raw: &str) -> Box<str> {
    match serde_json::from_str::<Cow<'_, str>>(raw) {
        Ok(s) => s.into(),
        Err(_) => raw.into(),
    }
}

fn without_query(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}{}", uri.path()),
        _ => uri.path().to_owned(),
    }
}

/// `mcp.session.id`: the proxy's session id hashed (SHA-256, first 16 bytes, hex), so a trace
/// never holds a credential-like value, yet one session's spans share it.
pub fn session_hash(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
