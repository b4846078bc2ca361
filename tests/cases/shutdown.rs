//! SIGTERM drains: in-flight SSE streams finish, then the process exits well before the grace
//! period ends; a session's GET stream ends at once with `retry:` (its client resumes on a
//! peer), while a POST stream still gets its answer.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::proxy_process::ProxyProcess;
use crate::support::*;

#[tokio::test]
async fn sigterm_lets_streams_finish_then_exits() {
    let events = ["data: 1\n\n", "data: 2\n\n", "data: 3\n\n"];
    let upstream =
        MockUpstream::start(move |_| Reply::sse(&events, Duration::from_millis(300), false)).await;
    let dir = std::env::temp_dir().join(format!("shadowcat-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("drain.yaml");
    let mut proxy = ProxyProcess::start(|port| {
        std::fs::write(
            &conf,
            format!("listen: 127.0.0.1:{port}\nadmin: null\nupstreams:\n  - name: mock\n    url: {}\nshutdown:\n  grace_period: 20s\n", upstream.url()),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowcat"));
        command
            .args(["reverse", "--config"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    })
    .await;
    let url = proxy.url();
    let mut resp = post(&client(), &url, &call(1, "x")).await;
    read_events(&mut resp, 1).await;
    let term = Instant::now();
    proxy.signal("TERM");
    let mut rest = Vec::new();
    while let Ok(Some(c)) = resp.chunk().await {
        rest.extend_from_slice(&c);
    }
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "data: 2\n\ndata: 3\n\n",
        "the stream finished"
    );
    let status = loop {
        if let Some(s) = proxy.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            term.elapsed() < Duration::from_secs(15),
            "did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(
        term.elapsed() < Duration::from_secs(10),
        "exited once drained, not after the 20 s grace period"
    );
}

/// A session-ful upstream: `initialize` opens session `up-1`; the standalone GET stream sends
/// one event and stays open (it would hold the process the whole grace period); `tools/call`
/// answers on an SSE stream: a progress event at once, the result 1.5 s later.
fn session_upstream(req: &Received) -> Reply {
    let body = req.json();
    match (req.method.as_str(), body["method"].as_str()) {
        ("POST", Some("initialize")) => Reply::Full {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("mcp-session-id".into(), "up-1".into()),
            ],
            body: json!({"jsonrpc":"2.0","id":body["id"],"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"m","version":"1"}}}).to_string().into_bytes(),
        },
        ("POST", Some("tools/call")) => {
            let progress = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}});
            let result = json!({"jsonrpc":"2.0","id":body["id"],"result":{"content":[{"type":"text","text":"done"}]}});
            Reply::Sse {
                chunks: vec![
                    (Duration::ZERO, format!("id: p-1\ndata: {progress}\n\n")),
                    (Duration::from_millis(1500), format!("id: p-2\ndata: {result}\n\n")),
                ],
                hold: false,
            }
        }
        ("GET", _) => {
            let note = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}});
            Reply::Sse {
                chunks: vec![(Duration::ZERO, format!("id: g-1\ndata: {note}\n\n"))],
                hold: true,
            }
        }
        _ => Reply::Full {
            status: 202,
            headers: vec![],
            body: vec![],
        },
    }
}

/// Reads what is left of a response body, within `within`; `None` if it did not end in time.
async fn rest_of(resp: &mut reqwest::Response, within: Duration) -> Option<String> {
    let mut rest = Vec::new();
    let read = async {
        while let Ok(Some(c)) = resp.chunk().await {
            rest.extend_from_slice(&c);
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(String::from_utf8_lossy(&rest).into_owned())
}

#[tokio::test]
async fn sigterm_ends_get_streams_with_retry_while_post_streams_get_their_answer() {
    let upstream = MockUpstream::start(session_upstream).await;
    let dir = std::env::temp_dir().join(format!("shadowcat-drain-get-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("drain.yaml");
    let mut proxy = ProxyProcess::start(|port| {
        std::fs::write(
            &conf,
            format!("listen: 127.0.0.1:{port}\nadmin: null\nupstreams:\n  - name: mock\n    url: {}\nshutdown:\n  grace_period: 20s\n", upstream.url()),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowcat"));
        command
            .args(["reverse", "--config"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    })
    .await;
    let url = proxy.url();
    let client = client();
    let init = post(
        &client,
        &url,
        &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    )
    .await;
    let sid = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = init.text().await;
    let session_request = |method: reqwest::Method| {
        client
            .request(method, &url)
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", &sid)
    };
    let mut get = session_request(reqwest::Method::GET)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let (first, _) = read_events(&mut get, 1).await;
    assert!(first.contains("id: 1-1\n"), "the proxy's own id: {first:?}");
    // A reconnect with `Last-Event-ID` is served from the replay buffer, then follows.
    let mut replayed = session_request(reqwest::Method::GET)
        .header("accept", "text/event-stream")
        .header("last-event-id", "1-1")
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);
    let mut answer = session_request(reqwest::Method::POST)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(call(2, "slow").to_string())
        .send()
        .await
        .unwrap();
    read_events(&mut answer, 1).await;

    let term = Instant::now();
    proxy.signal("TERM");
    let get_rest = rest_of(&mut get, Duration::from_secs(3))
        .await
        .expect("the GET stream ended promptly, not at the end of the grace period");
    assert_eq!(
        get_rest, "retry: 1000\n\n",
        "ended at an event boundary with retry:"
    );
    let replayed_rest = rest_of(&mut replayed, Duration::from_secs(3))
        .await
        .expect("the replayed GET stream ended promptly");
    assert_eq!(replayed_rest, "retry: 1000\n\n", "the replayed stream too");
    let call_rest = rest_of(&mut answer, Duration::from_secs(10))
        .await
        .expect("the POST stream ended");
    assert!(
        call_rest.contains(r#""text":"done""#) && !call_rest.contains("retry:"),
        "the POST stream got its answer: {call_rest:?}"
    );
    let status = loop {
        if let Some(s) = proxy.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            term.elapsed() < Duration::from_secs(15),
            "did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(
        term.elapsed() < Duration::from_secs(10),
        "exited once drained, not after the 20 s grace period"
    );
}
