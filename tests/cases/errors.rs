//! Failures: each gets the right status and a JSON-RPC error body with the request's id.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn upstream_down_is_502_with_the_request_id() {
    // Regression: the port was bound and dropped, so a parallel test could take it and the
    // request went there (flaky `connect_refused` count).
    let (_hold, dead) = refused_addr();
    let proxy = Proxy::start(config_for(&format!("http://{dead}/mcp"))).await;
    let resp = post(
        &client(),
        &proxy.url(),
        &json!({"jsonrpc":"2.0","id":"req-9","method":"tools/list"}),
    )
    .await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], "req-9");
    assert_eq!(body["error"]["code"], -32002);
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"shadowcat_upstream_errors_total{kind="connect_refused",upstream="mock"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        proxy
            .settled(
                r#"shadowcat_requests_total{mcp_method="tools/list",status="502"}"#,
                1.0
            )
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn upstream_that_hangs_up_is_502() {
    let upstream = MockUpstream::start(|_| Reply::Hangup).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let resp = post(&client(), &proxy.url(), &call(4, "x")).await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 4);
}

#[tokio::test]
async fn slow_upstream_response_is_504() {
    let upstream = MockUpstream::start(|_| {
        Reply::After(Duration::from_secs(3), Box::new(Reply::json(json!({}))))
    })
    .await;
    let mut config = config_for(&upstream.url());
    config.timeouts.request = Duration::from_millis(300);
    let proxy = Proxy::start(config).await;
    let resp = post(&client(), &proxy.url(), &call(11, "slow")).await;
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 11);
    assert_eq!(body["error"]["code"], -32003);
}

#[tokio::test]
async fn body_over_max_body_is_413_declared_or_streamed() {
    let upstream = MockUpstream::start(|_| Reply::json(json!({}))).await;
    let mut config = config_for(&upstream.url());
    config.limits.max_body = 100 * 1024;
    let proxy = Proxy::start(config).await;
    let client = client();
    let big = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"blob":"x".repeat(200 * 1024)}});
    // Declared length over the limit: refused before reading or contacting the upstream.
    let resp = post(&client, &proxy.url(), &big).await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32004);
    assert!(upstream.received().is_empty());

    // Chunked (no length): refused once the count passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .to_string()
        .into_bytes()
        .chunks(16 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let resp = client
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    match resp {
        Ok(resp) => assert_eq!(resp.status(), 413),
        // The proxy may answer and close while the client is still sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    let series = r#"shadowcat_requests_total{mcp_method="unknown",status="413"}"#;
    assert!(
        proxy
            .settled_when(series, |v| v >= 1.0)
            .await
            .is_some_and(|v| v >= 1.0),
        "{}",
        proxy.metrics().await
    );
}

#[tokio::test]
async fn garbage_bodies_are_forwarded_unchanged() {
    let upstream = MockUpstream::start(|_| Reply::status(400, "bad json")).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let resp = client()
        .post(proxy.url())
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, b'{', 0])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.text().await.unwrap(), "bad json");
    assert_eq!(upstream.received()[0].body, vec![0xff, 0xfe, b'{', 0]);
}

/// Regression: error answers that close the connection added `Connection: close`, which is a
/// protocol error in HTTP/2, so h2c clients got a broken stream instead of the JSON-RPC error.
#[tokio::test]
async fn regression_error_answers_over_h2c() {
    let (_hold, dead) = refused_addr();
    let proxy = Proxy::start(config_for(&format!("http://{dead}/mcp"))).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = post(&h2, &proxy.url(), &call(5, "x")).await;
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 5);
    let big = json!({"jsonrpc":"2.0","id":6,"method":"x","params":{"b":"x".repeat(5 << 20)}});
    let resp = post(&h2, &proxy.url(), &big).await;
    assert_eq!(resp.status(), 413);
}
