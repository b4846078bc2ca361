//! Tapes replayed: `shadowcat replay` serving what the proxy recorded, with no upstream
//! (a session, a sessionless 2026-07-28 client, an answer the cache gave).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use shadowcat::tape::check;

use super::tapes::{mcp_mock, recording, session_script, tapes_with, temp_dir};
use crate::support::{config_for, MockUpstream, Proxy, Received, Reply, ACCEPT_BOTH};
/// A replay server on 127.0.0.1:0 serving `tapes`; its URL.
async fn replay(tapes: &[PathBuf], speed: f64) -> String {
    let library = shadowcat::tape::replay::Library::load(tapes, &[]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = shadowcat::tape::replay::Server::new(library, speed, "/mcp".into());
    tokio::spawn(server.serve(listener));
    format!("http://{addr}/mcp")
}

#[tokio::test]
async fn a_replayed_tape_answers_as_the_server_did_with_no_upstream() {
    let upstream = mcp_mock().await;
    let dir = temp_dir("replay");
    let mut config = config_for(&upstream.url());
    config.recording = Some(recording(&dir));
    let proxy = Proxy::start(config).await;
    let live = session_script(&proxy.url()).await;
    let files = tapes_with(&dir, 13).await;
    drop(proxy);
    upstream.stop();

    let url = replay(&files, 1.0).await;
    let started = tokio::time::Instant::now();
    let replayed = session_script(&url).await;
    // The login call was recorded with its password redacted, so its replay is a miss that
    // names the recording; everything else is the same, progress in order.
    assert_eq!(replayed.len(), live.len(), "{replayed:#?}");
    for (i, (a, b)) in live.iter().zip(&replayed).enumerate() {
        if i == 2 {
            let message = b["error"]["message"].as_str().unwrap();
            assert_eq!(b["error"]["code"], -32602, "{b}");
            assert!(
                message.contains("closest recorded: tools/call"),
                "{message}"
            );
            assert!(message.contains("[redacted]"), "{message}");
            continue;
        }
        assert_eq!(a, b, "message {i}");
    }
    // The recorded spacing (30 ms between the mock's events) is kept at speed 1.
    assert!(started.elapsed() >= Duration::from_millis(60));

    // A request never recorded names the closest one; a session it never issued is 404.
    let client = crate::support::client();
    let unknown = client
        .post(&url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(json!({"jsonrpc":"2.0","id":5,"method":"tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400, "no session");
    let gone = client
        .post(&url)
        .header("mcp-session-id", "never-issued")
        .body(json!({"jsonrpc":"2.0","id":5,"method":"tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

/// MCP 2026-07-28: no sessions. The client's requests go on one tape keyed by the client, and
/// the replay serves them without sessions.
#[tokio::test]
async fn a_sessionless_client_is_one_tape_and_replays_without_sessions() {
    let upstream = MockUpstream::start(|req: &Received| {
        let body = req.json();
        Reply::json(json!({"jsonrpc":"2.0","id":body["id"].clone(),"result":{
            "tool": body["params"]["name"].clone(), "era": req.header("mcp-protocol-version")}}))
    })
    .await;
    let dir = temp_dir("sessionless");
    let mut config = config_for(&upstream.url());
    config.recording = Some(recording(&dir));
    let proxy = Proxy::start(config).await;
    let client = crate::support::client();
    let script = |url: String| {
        let client = client.clone();
        async move {
            let mut seen = Vec::new();
            for (id, tool) in [(1, "a"), (2, "b"), (3, "a")] {
                let resp = client
                    .post(&url)
                    .header("accept", ACCEPT_BOTH)
                    .header("content-type", "application/json")
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", tool)
                    .body(crate::support::call(id, tool).to_string())
                    .send()
                    .await
                    .unwrap();
                assert!(resp.headers().get("mcp-session-id").is_none());
                seen.push(resp.json::<Value>().await.unwrap());
            }
            seen
        }
    };
    let live = script(proxy.url()).await;
    assert_eq!(live[1]["result"]["tool"], "b");
    let files = tapes_with(&dir, 6).await;
    assert_eq!(files.len(), 1, "{files:?}");
    let tape = check::read(&files[0]).unwrap();
    assert!(!tape.header.session);
    assert_eq!(tape.header.protocol_version, "2026-07-28");
    assert_eq!(tape.lines[0].headers["mcp-method"], "tools/call");
    drop(proxy);
    upstream.stop();

    let url = replay(&files, 0.0).await;
    assert_eq!(script(url).await, live);
}

/// What the proxy answers itself goes on the tape as it was written: here a cache hit, whose
/// answer the replay then gives like any other.
#[tokio::test]
async fn an_answer_from_the_cache_is_on_the_tape_and_replays() {
    use shadowcat::cache::{Rule, Scope, Settings as CacheSettings};
    let upstream = MockUpstream::start(|req: &Received| {
        let body = req.json();
        Reply::json(json!({"jsonrpc":"2.0","id":body["id"].clone(),
            "result":{"tools":[{"name":"only","inputSchema":{"type":"object"}}]}}))
    })
    .await;
    let dir = temp_dir("cached");
    let mut config = config_for(&upstream.url());
    config.recording = Some(recording(&dir));
    config.cache = Some(CacheSettings {
        max_bytes: 1 << 20,
        rules: vec![Rule {
            method: "tools/list",
            upstream: None,
            ttl: Duration::from_secs(60),
            scope: Scope::Public,
        }],
    });
    let proxy = Proxy::start(config).await;
    let client = crate::support::client();
    let list = |url: String, id: u64| {
        let client = client.clone();
        async move {
            client
                .post(&url)
                .header("accept", ACCEPT_BOTH)
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2025-06-18")
                .body(json!({"jsonrpc":"2.0","id":id,"method":"tools/list"}).to_string())
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let first = list(proxy.url(), 1).await;
    let second = list(proxy.url(), 2).await;
    assert_eq!(second["result"], first["result"]);
    assert_eq!(
        upstream.received().len(),
        1,
        "the second came from the cache"
    );
    let files = tapes_with(&dir, 4).await;
    let tape = check::read(&files[0]).unwrap();
    let answers: Vec<_> = tape
        .lines
        .iter()
        .filter(|l| !l.is_request())
        .map(|l| {
            l.message_value()
                .expect("every answer's message is on the tape")
        })
        .collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(answers[1]["result"]["tools"][0]["name"], "only");
    drop(proxy);
    upstream.stop();
    let url = replay(&files, 0.0).await;
    assert_eq!(list(url.clone(), 7).await["result"], first["result"]);
    assert_eq!(list(url, 8).await["id"], 8);
}
