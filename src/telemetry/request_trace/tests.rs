//! A request's spans, recorded by an in-process exporter: batch members, SSE answers by id,
//! progress counts, the session hash, sampling.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracerProvider, SimpleSpanProcessor, SpanData, SpanExporter,
};

use super::*;
use crate::mcp::peek::peek;

#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Recorder {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn provider(ratio: f64) -> (SdkTracerProvider, Recorder) {
    let recorder = Recorder::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(SimpleSpanProcessor::new(recorder.clone()))
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .build();
    (provider, recorder)
}

fn trace(provider: &SdkTracerProvider, headers: &http::HeaderMap) -> RequestTrace {
    RequestTrace::new(
        provider.tracer("test"),
        &ServerRequest {
            headers,
            method: &http::Method::POST,
            path: "/mcp",
            scheme: "http",
            client: Some("127.0.0.1".parse().unwrap()),
            http_version: "1.1",
        },
    )
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[test]
fn a_batch_gets_a_span_per_message_and_sse_answers_end_them_by_id() {
    let (provider, recorder) = provider(1.0);
    let mut t = trace(&provider, &http::HeaderMap::new());
    let body = br#"[{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"k":"v"}}},
        {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///x"}},
        {"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
    let p = peek(body).unwrap();
    t.on_messages(body, p.messages(), "2025-03-26");
    t.on_sse_start(1 << 20);
    t.on_sse_chunk(&Bytes::from_static(
        b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-1,\"message\":\"no\"}}\n\n",
    ));
    let ended: Vec<String> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(
        ended,
        vec!["resources/read"],
        "an answer ends its own request's span only"
    );
    t.on_sse_chunk(&Bytes::from_static(
        b"data: {\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{}}\n\n",
    ));
    t.finish(200, Some("session-1"), None);
    let spans = recorder.0.lock().unwrap().clone();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        vec![
            "resources/read",
            "tools/call echo",
            "notifications/initialized",
            "POST /mcp"
        ]
    );
    let server = &spans[3];
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(
        server.parent_span_id,
        opentelemetry::trace::SpanId::INVALID,
        "no incoming context: a root span"
    );
    for s in &spans[..3] {
        assert_eq!(s.parent_span_id, server.span_context.span_id());
        assert_eq!(s.span_context.trace_id(), server.span_context.trace_id());
    }
    let read = &spans[0];
    assert_eq!(attr(read, "mcp.resource.uri").as_deref(), Some("file:///x"));
    assert_eq!(attr(read, "jsonrpc.request.id").as_deref(), Some("2"));
    assert_eq!(attr(read, "mcp.progress.count").as_deref(), Some("1"));
    assert_eq!(attr(read, "error.type").as_deref(), Some("jsonrpc_error"));
    let call = &spans[1];
    assert_eq!(
        attr(call, "jsonrpc.request.id").as_deref(),
        Some("a"),
        "a string id unquoted"
    );
    assert_eq!(attr(call, "gen_ai.tool.name").as_deref(), Some("echo"));
    assert!(call.events.iter().any(|e| e.name == "first_byte"));
    assert!(
        format!("{spans:?}").find("\"v\"").is_none(),
        "argument values are never recorded"
    );
    assert_eq!(
        attr(&spans[2], "jsonrpc.request.id"),
        None,
        "a notification has no id"
    );
    assert_eq!(
        attr(server, "mcp.session.id"),
        Some(session_hash("session-1"))
    );
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        t.ids(),
        Some((
            server.span_context.trace_id().to_string(),
            server.span_context.span_id().to_string(),
        ))
    );
}

#[test]
fn the_client_span_is_what_the_upstream_request_carries() {
    let (provider, recorder) = provider(1.0);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    let mut t = trace(&provider, &headers);
    let uri: http::Uri = "http://10.0.0.1:3001/mcp?x=1".parse().unwrap();
    t.start_client("one", &uri, "POST");
    t.start_client("two", &uri, "POST");
    let fields = t.upstream_fields();
    t.end_client(Some(502), None);
    t.finish(502, None, Some("upstream_error"));
    let spans = recorder.0.lock().unwrap().clone();
    let retried = &spans[0];
    assert_eq!(attr(retried, "shadowcat.upstream").as_deref(), Some("one"));
    assert_eq!(attr(retried, "error.type").as_deref(), Some("retried"));
    let client = &spans[1];
    assert_eq!(client.span_kind, SpanKind::Client);
    assert_eq!(
        attr(client, "url.full").as_deref(),
        Some("http://10.0.0.1:3001/mcp")
    );
    assert_eq!(attr(client, "server.port").as_deref(), Some("3001"));
    assert_eq!(
        fields[0].1,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            client.span_context.span_id()
        )
    );
    let server = &spans[2];
    assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(matches!(
        server.status,
        opentelemetry::trace::Status::Error { .. }
    ));
}

#[test]
fn unsampled_requests_record_nothing_but_still_have_a_context() {
    let (provider, recorder) = provider(0.0);
    let mut t = trace(&provider, &http::HeaderMap::new());
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    t.on_messages(body, peek(body).unwrap().messages(), "2025-06-18");
    t.start_client("u", &"http://h/mcp".parse().unwrap(), "POST");
    let fields = t.upstream_fields();
    assert!(fields[0].1.ends_with("-00"), "{fields:?}");
    t.finish(200, Some("s"), None);
    assert!(recorder.0.lock().unwrap().is_empty());
    assert_eq!(t.ids(), None);
}

#[test]
fn session_hashes_are_stable_and_not_the_id() {
    let h = session_hash("abc");
    assert_eq!(h.len(), 32);
    assert_eq!(h, session_hash("abc"));
    assert_ne!(h, session_hash("abd"));
    assert!(!h.contains("abc"));
}
