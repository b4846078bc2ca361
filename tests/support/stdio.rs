//! Stdio upstreams in tests: a proxy config running the Python fixture
//! (tests/fixtures/stdio/mcp_server.py), and the client steps the stdio cases share.

use std::time::Duration;

use serde_json::{json, Value};

use super::{post, ACCEPT_BOTH};

pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/stdio/mcp_server.py"
);

/// A proxy config with one stdio upstream `fixture` running the test server with `args`.
pub fn config(args: &[&str], extra: &str) -> shadowcat::config::Config {
    let mut command = vec!["python3".to_owned(), FIXTURE.to_owned()];
    command.extend(args.iter().map(|a| a.to_string()));
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nupstreams:\n  - name: fixture\n    command: {}\n    env: {{FIXTURE_VAR: fixture-value}}\n{extra}",
        serde_json::to_string(&command).unwrap()
    );
    shadowcat::config::from_yaml_str(&yaml).expect("stdio config")
}

pub fn initialize(id: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}})
}

pub async fn post_in(
    client: &reqwest::Client,
    url: &str,
    session: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-session-id", session)
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

/// The JSON-RPC messages of a whole SSE (or JSON) body, read to its end.
pub async fn messages(resp: reqwest::Response) -> Vec<Value> {
    let sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = tokio::time::timeout(Duration::from_secs(15), resp.text())
        .await
        .expect("body in time")
        .expect("body");
    if !sse {
        return vec![serde_json::from_str(&text).expect("JSON body")];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_str(d).expect("JSON event"))
        .collect()
}

/// A new session: its id and the child's pid.
pub async fn open_session(client: &reqwest::Client, url: &str) -> (String, i32) {
    let resp = post(client, url, &initialize(1)).await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let msgs = messages(resp).await;
    let result = &msgs.last().unwrap()["result"];
    assert_eq!(result["serverInfo"]["name"], "fixture", "{msgs:?}");
    let pid = result["_meta"]["pid"].as_i64().unwrap() as i32;
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    assert_eq!(
        post_in(client, url, &session, &initialized).await.status(),
        202
    );
    (session, pid)
}

/// Is the process running (not gone, not a zombie)?
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with(['Z', 'X'])
        })
        .unwrap_or(false)
}

pub async fn gone(pid: i32) -> bool {
    for _ in 0..250 {
        if !running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

pub fn tool(id: u64, name: &str, progress: Option<&str>) -> Value {
    let mut params = json!({"name": name, "arguments": {"x": id}});
    if let Some(token) = progress {
        params["_meta"] = json!({"progressToken": token});
    }
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params})
}
