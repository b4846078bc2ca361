//! Server messages: SSE events on POST and GET streams, responses edited by the request they
//! answer.

use std::time::Duration;

use serde_json::{json, Value};

use super::{with_rules, RULES};
use crate::support::*;

#[tokio::test]
async fn sse_responses_drop_exactly_one_event_and_hide_tools() {
    let upstream = MockUpstream::start(|req| {
        if req.json()["method"] == "tools/list" {
            return Reply::sse(
                &["id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"tools\":[{\"name\":\"admin_x\"},{\"name\":\"echo\"}]}}\n\n"],
                Duration::ZERO,
                false,
            );
        }
        Reply::sse(
            &[
                "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"a\"}}\n\n",
                "id: 2\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"debug\",\"data\":\"b\"}}\n\n",
                // An event split across two upstream writes.
                "id: 3\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/pro",
                "gress\",\"params\":{\"progress\":1}}\n\n",
                "id: 4\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
            ],
            Duration::from_millis(20),
            false,
        )
    })
    .await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    let text = post(&client, &proxy.url(), &call(1, "slow"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        text,
        "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"a\"}}\n\n\
         id: 3\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n\
         id: 4\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
        "the debug log is gone; every other event leaves as its original bytes"
    );
    let text = post(
        &client,
        &proxy.url(),
        &json!({"jsonrpc":"2.0","id":9,"method":"tools/list"}),
    )
    .await
    .text()
    .await
    .unwrap();
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let got: Value = serde_json::from_str(data).unwrap();
    assert_eq!(got["result"]["tools"], json!([{"name": "echo"}]));
    assert!(
        text.starts_with("id: 1\n"),
        "the event keeps its id: {text}"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"shadowcat_interceptor_actions_total{action="drop",rule="drop-debug"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn get_stream_events_are_judged_one_by_one() {
    let upstream = MockUpstream::start(|_| {
        Reply::sse(
            &[
                "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"debug\"}}\n\n",
                "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{}}\n\n",
            ],
            Duration::from_millis(10),
            true,
        )
    })
    .await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let mut resp = client()
        .get(proxy.url())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let (text, _) = read_events(&mut resp, 1).await;
    assert_eq!(
        text,
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{}}\n\n"
    );
}

#[tokio::test]
async fn responses_on_sse_streams_are_edited_by_the_request_they_answer() {
    let upstream = MockUpstream::start(|req| {
        let id = req.json()["id"].clone();
        let result = format!(
            "id: 7\ndata: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"secret\":1,\"content\":[]}}}}\n\n"
        );
        Reply::Sse {
            chunks: vec![
                (Duration::ZERO, "id: 6\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n".into()),
                (Duration::from_millis(10), result),
            ],
            hold: false,
        }
    })
    .await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    let text = post(&client, &proxy.url(), &call(21, "echo"))
        .await
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 2, "{text}");
    assert!(
        events[0].starts_with("id: 6\ndata: "),
        "untouched event as it came"
    );
    assert!(
        events[1].starts_with("id: 7\n"),
        "the edited event keeps its id: {text}"
    );
    let data = events[1]
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let got: Value = serde_json::from_str(data).unwrap();
    assert_eq!(got["result"], json!({"tagged": true, "content": []}));
    // A response to another tool is left as its bytes.
    let text = post(&client, &proxy.url(), &call(22, "other"))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"secret\":1"), "{text}");
}
