//! The result cache and 2025-03-26 batches: members the cache answers are merged with the
//! upstream's answers to the rest into one reply.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use shadowcat::cache::{Rule, Scope, Settings};
use shadowcat::config::Config;

use crate::support::*;

/// Issue 19: in a 2025-03-26 batch, members the cache answers are answered by the proxy and
/// the rest go upstream as a smaller batch; the client gets one reply with every member,
/// as JSON or as SSE events. A batch the cache answers whole never reaches the upstream.
#[tokio::test]
async fn a_batch_merges_members_from_the_cache_with_members_from_upstream() {
    let bodies = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let seen = bodies.clone();
    let mock = MockUpstream::start(move |req| {
        let body = req.json();
        seen.lock().unwrap().push(body.clone());
        let answer = |m: &Value| match m["method"].as_str() {
            Some("tools/list") => json!({"jsonrpc":"2.0","id":m["id"],"result":{"tools":[{"name":"echo"}]}}),
            _ => json!({"jsonrpc":"2.0","id":m["id"],"result":{"content":[{"type":"text","text":"live"}]}}),
        };
        match body.as_array() {
            Some(members) => Reply::json(Value::Array(members.iter().map(answer).collect())),
            None => Reply::json(answer(&body)),
        }
    })
    .await;
    let config = Config {
        cache: Some(Settings {
            max_bytes: 1 << 20,
            rules: vec![Rule {
                method: "tools/list",
                upstream: None,
                ttl: Duration::from_secs(60),
                scope: Scope::Public,
            }],
        }),
        ..config_for(&mock.url())
    };
    let proxy = Proxy::start(config).await;
    let c = client();
    let send = |body: Value, accept: &'static str| {
        c.post(proxy.url())
            .header("accept", accept)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-03-26")
            .body(body.to_string())
            .send()
    };
    let plain = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    send(plain, ACCEPT_BOTH)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let batch = json!([
        {"jsonrpc":"2.0","id":"a","method":"tools/list"},
        {"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"echo","arguments":{}}},
    ]);
    let reply: Value = send(batch, ACCEPT_BOTH)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let members = reply.as_array().expect("one JSON array");
    assert_eq!(members.len(), 2, "{reply}");
    let by_id = |id: &str| members.iter().find(|m| m["id"] == id).cloned().unwrap();
    assert_eq!(by_id("a")["result"]["tools"][0]["name"], "echo", "{reply}");
    assert_eq!(
        by_id("b")["result"]["content"][0]["text"],
        "live",
        "{reply}"
    );
    let upstream_got = bodies.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        upstream_got,
        json!([{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"echo","arguments":{}}}]),
        "only the member the cache could not answer went upstream"
    );
    let before = bodies.lock().unwrap().len();
    let all_cached = json!([
        {"jsonrpc":"2.0","id":7,"method":"tools/list"},
        {"jsonrpc":"2.0","id":8,"method":"tools/list"},
    ]);
    let text = send(all_cached, "text/event-stream")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        text.matches("data: ").count(),
        2,
        "one event per member: {text}"
    );
    assert!(
        text.contains("\"id\":7") && text.contains("\"id\":8"),
        "{text}"
    );
    assert_eq!(
        bodies.lock().unwrap().len(),
        before,
        "answered without the upstream"
    );
    let hits = r#"shadowcat_cache_requests_total{method="tools/list",result="hit"}"#;
    assert_eq!(proxy.settled(hits, 3.0).await, Some(3.0));
}
