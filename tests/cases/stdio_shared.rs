//! Stdio upstreams served by a shared pool: sessionless (2026-07-28) clients and `mode: shared`
//! sessions on one child the proxy initialized itself, ids rewritten, every message to its own
//! client; restarts with backoff; the spawn rate; many sessions at once.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::stdio::*;
use crate::support::*;

/// A 2026-07-28 POST (no session; the method and name headers the revision requires).
async fn post_2026(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", body["method"].as_str().unwrap());
    if let Some(name) = body["params"]["name"].as_str() {
        req = req.header("mcp-name", name);
    }
    req.body(body.to_string()).send().await.expect("request")
}

fn slow(id: Value, x: u64, ms: u64, token: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
        "name":"slow","arguments":{"x":x,"ms":ms},"_meta":{"progressToken":token}}})
}

/// The tool result's JSON text, parsed.
fn result_json(msg: &Value) -> Value {
    serde_json::from_str(msg["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

/// Checks one `slow` call's stream: only its own messages, its progress with its own token,
/// its response last with its own id. Returns the child's pid.
fn check_slow_stream(msgs: &[Value], id: &Value, x: u64, token: &str) -> i64 {
    let (last, before) = msgs.split_last().expect("a response");
    assert_eq!(&last["id"], id, "{msgs:?}");
    assert!(last["result"]["content"].is_array(), "{msgs:?}");
    let result = result_json(last);
    assert_eq!(result["args"]["x"], x, "its own answer: {msgs:?}");
    let progress: Vec<&Value> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 2, "{msgs:?}");
    assert!(progress
        .iter()
        .all(|m| m["params"]["progressToken"] == token));
    for log in before
        .iter()
        .filter(|m| m["method"] == "notifications/message")
    {
        assert_eq!(
            log["params"]["data"]["x"], x,
            "another client's log: {msgs:?}"
        );
    }
    result["pid"].as_i64().unwrap()
}

#[tokio::test]
async fn stdio_2026_clients_share_a_pool_with_interleaved_requests() {
    let proxy = Proxy::start(config(&[], "    mode: shared\n    pool_size: 1\n")).await;
    let (client, url) = (client(), proxy.url());

    let discover = json!({"jsonrpc":"2.0","id":"d","method":"server/discover","params":{}});
    let resp = post_2026(&client, &url, &discover).await;
    assert_eq!(resp.status(), 200);
    let msgs = messages(resp).await;
    let result = &msgs[0]["result"];
    assert_eq!(msgs[0]["id"], "d");
    assert!(result["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));
    assert_eq!(result["serverInfo"]["name"], "fixture");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    let msgs = messages(post_2026(&client, &url, &list).await).await;
    let result = &msgs[0]["result"];
    assert_eq!(result["tools"].as_array().unwrap().len(), 6);
    assert_eq!(
        (
            &result["resultType"],
            &result["ttlMs"],
            &result["cacheScope"]
        ),
        (&json!("complete"), &json!(0), &json!("private")),
        "cacheable 2026-07-28 results say how they may be cached"
    );
    // An unknown revision gets 400, as from an MCP server; so does a POST that cannot take SSE.
    let resp = client
        .post(&url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "1999-01-01")
        .body(list.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Unsupported protocol version"));
    let resp = client
        .post(&url)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(list.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 406);

    // Sixteen sessionless clients at once, all with id 1 and progress token "tok"; the first
    // sent takes longest, so the answers come back in the reverse order, interleaved.
    let sessionless = (0..16u64).map(|x| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let resp = post_2026(&client, &url, &slow(json!(1), x, 40 * (16 - x), "tok")).await;
            assert_eq!(resp.status(), 200);
            let msgs = messages(resp).await;
            // A 2026-07-28 result, made from the older server's.
            assert_eq!(msgs.last().unwrap()["result"]["resultType"], "complete");
            check_slow_stream(&msgs, &json!(1), x, "tok")
        })
    });
    // A 2025-06-18 session on the same shared child meanwhile, also using id 1.
    let session = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let (session, pid) = open_session(&client, &url).await;
            let resp = post_in(&client, &url, &session, &slow(json!(1), 99, 300, "tok")).await;
            let child = check_slow_stream(&messages(resp).await, &json!(1), 99, "tok");
            assert_eq!(
                child,
                i64::from(pid),
                "the session is served by the pool's child"
            );
            child
        })
    };
    let mut pids = vec![session.await.unwrap()];
    for run in sessionless.collect::<Vec<_>>() {
        pids.push(run.await.unwrap());
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "one shared child served everyone: {pids:?}");
    let children = r#"shadowcat_stdio_children{upstream="fixture"}"#;
    assert_eq!(proxy.settled(children, 1.0).await, Some(1.0));
}

/// Reads one SSE response event by event until `until` accepts one; returns all read.
async fn read_until(resp: &mut reqwest::Response, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut buf = String::new();
    let mut out = Vec::new();
    for _ in 0..200 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("event in time")
            .expect("body");
        let Some(chunk) = chunk else {
            return out;
        };
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                if data.trim().is_empty() {
                    continue;
                }
                let msg: Value = serde_json::from_str(data.trim()).unwrap();
                let done = until(&msg);
                out.push(msg);
                if done {
                    return out;
                }
            }
        }
    }
    panic!("no matching event in 200 reads: {out:?}");
}

#[tokio::test]
async fn stdio_shared_server_requests_reach_the_session_that_caused_them() {
    let proxy = Proxy::start(config(&[], "    mode: shared\n")).await;
    let (client, url) = (client(), proxy.url());
    let (session, _) = open_session(&client, &url).await;
    let (other, _) = open_session(&client, &url).await;

    let mut resp = post_in(&client, &url, &session, &tool(7, "sample", None)).await;
    let asked = read_until(&mut resp, |m| m["method"] == "sampling/createMessage").await;
    let request = asked.last().unwrap().clone();
    let public_id = request["id"].clone();
    let answer = json!({"jsonrpc":"2.0","id":public_id,"result":{
        "role":"assistant","model":"m","content":{"type":"text","text":"from the session"}}});
    // Another session cannot answer it: its response is dropped, the request still waits.
    assert_eq!(post_in(&client, &url, &other, &answer).await.status(), 202);
    assert_eq!(
        post_in(&client, &url, &session, &answer).await.status(),
        202
    );
    let rest = read_until(&mut resp, |m| m["id"] == 7).await;
    let last = rest.last().unwrap();
    assert_eq!(
        last["result"]["content"][0]["text"], "sampled: from the session",
        "{rest:?}"
    );

    // A sessionless client cannot answer server requests: the child hears so at once.
    let msgs = messages(post_2026(&client, &url, &tool(8, "sample", None)).await).await;
    let text = msgs.last().unwrap()["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("refused: ") && text.contains("sessionless"),
        "{msgs:?}"
    );
    // And may not POST responses at all.
    let stray = json!({"jsonrpc":"2.0","id":"s1","result":{}});
    let resp = client
        .post(&url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .body(stray.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // DELETE ends a shared session (its id is then unknown); the child stays.
    let deleted = client
        .delete(&url)
        .header("mcp-session-id", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let list = json!({"jsonrpc":"2.0","id":3,"method":"tools/list"});
    assert_eq!(post_in(&client, &url, &other, &list).await.status(), 404);
    let msgs = messages(post_in(&client, &url, &session, &list).await).await;
    assert_eq!(msgs[0]["result"]["tools"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn stdio_shared_child_that_crashes_is_restarted_with_backoff() {
    let proxy = Proxy::start(config(&[], "    mode: shared\n")).await;
    let (client, url) = (client(), proxy.url());
    let echo = |id: u64| tool(id, "echo", None);
    let msgs = messages(post_2026(&client, &url, &tool(1, "env", None)).await).await;
    assert!(msgs[0]["result"].is_object(), "{msgs:?}");
    let crashed = messages(post_2026(&client, &url, &tool(2, "crash", None)).await).await;
    let last = crashed.last().unwrap();
    assert_eq!(last["id"], 2);
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("exited"));
    let series = r#"shadowcat_stdio_exits_total{reason="crashed",upstream="fixture"}"#;
    assert_eq!(proxy.settled(series, 1.0).await, Some(1.0));
    // Until the backoff has passed: 503 with Retry-After; then the restarted child answers.
    let mut saw = Vec::new();
    for n in 0..100u64 {
        let resp = post_2026(&client, &url, &echo(10 + n)).await;
        saw.push(resp.status().as_u16());
        if resp.status() == 503 {
            assert!(resp.headers().contains_key("retry-after"));
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let msgs = messages(resp).await;
        assert_eq!(msgs[0]["id"], 10 + n, "{msgs:?}");
        assert!(msgs[0]["result"].is_object(), "{msgs:?}");
        let children = r#"shadowcat_stdio_children{upstream="fixture"}"#;
        assert_eq!(proxy.settled(children, 1.0).await, Some(1.0));
        return;
    }
    panic!("the shared child was not restarted: {saw:?}");
}

#[tokio::test]
async fn stdio_spawn_rate_limit_gives_503_with_retry_after() {
    let extra = "    spawn_rate: {rate: 1, per: 60s, burst: 1}\n";
    let proxy = Proxy::start(config(&[], extra)).await;
    let (client, url) = (client(), proxy.url());
    open_session(&client, &url).await;
    let resp = post(&client, &url, &initialize(2)).await;
    assert_eq!(resp.status(), 503);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let msgs = messages(resp).await;
    assert_eq!(msgs[0]["id"], 2);
    assert!(msgs[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("spawn_rate"));
    let series = r#"shadowcat_stdio_spawns_refused_total{reason="spawn_rate",upstream="fixture"}"#;
    assert_eq!(proxy.settled(series, 1.0).await, Some(1.0));
}

/// A hundred sessions alive at once, each with its own child, all called at once. They are
/// opened ten at a time: a hundred interpreters starting together on a busy 2-core CI machine
/// would test the machine, not the proxy.
#[tokio::test]
async fn stdio_100_concurrent_sessions_each_get_their_own_child() {
    let proxy = Proxy::start(config(&[], "")).await;
    let (client, url) = (client(), proxy.url());
    let opening = std::sync::Arc::new(tokio::sync::Semaphore::new(10));
    let opened = (0..100).map(|_| {
        let (client, url, opening) = (client.clone(), url.clone(), opening.clone());
        tokio::spawn(async move {
            let _permit = opening.acquire().await.unwrap();
            open_session(&client, &url).await
        })
    });
    let mut sessions = Vec::new();
    for run in opened.collect::<Vec<_>>() {
        sessions.push(run.await.unwrap());
    }
    let mut pids: Vec<i32> = sessions.iter().map(|(_, p)| *p).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 100, "one child per session");
    let children = r#"shadowcat_stdio_children{upstream="fixture"}"#;
    assert_eq!(proxy.settled(children, 100.0).await, Some(100.0));
    // Every session called at once; each answer comes from its own child.
    let calls = sessions.iter().enumerate().map(|(n, (session, pid))| {
        let (client, url, session, pid) = (client.clone(), url.clone(), session.clone(), *pid);
        tokio::spawn(async move {
            let id = n as u64 + 10;
            let resp = post_in(&client, &url, &session, &slow(json!(id), id, 100, "t")).await;
            let child = check_slow_stream(&messages(resp).await, &json!(id), id, "t");
            assert_eq!(child, i64::from(pid), "answered by its own child");
        })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap();
    }
    // The 101st is refused (max_children 100), clearly.
    assert_eq!(post(&client, &url, &initialize(1)).await.status(), 503);
    for (session, _) in &sessions {
        let resp = client
            .delete(&url)
            .header("mcp-session-id", session)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    for (_, pid) in sessions {
        assert!(gone(pid).await, "child {pid} outlived its session");
    }
}

#[tokio::test]
async fn stdio_pool_child_that_never_answers_initialize_gives_504_then_backs_off() {
    let proxy = Proxy::start(config(&["--never-init"], "timeouts:\n  request: 1s\n")).await;
    let (client, url) = (client(), proxy.url());
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let started = std::time::Instant::now();
    let resp = post_2026(&client, &url, &list).await;
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(messages(resp).await[0]["id"], 1);
    // The failed start counts against the slot: the next request waits out the backoff.
    let resp = post_2026(&client, &url, &list).await;
    assert!(
        [503, 504].contains(&resp.status().as_u16()),
        "{}",
        resp.status()
    );
    let series = r#"shadowcat_stdio_exits_total{reason="init_failed",upstream="fixture"}"#;
    assert_eq!(
        proxy
            .settled_when(series, |v| v >= 1.0)
            .await
            .map(|v| v >= 1.0),
        Some(true)
    );
    let children = r#"shadowcat_stdio_children{upstream="fixture"}"#;
    assert_eq!(
        proxy.settled(children, 0.0).await,
        Some(0.0),
        "no child left waiting"
    );
}

#[tokio::test]
async fn stdio_pool_child_writing_garbage_still_answers_its_clients() {
    let proxy = Proxy::start(config(&["--garbage"], "    mode: shared\n")).await;
    let (client, url) = (client(), proxy.url());
    let (session, _) = open_session(&client, &url).await;
    let msgs = messages(post_in(&client, &url, &session, &tool(2, "echo", None)).await).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["result"]["content"][0]["text"], r#"{"x": 2}"#);
    let msgs = messages(post_2026(&client, &url, &tool(3, "echo", None)).await).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["id"], 3);
}

#[tokio::test]
async fn stdio_proxy_shutdown_leaves_no_pool_child() {
    let extra = "    mode: shared\n    pool_size: 2\n";
    let proxy = Proxy::start(config(&[], extra)).await;
    let (client, url) = (client(), proxy.url());
    // Two requests at once: the second finds the first child busy and starts the other slot.
    let calls = (0..2u64).map(|x| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let resp = post_2026(&client, &url, &slow(json!(x), x, 400, "t")).await;
            check_slow_stream(&messages(resp).await, &json!(x), x, "t") as i32
        })
    });
    let mut pids = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        pids.push(call.await.unwrap());
    }
    pids.sort_unstable();
    pids.dedup();
    assert!(pids.iter().all(|p| running(*p)));
    drop(proxy);
    for pid in pids {
        assert!(gone(pid).await, "pool child {pid} outlived the proxy");
    }
}

/// A per_session upstream's pool serves only sessionless clients: its unused child goes after
/// `sessions.idle_timeout`, and the next request starts another.
#[tokio::test]
async fn stdio_idle_pool_child_of_a_per_session_upstream_is_stopped() {
    let proxy = Proxy::start(config(&[], "sessions:\n  idle_timeout: 1s\n")).await;
    let (client, url) = (client(), proxy.url());
    let resp = post_2026(&client, &url, &slow(json!(1), 1, 0, "t")).await;
    let pid = check_slow_stream(&messages(resp).await, &json!(1), 1, "t") as i32;
    assert!(gone(pid).await, "the idle pool child was stopped");
    let series = r#"shadowcat_stdio_exits_total{reason="idle",upstream="fixture"}"#;
    assert_eq!(proxy.settled(series, 1.0).await, Some(1.0));
    let resp = post_2026(&client, &url, &slow(json!(2), 2, 0, "t")).await;
    let again = check_slow_stream(&messages(resp).await, &json!(2), 2, "t") as i32;
    assert_ne!(again, pid, "a new child");
}
