//! Client messages: block, mock, set/remove, hidden tools, delay, drop, batches, large bodies,
//! MCP 2026-07-28 headers.

use std::time::Duration;

use serde_json::{json, Value};

use super::{echo_upstream, with_rules, RULES};
use crate::support::*;

#[tokio::test]
async fn blocked_calls_get_a_jsonrpc_error_and_never_reach_the_upstream() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    let resp = post(&client, &proxy.url(), &call(7, "delete_file")).await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["id"], 7);
    assert_eq!(got["error"]["code"], -32001);
    assert_eq!(got["error"]["message"], "deletes are disabled here");
    assert!(upstream.received().is_empty(), "the upstream never saw it");

    // Other tools pass, on the same keep-alive connection.
    let got: Value = post(&client, &proxy.url(), &call(8, "echo"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["result"]["got"]["params"]["name"], "echo");
    assert_eq!(
        got["result"]["tagged"], true,
        "the JSON response was rewritten"
    );
    assert_eq!(upstream.received().len(), 1);
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"shadowcat_interceptor_actions_total{action="block",rule="block-deletes"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn mocks_answer_json_or_sse_without_the_upstream() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    let got: Value = post(&client, &proxy.url(), &call(3, "get_weather"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        got,
        json!({"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"sunny"}]}})
    );
    // A client that takes only SSE gets the mock as one SSE event.
    let resp = client
        .post(proxy.url())
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(call(4, "get_weather").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let got: Value = serde_json::from_str(data).unwrap();
    assert_eq!(got["id"], 4);
    assert_eq!(got["result"]["content"][0]["text"], "sunny");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn set_and_remove_reach_the_upstream() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let body = json!({"jsonrpc":"2.0","id":5,"method":"tools/call",
        "params":{"name":"search","arguments":{"q":"cats","limit":5000,"debug":true}}});
    let got: Value = post(&client(), &proxy.url(), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], 5);
    let seen = &upstream.received()[0];
    assert_eq!(
        seen.json()["params"]["arguments"],
        json!({"q": "cats", "limit": 10})
    );
    assert_eq!(
        seen.header("content-length"),
        Some(seen.body.len().to_string().as_str()),
        "the length matches the rewritten body"
    );
}

#[tokio::test]
async fn hidden_tools_are_hidden_from_lists_and_refused_when_called() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let got: Value = post(&client, &proxy.url(), &list)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["result"]["tools"], json!([{"name": "echo"}]));
    let got: Value = post(&client, &proxy.url(), &call(2, "admin_reset"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["error"]["code"], -32602);
    assert_eq!(got["id"], 2);
    assert_eq!(
        upstream.received().len(),
        1,
        "only tools/list went upstream"
    );
}

#[tokio::test]
async fn delay_holds_the_request_and_drop_answers_202() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    let read =
        json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}});
    let start = tokio::time::Instant::now();
    let resp = post(&client, &proxy.url(), &read).await;
    assert_eq!(resp.status(), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "delayed by the rule"
    );
    let note = json!({"jsonrpc":"2.0","method":"notifications/roots/list_changed"});
    let resp = post(&client, &proxy.url(), &note).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(
        upstream.received().len(),
        1,
        "the dropped notification stayed here"
    );
}

#[tokio::test]
async fn a_batch_partly_answered_here_gets_one_merged_reply() {
    let upstream = MockUpstream::start(|req| {
        let batch = req.json();
        let answers: Vec<Value> = batch
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m.get("id").is_some())
            .map(|m| json!({"jsonrpc":"2.0","id":m["id"],"result":{"from":"upstream"}}))
            .collect();
        if answers.is_empty() {
            return Reply::Full {
                status: 202,
                headers: vec![],
                body: vec![],
            };
        }
        Reply::json(Value::Array(answers))
    })
    .await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    let batch = json!([call(1, "echo"), call(2, "delete_x"), call(3, "get_weather")]);
    let got: Value = post(&client, &proxy.url(), &batch)
        .await
        .json()
        .await
        .unwrap();
    let mut ids: Vec<i64> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3], "{got}");
    let sent = upstream.received()[0].json();
    assert_eq!(
        sent,
        json!([call(1, "echo")]),
        "only the member not answered here"
    );

    // Only a notification left for the upstream, which would answer a bodiless 202: the
    // proxy adds a ping so the reply has a body its answers can join, then takes it out.
    let note = json!({"jsonrpc":"2.0","method":"notifications/progress"});
    let batch = json!([call(4, "delete_x"), note]);
    let resp = post(&client, &proxy.url(), &batch).await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got.as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got[0]["id"], 4);
    assert_eq!(got[0]["error"]["code"], -32001);
    let sent = upstream.received()[1].json();
    assert_eq!(sent[0], note, "the notification reached the upstream");
    assert_eq!(sent[1]["method"], "ping");
}

#[tokio::test]
async fn large_bodies_are_read_whole_then_judged() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    let big = "x".repeat(100 * 1024);
    let blocked = json!({"jsonrpc":"2.0","id":11,"method":"tools/call",
        "params":{"name":"delete_all","arguments":{"pad": big}}});
    let resp = post(&client, &proxy.url(), &blocked).await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["id"], 11);
    assert_eq!(got["error"]["code"], -32001);
    assert_eq!(
        upstream.connections(),
        0,
        "the upstream never received the blocked request, not even its head"
    );

    let edited = json!({"jsonrpc":"2.0","id":12,"method":"tools/call",
        "params":{"name":"search","arguments":{"pad": big, "limit": 99}}});
    let got: Value = post(&client, &proxy.url(), &edited)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], 12);
    let seen = &upstream.received()[0];
    assert_eq!(seen.json()["params"]["arguments"]["limit"], 10);
    // Rewritten, the body has a length of its own.
    assert_eq!(
        seen.header("content-length"),
        Some(seen.body.len().to_string().as_str())
    );
    assert_eq!(seen.header("transfer-encoding"), None);

    let plain = json!({"jsonrpc":"2.0","id":13,"method":"tools/call",
        "params":{"name":"echo","arguments":{"pad": big}}});
    let got: Value = post(&client, &proxy.url(), &plain)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["result"]["got"], plain, "unchanged bodies arrive whole");
}

#[tokio::test]
async fn mcp_2026_headers_that_disagree_with_the_body_get_32020() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    let send = |name: &'static str, body: Value| {
        client
            .post(proxy.url())
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", name)
            .body(body.to_string())
            .send()
    };
    let resp = send("echo", call(1, "delete_x")).await.unwrap();
    assert_eq!(resp.status(), 400);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["error"]["code"], -32020);
    assert_eq!(got["id"], 1);
    let resp = send("echo", call(2, "echo")).await.unwrap();
    assert_eq!(resp.status(), 200);
    // A large body whose header no rule can match streams through, checked at its end.
    let big = json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"delete_x","arguments":{"pad": "y".repeat(100 * 1024)}}});
    let resp = client
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "ping")
        .body(big.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["error"]["code"], -32020);
    assert_eq!(
        upstream.received().len(),
        1,
        "only the agreeing call was answered upstream"
    );
}

/// Regression: block and mock answers went through `serde_json::Value`, so a client's id of
/// 123456789012345678901234567890 came back as 1.2345678901234568e+29 (and `1.0e5` as
/// 100000.0) and the client could not match the answer to its call.
#[tokio::test]
async fn block_and_mock_answers_echo_the_id_byte_for_byte() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let client = client();
    for id in [
        "123456789012345678901234567890",
        "1.0e5",
        "-1.5E-3",
        "\"\\u0041\"",
    ] {
        let send = |tool: &str| {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
            );
            client
                .post(proxy.url())
                .header("accept", ACCEPT_BOTH)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let blocked = send("delete_file").await.unwrap().text().await.unwrap();
        assert_eq!(
            blocked,
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32001,"message":"deletes are disabled here"}}}}"#
            )
        );
        let mocked = send("get_weather").await.unwrap().text().await.unwrap();
        assert_eq!(
            mocked,
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"text":"sunny","type":"text"}}]}}}}"#
            )
        );
    }
    assert!(upstream.received().is_empty());
}
