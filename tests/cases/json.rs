//! JSON responses, statuses passed through, request rewriting, h2c, routing.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn json_response_passes_through_with_request_rewritten() {
    let upstream = MockUpstream::start(|req| {
        let id = req.json()["id"].clone();
        Reply::Full {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("mcp-session-id".into(), "s-1".into()),
            ],
            body: json!({"jsonrpc":"2.0","id":id,"result":{"ok":true}})
                .to_string()
                .into_bytes(),
        }
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    let body = call(7, "echo");
    let resp = client
        .post(format!("{}?trace=1", proxy.url()))
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .header("mcp-protocol-version", "2025-11-25")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("mcp-session-id").is_none(),
        "an upstream session id outside an initialize answer is never forwarded"
    );
    let got: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(got, json!({"jsonrpc":"2.0","id":7,"result":{"ok":true}}));

    let seen = &upstream.received()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.path, "/mcp?trace=1",
        "upstream path plus the downstream query"
    );
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr.to_string().as_str())
    );
    assert_eq!(
        seen.header("accept-encoding"),
        None,
        "SSE must come back uncompressed"
    );
    assert_eq!(seen.header("mcp-protocol-version"), Some("2025-11-25"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.body,
        body.to_string().into_bytes(),
        "body forwarded byte for byte"
    );
}

#[tokio::test]
async fn upstream_statuses_and_bodies_pass_through_unchanged() {
    let upstream = MockUpstream::start(|req| match (req.method.as_str(), req.json()["method"].as_str()) {
        ("POST", Some("notifications/initialized")) => Reply::Full { status: 202, headers: vec![], body: vec![] },
        ("POST", Some("server/discover")) => {
            Reply::status(400, r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: Server not initialized"}}"#)
        }
        ("GET", _) => Reply::status(405, "Method Not Allowed"),
        ("DELETE", _) => Reply::Full { status: 200, headers: vec![], body: vec![] },
        _ => Reply::status(404, r#"{"error":"session not found"}"#),
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();

    let resp = post(
        &client,
        &proxy.url(),
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(resp.status(), 202);
    assert!(
        resp.bytes().await.unwrap().is_empty(),
        "202 carries no body"
    );

    let resp = client
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "server/discover")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"server/discover"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        400,
        "a 2026 client falls back on this exact 400"
    );
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Server not initialized"));

    let resp = client
        .get(proxy.url())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.text().await.unwrap(), "Method Not Allowed");

    let resp = client.delete(proxy.url()).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let resp = post(&client, &proxy.url(), &call(3, "x")).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":"session not found"}"#
    );

    let methods: Vec<String> = upstream
        .received()
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(methods, ["POST", "POST", "GET", "DELETE", "POST"]);
}

#[tokio::test]
async fn other_paths_and_methods_are_answered_by_the_proxy() {
    let upstream = MockUpstream::start(|_| Reply::json(json!({}))).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    let resp = client
        .post(format!("http://{}/other", proxy.addr))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    let resp = client.put(proxy.url()).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST, DELETE, OPTIONS");
    assert!(
        upstream.received().is_empty(),
        "the upstream was never contacted"
    );
}

#[tokio::test]
async fn h2c_downstream_gets_json_and_sse() {
    let upstream = MockUpstream::start(|req| match req.method.as_str() {
        "GET" => Reply::sse(
            &["data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n"],
            std::time::Duration::from_millis(20),
            false,
        ),
        _ => Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}})),
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = post(&h2, &proxy.url(), &call(1, "x")).await;
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let mut resp = h2
        .get(proxy.url())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let (text, _) = read_events(&mut resp, 2).await;
    assert!(text.contains("{\"n\":2}"));
}

#[tokio::test]
async fn bodies_larger_than_the_pre_read_buffer_stream_through_intact() {
    let upstream = MockUpstream::start(|req| {
        Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{"len":req.body.len()}}))
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let big = "x".repeat(300 * 1024);
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"blob":big}}});
    let resp = post(&client(), &proxy.url(), &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.received()[0].body, body.to_string().into_bytes());
    assert_eq!(
        proxy
            .settled(
                r#"shadowcat_requests_total{mcp_method="tools/call",status="200"}"#,
                1.0
            )
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn admin_listener_serves_health_and_metrics_only() {
    let upstream = MockUpstream::start(|_| Reply::json(json!({}))).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let get = |path: &'static str| {
        let url = format!("http://{}{path}", proxy.admin);
        async move { reqwest::get(url).await.unwrap() }
    };
    assert_eq!(get("/healthz").await.status(), 200);
    assert_eq!(get("/readyz").await.status(), 200);
    assert_eq!(get("/nope").await.status(), 404);
    let metrics = get("/metrics").await;
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    // Label-less metrics are there from the start; labelled ones appear with their first sample.
    assert!(
        text.contains("# TYPE shadowcat_sse_streams_active gauge"),
        "{text}"
    );
    // The MCP listener does not expose metrics.
    let resp = client()
        .get(format!("http://{}/metrics", proxy.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
