//! OpenTelemetry (issue 20): the spans of a session as a real OTLP receiver gets them (gRPC and
//! HTTP/protobuf), trace context continued from the client and passed to the upstream, and a
//! collector that dies mid-run costing requests nothing but counted drops.

use std::time::Duration;

use serde_json::json;
use shadowcat::config::{OtlpConfig, OtlpProtocol, TelemetryConfig};
use shadowcat::telemetry::session_hash;

use crate::support::otlp::{OtlpReceiver, Protocol, Received as Span};
use crate::support::*;

/// A client's trace: its trace id and the span the proxy's server span continues.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
/// Another client's trace, carried in `params._meta` only.
const META_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const META_SPAN: &str = "b7ad6b7169203331";

const KIND_SERVER: i32 = 2;
const KIND_CLIENT: i32 = 3;

fn traced(
    upstream: &MockUpstream,
    name: &str,
    receiver: &OtlpReceiver,
    meta: bool,
) -> shadowcat::config::Config {
    let mut config = config_for(&upstream.url());
    config.upstreams[0].name = name.into();
    config.telemetry = Some(TelemetryConfig {
        otlp: OtlpConfig {
            endpoint: match receiver.protocol {
                Protocol::Grpc => receiver.endpoint(),
                Protocol::Http => format!("{}/v1/traces", receiver.endpoint()),
            },
            protocol: match receiver.protocol {
                Protocol::Grpc => OtlpProtocol::Grpc,
                Protocol::Http => OtlpProtocol::Http,
            },
            headers: vec![("x-api-key".into(), "test-key".into())],
        },
        sample_ratio: 1.0,
        service_name: format!("shadowcat-{name}"),
        propagate_in_meta: meta,
    });
    config
}

/// An upstream with sessions: `initialize` (JSON, with its session id), `tools/call` of
/// `echo` (JSON) and of `slow` (SSE: a progress notification, then the answer).
async fn session_upstream() -> MockUpstream {
    MockUpstream::start(|r| {
        let body = r.json();
        let id = body["id"].clone();
        match (body["method"].as_str(), body["params"]["name"].as_str()) {
            (Some("initialize"), _) => Reply::Full {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("mcp-session-id".into(), "upstream-session-1".into()),
                ],
                body: json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"m","version":"1"}}})
                    .to_string()
                    .into_bytes(),
            },
            (_, Some("slow")) => {
                let progress = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}});
                let answer = json!({"jsonrpc":"2.0","id":id,"result":{"content":[]}});
                Reply::sse(
                    &[
                        &format!("data: {progress}\n\n"),
                        &format!("data: {answer}\n\n"),
                    ],
                    Duration::from_millis(20),
                    false,
                )
            }
            _ => Reply::json(json!({"jsonrpc":"2.0","id":id,"result":{"content":[]}})),
        }
    })
    .await
}

fn find<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no span {name:?}"))
}

fn by_id<'a>(spans: &'a [Span], id: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.span_id() == id)
        .unwrap_or_else(|| panic!("no span with id {id}"))
}

#[tokio::test]
async fn a_sessions_spans_reach_a_grpc_collector_with_links_attributes_and_context() {
    access_log::capture();
    let receiver = OtlpReceiver::start(Protocol::Grpc).await;
    let upstream = session_upstream().await;
    let proxy = Proxy::start(traced(&upstream, "otel-grpc", &receiver, false)).await;
    let http = client();

    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    // The token goes with every request (the session is bound to it); it must never be traced.
    let resp = http
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("authorization", "Bearer token-never-traced")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    // A call with the client's trace in its headers, and an argument that must not be traced.
    let mut echo = call(2, "echo");
    echo["params"]["arguments"] = json!({"secret": "argument-value-never-traced"});
    let resp = http
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .header("authorization", "Bearer token-never-traced")
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "client=1")
        .body(echo.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // An SSE call whose trace comes in `params._meta` only.
    let mut slow = call(3, "slow");
    slow["params"]["_meta"] = json!({"traceparent": format!("00-{META_TRACE}-{META_SPAN}-01")});
    let mut resp = http
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .header("authorization", "Bearer token-never-traced")
        .body(slow.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    read_events(&mut resp, 2).await;

    let spans = receiver
        .wait_for(|s| {
            s.iter().filter(|s| s.span.kind == KIND_CLIENT).count() >= 3
                && s.iter().any(|s| s.name() == "tools/call slow")
                && s.iter().filter(|s| s.name() == "POST /mcp").count() >= 3
        })
        .await;
    assert!(spans.iter().all(|s| s.service == "shadowcat-otel-grpc"));

    // The call with a traceparent header: the server span continues the client's trace.
    let call_span = find(&spans, "tools/call echo");
    let server = by_id(&spans, &call_span.parent_id());
    assert_eq!(server.name(), "POST /mcp");
    assert_eq!(server.span.kind, KIND_SERVER);
    assert_eq!(server.trace_id(), CLIENT_TRACE);
    assert_eq!(server.parent_id(), CLIENT_SPAN);
    assert_eq!(server.attr("http.request.method").as_deref(), Some("POST"));
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(server.attr("url.path").as_deref(), Some("/mcp"));
    // The message span: MCP conventions, the session as a hash only.
    assert_eq!(call_span.trace_id(), CLIENT_TRACE);
    assert_eq!(
        call_span.attr("mcp.method.name").as_deref(),
        Some("tools/call")
    );
    assert_eq!(call_span.attr("gen_ai.tool.name").as_deref(), Some("echo"));
    assert_eq!(call_span.attr("jsonrpc.request.id").as_deref(), Some("2"));
    assert_eq!(
        call_span.attr("mcp.protocol.version").as_deref(),
        Some("2025-06-18")
    );
    let hash = session_hash(&session);
    assert_eq!(call_span.attr("mcp.session.id"), Some(hash.clone()));
    assert_eq!(server.attr("mcp.session.id"), Some(hash));
    // The upstream attempt: a CLIENT span under the server span, whose context the upstream got.
    let client_span = spans
        .iter()
        .find(|s| s.span.kind == KIND_CLIENT && s.parent_id() == server.span_id())
        .expect("a CLIENT span under the call's server span");
    assert_eq!(
        client_span.attr("shadowcat.upstream").as_deref(),
        Some("otel-grpc")
    );
    assert_eq!(
        client_span.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    let seen = upstream.received();
    let echo_seen = seen
        .iter()
        .find(|r| r.json()["params"]["name"] == "echo")
        .unwrap();
    assert_eq!(
        echo_seen.header("traceparent"),
        Some(format!("00-{CLIENT_TRACE}-{}-01", client_span.span_id()).as_str()),
        "the upstream gets the proxy's span context"
    );
    assert_eq!(echo_seen.header("tracestate"), Some("client=1"));
    assert!(
        echo_seen.json()["params"].get("_meta").is_none(),
        "without propagate_in_meta the body is untouched"
    );

    // The SSE call: its trace from `_meta`; the span ends with the answer, first byte and
    // progress recorded.
    let slow_span = find(&spans, "tools/call slow");
    assert_eq!(slow_span.trace_id(), META_TRACE);
    let slow_server = by_id(&spans, &slow_span.parent_id());
    assert_eq!(slow_server.parent_id(), META_SPAN);
    assert!(slow_span.has_event("first_byte"));
    assert_eq!(slow_span.attr("mcp.progress.count").as_deref(), Some("1"));

    // initialize: its own trace (no parent), a root server span.
    let init_span = find(&spans, "initialize");
    let init_server = by_id(&spans, &init_span.parent_id());
    assert!(init_server.span.parent_span_id.is_empty());
    assert_eq!(
        init_span.attr("mcp.session.id"),
        Some(session_hash(&session)),
        "the session an initialize creates is on its span"
    );

    // Nothing secret anywhere: no argument value, no token, no raw session id.
    let dump = format!("{spans:?}");
    for secret in [
        "argument-value-never-traced",
        "token-never-traced",
        &session,
        "upstream-session-1",
    ] {
        assert!(!dump.contains(secret), "{secret} leaked into a span");
    }

    // The access log carries the server span's ids.
    let lines = access_log::lines("otel-grpc", 3).await;
    let line = lines
        .iter()
        .find(|l| l.contains(CLIENT_TRACE))
        .unwrap_or_else(|| panic!("no access line with the trace id: {lines:?}"));
    assert!(
        line.contains(&format!("span_id=\"{}\"", server.span_id())),
        "{line}"
    );
}

#[tokio::test]
async fn otlp_http_export_and_trace_context_in_meta() {
    let receiver = OtlpReceiver::start(Protocol::Http).await;
    let upstream = MockUpstream::start(|r| {
        Reply::json(json!({"jsonrpc":"2.0","id":r.json()["id"],"result":{"content":[]}}))
    })
    .await;
    let proxy = Proxy::start(traced(&upstream, "otel-http", &receiver, true)).await;
    let resp = post(&client(), &proxy.url(), &call(7, "lookup")).await;
    assert_eq!(resp.status(), 200);

    let spans = receiver
        .wait_for(|s| s.iter().any(|s| s.span.kind == KIND_CLIENT) && s.len() >= 3)
        .await;
    let call_span = find(&spans, "tools/call lookup");
    let client_span = spans.iter().find(|s| s.span.kind == KIND_CLIENT).unwrap();
    assert_eq!(client_span.trace_id(), call_span.trace_id());
    let seen = &upstream.received()[0];
    let expected = format!("00-{}-{}-01", client_span.trace_id(), client_span.span_id());
    assert_eq!(seen.header("traceparent"), Some(expected.as_str()));
    // propagate_in_meta: the message carries the same context; the rest of it is unchanged.
    let body = seen.json();
    assert_eq!(body["params"]["_meta"]["traceparent"], expected.as_str());
    assert_eq!(body["params"]["name"], "lookup");
    assert_eq!(body["id"], 7);
}

#[tokio::test]
async fn unsampled_requests_export_nothing_yet_pass_a_context_on() {
    let receiver = OtlpReceiver::start(Protocol::Grpc).await;
    let upstream = MockUpstream::start(|r| {
        Reply::json(json!({"jsonrpc":"2.0","id":r.json()["id"],"result":{}}))
    })
    .await;
    let mut config = traced(&upstream, "otel-unsampled", &receiver, false);
    config.telemetry.as_mut().unwrap().sample_ratio = 0.0;
    let proxy = Proxy::start(config).await;
    let http = client();
    assert_eq!(post(&http, &proxy.url(), &call(1, "a")).await.status(), 200);
    // A sampled client trace is still followed (parent-based sampling).
    let resp = http
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .body(call(2, "b").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spans = receiver
        .wait_for(|s| s.iter().any(|s| s.name() == "tools/call b"))
        .await;
    assert!(
        spans.iter().all(|s| s.trace_id() == CLIENT_TRACE),
        "only the client's sampled trace"
    );
    let seen = upstream.received();
    let unsampled = seen[0]
        .header("traceparent")
        .expect("a context even when not sampled");
    assert!(
        unsampled.starts_with("00-") && unsampled.ends_with("-00"),
        "{unsampled}"
    );
    assert!(!unsampled.contains(CLIENT_TRACE));
}

#[tokio::test]
async fn a_collector_that_stops_mid_run_costs_requests_nothing_and_drops_are_counted() {
    let receiver = OtlpReceiver::start(Protocol::Grpc).await;
    let upstream = MockUpstream::start(|r| {
        Reply::json(json!({"jsonrpc":"2.0","id":r.json()["id"],"result":{}}))
    })
    .await;
    let proxy = Proxy::start(traced(&upstream, "otel-dead", &receiver, false)).await;
    let http = client();
    for i in 0..5 {
        assert_eq!(
            post(&http, &proxy.url(), &call(i, "before")).await.status(),
            200
        );
    }
    receiver
        .wait_for(|s| s.iter().filter(|s| s.name() == "tools/call before").count() == 5)
        .await;
    assert_eq!(
        sample(&proxy.metrics().await, "shadowcat_telemetry_dropped_total"),
        Some(0.0)
    );

    receiver.stop();
    // Requests keep being answered at once while exports fail behind them.
    for i in 0..40 {
        let sent = tokio::time::timeout(
            Duration::from_secs(2),
            post(&http, &proxy.url(), &call(i, "after")),
        )
        .await
        .expect("a request is never held up by the collector");
        assert_eq!(sent.status(), 200);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let dropped = proxy
        .settled_when("shadowcat_telemetry_dropped_total", |v| v >= 40.0)
        .await;
    assert!(
        dropped.is_some_and(|v| v >= 40.0),
        "the spans of requests after the collector died are counted: {dropped:?}"
    );
    assert!(receiver
        .spans()
        .iter()
        .all(|s| s.name() != "tools/call after"));
}

#[tokio::test]
async fn rule_actions_and_rate_limits_are_events_with_the_rule_name() {
    let receiver = OtlpReceiver::start(Protocol::Grpc).await;
    let upstream = MockUpstream::start(|r| {
        Reply::json(json!({"jsonrpc":"2.0","id":r.json()["id"],"result":{}}))
    })
    .await;
    let mut config = traced(&upstream, "otel-events", &receiver, false);
    config.interceptors.rules = shadowcat::interceptor::RuleSet::from_yaml(
        "rules:\n  - name: no-danger\n    match: {method: tools/call, tool: danger}\n    action: {block: {code: -32001, message: \"no\"}}\n",
    )
    .unwrap();
    config.rate_limits.per_ip = Some(shadowcat::config::Rate {
        rate: 2,
        per: Duration::from_secs(3600),
        burst: 2,
    });
    let proxy = Proxy::start(config).await;
    let http = client();
    let blocked: serde_json::Value = post(&http, &proxy.url(), &call(1, "danger"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(blocked["error"]["code"], -32001, "{blocked}");
    assert_eq!(
        post(&http, &proxy.url(), &call(2, "fine")).await.status(),
        200
    );
    assert_eq!(
        post(&http, &proxy.url(), &call(3, "fine")).await.status(),
        429
    );

    let spans = receiver
        .wait_for(|s| {
            s.iter().any(|s| s.has_event("shadowcat.interceptor"))
                && s.iter().any(|s| s.has_event("shadowcat.rate_limited"))
        })
        .await;
    let rule = spans
        .iter()
        .find(|s| s.has_event("shadowcat.interceptor"))
        .unwrap();
    assert_eq!(rule.name(), "POST /mcp");
    assert_eq!(
        rule.event_attr("shadowcat.interceptor", "shadowcat.rule")
            .as_deref(),
        Some("no-danger")
    );
    assert_eq!(
        rule.event_attr("shadowcat.interceptor", "shadowcat.action")
            .as_deref(),
        Some("block")
    );
    let limited = spans
        .iter()
        .find(|s| s.has_event("shadowcat.rate_limited"))
        .unwrap();
    assert_eq!(
        limited
            .event_attr("shadowcat.rate_limited", "shadowcat.rule")
            .as_deref(),
        Some("ip")
    );
    assert_eq!(
        limited.attr("http.response.status_code").as_deref(),
        Some("429")
    );
}
