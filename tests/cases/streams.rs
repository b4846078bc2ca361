//! Connection-level behaviour: downstream disconnects, many concurrent streams.

use std::time::Duration;

use crate::support::*;

/// In MCP 2026-07-28 closing a request's stream cancels it, so the upstream must see the
/// downstream go away at once.
#[tokio::test]
async fn downstream_disconnect_closes_the_upstream_request() {
    let mut upstream =
        MockUpstream::start(|_| Reply::sse(&["data: {\"progress\":1}\n\n"], Duration::ZERO, true))
            .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    let mut resp = client
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "slow")
        .body(call(1, "slow").to_string())
        .send()
        .await
        .unwrap();
    read_events(&mut resp, 1).await;
    drop(resp);
    drop(client);
    upstream.wait_peer_closed(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_thousand_concurrent_sse_streams() {
    const STREAMS: usize = 1000;
    let upstream = MockUpstream::start(|_| {
        Reply::sse(
            &["data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n"],
            Duration::from_millis(300),
            false,
        )
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let url = proxy.url();
    let mut tasks = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // One connection per stream, as separate clients would have.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let resp = post(&client, &url, &call(i as u64, "x")).await;
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }));
    }
    let mut done = 0;
    for t in tasks {
        let text = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("stream finished")
            .unwrap();
        assert_eq!(text, "data: {\"n\":1}\n\ndata: {\"n\":2}\n\n");
        done += 1;
    }
    assert_eq!(done, STREAMS);
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(&metrics, "shadowcat_sse_events_total"),
        Some(2.0 * STREAMS as f64)
    );
}

/// Regression: Pingora 0.9 cannot pool the virtual (watchdog) sockets, so every request opened
/// a new upstream connection (measured: 50 requests, 50 connections). The connector's own idle
/// pool must carry sequential requests over one connection.
#[tokio::test]
async fn regression_upstream_connections_are_reused() {
    let upstream = MockUpstream::start(|_| {
        Reply::json(serde_json::json!({"jsonrpc":"2.0","id":1,"result":{}}))
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    for i in 0..30 {
        assert_eq!(
            post(&client, &proxy.url(), &call(i, "x")).await.status(),
            200
        );
    }
    // SSE responses end cleanly too, and their connection is reused as well.
    assert!(
        upstream.connections() <= 2,
        "{} upstream connections for 30 requests",
        upstream.connections()
    );
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_reused() {
    let upstream = MockUpstream::start(|req| {
        if req.json()["id"] == 1 {
            // Answer, then close (as a server hitting its keep-alive timeout would).
            Reply::Full {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("connection".into(), "close".into()),
                ],
                body: br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec(),
            }
        } else {
            Reply::json(serde_json::json!({"jsonrpc":"2.0","id":2,"result":{}}))
        }
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    assert_eq!(
        post(&client, &proxy.url(), &call(1, "x")).await.status(),
        200
    );
    assert_eq!(
        post(&client, &proxy.url(), &call(2, "x")).await.status(),
        200,
        "a fresh connection, no 502"
    );
    assert_eq!(upstream.connections(), 2);
}
