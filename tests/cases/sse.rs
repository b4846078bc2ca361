//! SSE responses: streamed as they arrive, headers, keep-alives, limits.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// Regression guard for the proxy this one replaces, which buffered whole SSE responses: every
/// event must reach the client before the upstream sends the next one.
#[tokio::test]
async fn each_sse_event_arrives_before_the_next_is_sent() {
    let events = [
        "data: {\"progress\":1}\n\n",
        "data: {\"progress\":2}\n\n",
        "data: {\"progress\":3}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
    ];
    let mut upstream =
        MockUpstream::start(move |_| Reply::sse(&events, Duration::from_millis(200), false)).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let mut resp = post(&client(), &proxy.url(), &call(1, "slow")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    assert!(resp.headers().get("content-length").is_none());
    let (text, received_at) = read_events(&mut resp, 4).await;
    assert_eq!(text, events.concat(), "bytes forwarded unchanged");
    let mut sent_at = Vec::new();
    while sent_at.len() < 4 {
        if let Event::Sent(_, at) = upstream.next_event(Duration::from_secs(5)).await {
            sent_at.push(at);
        }
    }
    for i in 0..3 {
        assert!(
            received_at[i] < sent_at[i + 1],
            "event {i} waited for event {}",
            i + 1
        );
    }
    let metrics = proxy.metrics().await;
    assert_eq!(sample(&metrics, "shadowcat_sse_events_total"), Some(4.0));
}

#[tokio::test]
async fn get_stream_is_proxied_and_counted_while_active() {
    let upstream =
        MockUpstream::start(|_| Reply::sse(&["id: 1\ndata: {}\n\n"], Duration::ZERO, true)).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let mut resp = client()
        .get(proxy.url())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (text, _) = read_events(&mut resp, 1).await;
    assert_eq!(text, "id: 1\ndata: {}\n\n", "event ids pass through");
    let metrics = proxy.metrics().await;
    assert_eq!(sample(&metrics, "shadowcat_sse_streams_active"), Some(1.0));
    drop(resp);
    let mut gone = false;
    for _ in 0..100 {
        if sample(&proxy.metrics().await, "shadowcat_sse_streams_active") == Some(0.0) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gone,
        "the active-stream gauge falls back when the client leaves"
    );
    assert_eq!(
        proxy
            .settled(
                r#"shadowcat_requests_total{mcp_method="GET",status="200"}"#,
                1.0
            )
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn silent_stream_gets_keepalive_comments_then_idle_close() {
    let upstream =
        MockUpstream::start(|_| Reply::sse(&["data: first\n\n"], Duration::ZERO, true)).await;
    let mut config = config_for(&upstream.url());
    config.sse.keepalive = Some(Duration::from_millis(150));
    config.timeouts.idle_stream = Duration::from_millis(1000);
    let proxy = Proxy::start(config).await;
    let mut resp = client()
        .get(proxy.url())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(c)) = resp.chunk().await {
            text.push_str(&String::from_utf8_lossy(&c));
        }
    })
    .await;
    assert!(ended.is_ok(), "idle_stream closed the silent stream");
    assert!(text.starts_with("data: first\n\n"), "{text:?}");
    let keepalives = text.matches(": keepalive\n\n").count();
    assert!(
        keepalives >= 2,
        "keep-alive comments during silence: {text:?}"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(&metrics, "shadowcat_sse_events_total"),
        Some(1.0),
        "keep-alives are not events"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"shadowcat_upstream_errors_total{kind="idle_stream_timeout",upstream="mock"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn keepalive_never_splits_an_unfinished_event() {
    // The upstream stalls in the middle of an event; a comment block there would end it early.
    let upstream = MockUpstream::start(|_| Reply::Sse {
        chunks: vec![
            (Duration::ZERO, "data: hal".into()),
            (Duration::from_millis(700), "f\n\n".into()),
        ],
        hold: false,
    })
    .await;
    let mut config = config_for(&upstream.url());
    config.sse.keepalive = Some(Duration::from_millis(100));
    let proxy = Proxy::start(config).await;
    let resp = post(&client(), &proxy.url(), &call(1, "x")).await;
    let text = resp.text().await.unwrap();
    assert_eq!(text, "data: half\n\n");
}

#[tokio::test]
async fn oversized_sse_event_ends_the_stream_and_is_counted() {
    let big = format!("data: {}\n\n", "x".repeat(4096));
    let upstream = MockUpstream::start(move |_| Reply::Sse {
        chunks: vec![
            (Duration::ZERO, "data: small\n\n".into()),
            (Duration::from_millis(50), big.clone()),
            (Duration::ZERO, "data: after\n\n".into()),
        ],
        hold: false,
    })
    .await;
    let mut config = config_for(&upstream.url());
    config.limits.max_sse_event = 1024;
    let proxy = Proxy::start(config).await;
    let resp = post(
        &client(),
        &proxy.url(),
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/call"}),
    )
    .await;
    let mut body = Vec::new();
    let mut resp = resp;
    while let Ok(Some(c)) = resp.chunk().await {
        body.extend_from_slice(&c);
    }
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("data: small\n\n"));
    assert!(
        !text.contains("after"),
        "the stream ended at the oversized event"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"shadowcat_upstream_errors_total{kind="sse_event_too_large",upstream="mock"}"#
        ),
        Some(1.0)
    );
}

/// The client learns it got an SSE stream before the first event exists.
#[tokio::test]
async fn sse_headers_go_out_before_the_first_event() {
    let mut upstream =
        MockUpstream::start(|_| Reply::sse(&["data: late\n\n"], Duration::from_millis(500), false))
            .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let resp = post(&client(), &proxy.url(), &call(1, "x")).await;
    let headers_at = tokio::time::Instant::now();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let Event::Sent(0, sent_at) = upstream.next_event(Duration::from_secs(5)).await else {
        panic!("expected the first event")
    };
    assert!(headers_at < sent_at, "headers waited for the first event");
    assert_eq!(resp.text().await.unwrap(), "data: late\n\n");
}
