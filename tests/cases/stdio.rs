//! Stdio upstreams: a Python MCP server (tests/fixtures/stdio/mcp_server.py) run by the proxy,
//! one child per session, reached through the proxy like any HTTP upstream.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::proxy_process::ProxyProcess;
use crate::support::stdio::*;
use crate::support::*;

#[tokio::test]
async fn stdio_session_lifecycle_through_the_proxy() {
    let proxy = Proxy::start(config(&[], "")).await;
    let (client, url) = (client(), proxy.url());
    let (session, pid) = open_session(&client, &url).await;
    assert!(running(pid));

    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    let msgs = messages(post_in(&client, &url, &session, &list).await).await;
    assert_eq!(
        msgs.last().unwrap()["result"]["tools"]
            .as_array()
            .unwrap()
            .len(),
        6
    );

    // Progress with the request's token and the log message travel on the POST's stream,
    // before its response.
    let resp = post_in(&client, &url, &session, &tool(3, "progress", Some("tok-3"))).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let msgs = messages(resp).await;
    let methods: Vec<&str> = msgs.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(
        methods,
        [
            "notifications/progress",
            "notifications/progress",
            "notifications/progress",
            "notifications/message"
        ],
        "{msgs:?}"
    );
    assert!(msgs[..3]
        .iter()
        .all(|m| m["params"]["progressToken"] == "tok-3"));
    assert_eq!(msgs.last().unwrap()["id"], 3);
    assert_eq!(msgs.last().unwrap()["result"]["content"][0]["text"], "done");

    // The child sees only its configured environment and PATH.
    let msgs = messages(post_in(&client, &url, &session, &tool(4, "env", None)).await).await;
    let env: Value =
        serde_json::from_str(msgs[0]["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(env["FIXTURE_VAR"], "fixture-value");
    assert!(env.get("PATH").is_some());
    // Only the configured environment and PATH, never the proxy's own (a launcher such as a
    // pyenv shim may add a few variables of its own, like PWD).
    for key in [
        "HOME",
        "USER",
        "CARGO_MANIFEST_DIR",
        "RUST_TEST_THREADS",
        "CARGO",
    ] {
        assert!(env.get(key).is_none(), "the proxy's {key} leaked: {env}");
    }
    assert_eq!(
        proxy
            .settled(r#"shadowcat_stdio_children{upstream="fixture"}"#, 1.0)
            .await,
        Some(1.0)
    );

    let deleted = client
        .delete(&url)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(gone(pid).await, "DELETE ended the child");
    let after = post_in(&client, &url, &session, &list).await;
    assert_eq!(after.status(), 404);
    let series = r#"shadowcat_stdio_exits_total{reason="deleted",upstream="fixture"}"#;
    assert_eq!(proxy.settled(series, 1.0).await, Some(1.0));
    assert_eq!(
        proxy
            .settled(r#"shadowcat_stdio_children{upstream="fixture"}"#, 0.0)
            .await,
        Some(0.0)
    );
}

#[tokio::test]
async fn stdio_child_crash_mid_request_gives_an_error_and_ends_the_session() {
    let proxy = Proxy::start(config(&[], "")).await;
    let (client, url) = (client(), proxy.url());
    let (session, pid) = open_session(&client, &url).await;
    let resp = post_in(&client, &url, &session, &tool(2, "crash", None)).await;
    let msgs = messages(resp).await;
    let last = msgs.last().unwrap();
    assert_eq!(last["id"], 2, "{msgs:?}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exited"),
        "{msgs:?}"
    );
    assert!(gone(pid).await);
    let list = json!({"jsonrpc":"2.0","id":3,"method":"tools/list"});
    assert_eq!(post_in(&client, &url, &session, &list).await.status(), 404);
    let series = r#"shadowcat_stdio_exits_total{reason="crashed",upstream="fixture"}"#;
    let settled = proxy.settled(series, 1.0).await;
    let exits: Vec<String> = proxy
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("shadowcat_stdio_exits_total"))
        .map(str::to_owned)
        .collect();
    assert_eq!(settled, Some(1.0), "{exits:?}");
    // A new session works.
    open_session(&client, &url).await;
}

#[tokio::test]
async fn stdio_child_that_never_answers_initialize_gets_504() {
    let proxy = Proxy::start(config(&["--never-init"], "timeouts:\n  request: 1s\n")).await;
    let (client, url) = (client(), proxy.url());
    let started = std::time::Instant::now();
    let resp = post(&client, &url, &initialize(1)).await;
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    let children = r#"shadowcat_stdio_children{upstream="fixture"}"#;
    assert_eq!(
        proxy.settled(children, 0.0).await,
        Some(0.0),
        "the child was stopped"
    );
    let series = r#"shadowcat_stdio_exits_total{reason="init_failed",upstream="fixture"}"#;
    assert_eq!(proxy.settled(series, 1.0).await, Some(1.0));
}

#[tokio::test]
async fn stdio_garbage_on_stdout_is_skipped() {
    let proxy = Proxy::start(config(&["--garbage"], "")).await;
    let (client, url) = (client(), proxy.url());
    let (session, _) = open_session(&client, &url).await;
    let msgs = messages(post_in(&client, &url, &session, &tool(2, "echo", None)).await).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["result"]["content"][0]["text"], r#"{"x": 2}"#);
}

#[tokio::test]
async fn stdio_proxy_shutdown_leaves_no_child() {
    let proxy = Proxy::start(config(&[], "")).await;
    let (client, url) = (client(), proxy.url());
    let mut pids = Vec::new();
    for _ in 0..3 {
        pids.push(open_session(&client, &url).await.1);
    }
    assert!(pids.iter().all(|p| running(*p)));
    drop(proxy);
    for pid in pids {
        assert!(gone(pid).await, "child {pid} outlived the proxy");
    }
}

#[tokio::test]
async fn stdio_max_children_gives_503() {
    let proxy = Proxy::start(config(&[], "    max_children: 1\n")).await;
    let (client, url) = (client(), proxy.url());
    open_session(&client, &url).await;
    let resp = post(&client, &url, &initialize(1)).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let series =
        r#"shadowcat_stdio_spawns_refused_total{reason="max_children",upstream="fixture"}"#;
    assert_eq!(proxy.settled(series, 1.0).await, Some(1.0));
}

/// The binary, started with `--upstream-command`: SIGTERM drains and exits, and the child
/// goes with it.
#[tokio::test]
async fn stdio_upstream_command_flag_and_sigterm_leave_no_child() {
    let mut proxy = ProxyProcess::start(|port| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shadowcat"));
        command
            .args([
                "reverse",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--admin",
                "off",
            ])
            .args(["--upstream-command", "--", "python3", FIXTURE])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    })
    .await;
    let url = proxy.url();
    let (_, pid) = open_session(&client(), &url).await;
    assert!(running(pid));
    proxy.signal("TERM");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = proxy.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "proxy did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(gone(pid).await, "the child outlived the proxy");
}
