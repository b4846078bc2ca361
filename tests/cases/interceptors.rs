//! Interceptor rules in the proxy: every action on each path it applies to.

use std::time::Duration;

use serde_json::{json, Value};
use shadowcat::config::{Config, InterceptorsConfig};
use shadowcat::interceptor::RuleSet;

use crate::support::*;

const RULES: &str = r#"
rules:
  - name: block-deletes
    match: {method: tools/call, tool: "delete_*"}
    action: {block: {code: -32001, message: "deletes are disabled here"}}
  - name: hide-admin
    match: {from: server, kind: response, method: tools/list}
    action: {hide_tools: ["admin_*"]}
  - name: mock-weather
    match: {method: tools/call, tool: get_weather}
    action: {mock: {result: {content: [{type: text, text: sunny}]}}}
  - name: clamp
    match: {method: tools/call, tool: search}
    action: {set: {"/params/arguments/limit": 10}, remove: ["/params/arguments/debug"]}
  - name: slow-reads
    match: {method: resources/read}
    action: {delay: 300ms}
  - name: drop-debug
    match: {from: server, method: notifications/message, params: {"/level": "debug"}}
    action: drop
  - name: drop-client-noise
    match: {method: notifications/roots/list_changed}
    action: drop
  - name: tag-echo-results
    match: {from: server, kind: response, method: tools/call, tool: echo}
    action: {set: {"/result/tagged": true}, remove: ["/result/secret"]}
"#;

fn with_rules(upstream: &str, rules: &str) -> Config {
    Config {
        interceptors: InterceptorsConfig {
            rules: RuleSet::from_yaml(rules).unwrap(),
            rules_file: None,
            watch: false,
        },
        ..config_for(upstream)
    }
}

/// An upstream that answers every request with a JSON result naming what it got.
async fn echo_upstream() -> MockUpstream {
    MockUpstream::start(|req| {
        let body = req.json();
        match body["method"].as_str() {
            Some("tools/list") => Reply::json(json!({"jsonrpc":"2.0","id":body["id"],"result":{
                "tools":[{"name":"echo"},{"name":"admin_reset"},{"name":"admin_drop"}]}})),
            Some(_) if body.get("id").is_some() => {
                Reply::json(json!({"jsonrpc":"2.0","id":body["id"],"result":{"got": body}}))
            }
            _ => Reply::Full {
                status: 202,
                headers: vec![],
                body: vec![],
            },
        }
    })
    .await
}

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
async fn large_bodies_are_held_then_judged_whole() {
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
    assert!(
        upstream.received().is_empty(),
        "the upstream never received the blocked body"
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
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));

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

#[tokio::test]
async fn rule_file_changes_are_picked_up_and_bad_ones_keep_the_old_rules() {
    let upstream = echo_upstream().await;
    let dir = std::env::temp_dir().join(format!("shadowcat-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.yaml");
    let block = |tool: &str| {
        format!("rules:\n  - name: b\n    match: {{method: tools/call, tool: {tool}}}\n    action: {{block: {{}}}}\n")
    };
    std::fs::write(&file, block("one")).unwrap();
    let config = Config {
        interceptors: InterceptorsConfig {
            rules: RuleSet::load(&file).unwrap(),
            rules_file: Some(file.clone()),
            watch: true,
        },
        ..config_for(&upstream.url())
    };
    let proxy = Proxy::start(config).await;
    let client = client();
    let blocked = |v: Value| v.get("error").is_some();
    let try_call = |tool: &'static str| {
        let client = client.clone();
        let url = proxy.url();
        async move {
            post(&client, &url, &call(1, tool))
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert!(blocked(try_call("one").await));
    assert!(!blocked(try_call("two").await));

    std::fs::write(&file, block("two")).unwrap();
    let mut swapped = false;
    for _ in 0..100 {
        if blocked(try_call("two").await) {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swapped, "the changed file took effect");
    assert!(!blocked(try_call("one").await));

    std::fs::write(&file, "rules:\n  - name: broken\n    action: {nope: 1}\n").unwrap();
    let mut rejected = false;
    for _ in 0..100 {
        let m = proxy.metrics().await;
        if sample(&m, r#"shadowcat_rules_reload_total{result="error"}"#) == Some(1.0) {
            rejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rejected, "the bad file was seen and refused");
    assert!(
        blocked(try_call("two").await),
        "the previous rules stay in force"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn sighup_reloads_the_rule_file() {
    let upstream = echo_upstream().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("shadowcat-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.yaml");
    let block = |tool: &str| {
        format!("rules:\n  - name: b\n    match: {{method: tools/call, tool: {tool}}}\n    action: {{block: {{}}}}\n")
    };
    std::fs::write(&rules, block("one")).unwrap();
    let conf = dir.join("hup.yaml");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\nadmin: null\nupstreams:\n  - name: mock\n    url: {}\n\
             interceptors:\n  rules_file: {}\n",
            upstream.url(),
            rules.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shadowcat"))
        .args(["reverse", "--config"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = client();
    let blocked = |tool: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let v: Value = post(&client, &url, &call(1, tool))
                .await
                .json()
                .await
                .unwrap();
            v.get("error").is_some()
        }
    };
    assert!(blocked("one").await);
    // Without `watch`, a changed file waits for SIGHUP.
    std::fs::write(&rules, block("two")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(blocked("one").await, "no reload without SIGHUP or watch");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut swapped = false;
    for _ in 0..100 {
        if blocked("two").await {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swapped, "SIGHUP reloaded the rules");
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP did not end the process"
    );
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
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
