//! Sessions fail closed against the upstream: an upstream session id never takes a client into
//! a session that is not its own, whatever the upstream answers; and no client's traffic
//! changes how the proxy judges another client's request.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::support::*;

fn init_body() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
}

fn json_reply(session: &str, body: Value) -> Reply {
    Reply::Full {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("mcp-session-id".into(), session.into()),
        ],
        body: body.to_string().into_bytes(),
    }
}

/// POSTs `body` with an optional credential and session id.
async fn send(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    sid: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(s) = sid {
        req = req.header("mcp-session-id", s);
    }
    req.body(body.to_string()).send().await.unwrap()
}

/// `initialize` that must succeed; the session id the client got.
async fn initialize(client: &reqwest::Client, url: &str, auth: Option<&str>) -> String {
    let resp = send(client, url, auth, None, &init_body()).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await;
    sid
}

/// The 502 a refused upstream answer becomes: a JSON-RPC error with the request's id, and no
/// session id at all.
async fn assert_refused(resp: reqwest::Response, id: Value, not: &[&str]) {
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().get("mcp-session-id").is_none());
    let text = resp.text().await.unwrap();
    for sid in not {
        assert!(!text.contains(sid), "{text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((&body["id"], &body["error"]["code"]), (&id, &json!(-32002)));
}

/// Regression (session hijack by upstream): an upstream that answered client B with client A's
/// upstream session id made the proxy hand B client A's proxy id.
#[tokio::test]
async fn regression_an_upstream_cannot_give_a_client_another_clients_session() {
    {
        // `initialize` gets up-0, up-1, ...; every other answer carries up-0, the first
        // client's id, as JSON or (tool `sse`) as an SSE stream.
        let next = Arc::new(AtomicUsize::new(0));
        let upstream = MockUpstream::start(move |req| {
            let body = req.json();
            if body["method"] == "initialize" {
                let id = format!("up-{}", next.fetch_add(1, Ordering::SeqCst));
                return json_reply(&id, json!({"jsonrpc":"2.0","id":0,"result":{}}));
            }
            if body["params"]["name"] == "sse" {
                return Reply::SseWith {
                    headers: vec![("mcp-session-id".into(), "up-0".into())],
                    chunks: vec![(Default::default(), "data: {\"secret\":\"a\"}\n\n".into())],
                    hold: false,
                };
            }
            json_reply(
                "up-0",
                json!({"jsonrpc":"2.0","id":body["id"],"result":{"secret":"a"}}),
            )
        })
        .await;
        let config = config_for(&upstream.url());
        let proxy = Proxy::start(config).await;
        let (client, url) = (client(), proxy.url());
        let a = initialize(&client, &url, Some("Bearer alice")).await;
        let b = initialize(&client, &url, Some("Bearer bob")).await;
        assert_ne!(a, b);

        let resp = send(
            &client,
            &url,
            Some("Bearer bob"),
            Some(&b),
            &call(7, "echo"),
        )
        .await;
        assert_refused(resp, json!(7), &[&a, "secret"]).await;
        let resp = send(&client, &url, Some("Bearer bob"), Some(&b), &call(8, "sse")).await;
        assert_refused(resp, json!(8), &[&a, "secret"]).await;
        // Without a session (and without a credential) it is the same.
        let resp = send(&client, &url, None, None, &call(9, "echo")).await;
        assert_refused(resp, json!(9), &[&a, "secret"]).await;

        let resp = send(
            &client,
            &url,
            Some("Bearer alice"),
            Some(&a),
            &call(10, "echo"),
        )
        .await;
        assert_eq!(resp.status(), 200, "A's own answers pass");
        assert_eq!(resp.headers()["mcp-session-id"], a.as_str());
        let series = r#"shadowcat_upstream_errors_total{kind="session_conflict",upstream="mock"}"#;
        assert_eq!(proxy.settled(series, 3.0).await, Some(3.0));
        assert_eq!(
            sample(&proxy.metrics().await, "shadowcat_sessions_active"),
            Some(2.0)
        );
    }
}

/// Regression (session hijack by upstream): an `initialize` answer that reused a live upstream
/// id moved that upstream session to the new client and ended the old client's.
#[tokio::test]
async fn regression_initialize_never_takes_over_another_clients_upstream_session() {
    {
        let upstream = MockUpstream::start(|req| {
            let body = req.json();
            json_reply(
                "shared",
                json!({"jsonrpc":"2.0","id":body["id"],"result":{}}),
            )
        })
        .await;
        let config = config_for(&upstream.url());
        let proxy = Proxy::start(config).await;
        let (client, url) = (client(), proxy.url());
        let a = initialize(&client, &url, Some("Bearer alice")).await;
        for other in [Some("Bearer bob"), None] {
            let resp = send(&client, &url, other, None, &init_body()).await;
            assert_refused(resp, json!(0), &[&a]).await;
        }
        let resp = send(&client, &url, Some("Bearer alice"), Some(&a), &call(1, "x")).await;
        assert_eq!(resp.status(), 200, "A keeps its session");
        assert_eq!(resp.headers()["mcp-session-id"], a.as_str());
        let metrics = proxy.metrics().await;
        assert_eq!(sample(&metrics, "shadowcat_sessions_active"), Some(1.0));
        assert_eq!(
            sample(&metrics, r#"shadowcat_sessions_total{outcome="created"}"#),
            Some(1.0)
        );
    }
}

/// An upstream that restarts and counts its session ids from the start again: a principal's
/// stale mapping gives way to its new session; another principal's is never handed over (that
/// `initialize` gets 502, and the client's next one gets a fresh id). The stale mapping stays
/// its own client's, as the upstream id would without a proxy, until the upstream's 404 or
/// idle expiry ends it.
#[tokio::test]
async fn an_upstream_restart_that_reissues_ids_stays_safe_and_recovers() {
    let sessions = Arc::new(Mutex::new(HashSet::<String>::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let (s, n) = (sessions.clone(), next.clone());
    let upstream = MockUpstream::start(move |req| {
        let body = req.json();
        if body["method"] == "initialize" {
            let id = format!("up-{}", n.fetch_add(1, Ordering::SeqCst));
            s.lock().unwrap().insert(id.clone());
            return json_reply(&id, json!({"jsonrpc":"2.0","id":0,"result":{}}));
        }
        match req.header("mcp-session-id") {
            Some(id) if s.lock().unwrap().contains(id) => {
                json_reply(id, json!({"jsonrpc":"2.0","id":body["id"],"result":{}}))
            }
            _ => Reply::status(404, r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}"#),
        }
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let (client, url) = (client(), proxy.url());
    let (alice, bob, carol) = (
        Some("Bearer alice"),
        Some("Bearer bob"),
        Some("Bearer carol"),
    );
    let a1 = initialize(&client, &url, alice).await;
    let b1 = initialize(&client, &url, bob).await;

    sessions.lock().unwrap().clear();
    next.store(0, Ordering::SeqCst);

    let a2 = initialize(&client, &url, alice).await;
    assert_ne!(a2, a1, "a new proxy id for the new session");
    let seen = upstream.received().len();
    let resp = send(&client, &url, alice, Some(&a1), &call(1, "x")).await;
    assert_eq!(resp.status(), 404, "the stale session is gone");
    assert_eq!(upstream.received().len(), seen, "answered by the proxy");
    assert_eq!(
        send(&client, &url, alice, Some(&a2), &call(2, "x"))
            .await
            .status(),
        200
    );
    assert_eq!(
        sample(
            &proxy.metrics().await,
            r#"shadowcat_sessions_total{outcome="evicted"}"#
        ),
        Some(1.0)
    );

    // up-1 is still bob's mapping: carol never gets it, and her retry gets up-2.
    let resp = send(&client, &url, carol, None, &init_body()).await;
    assert_refused(resp, json!(0), &[&b1]).await;
    let c = initialize(&client, &url, carol).await;
    assert_eq!(
        send(&client, &url, carol, Some(&c), &call(3, "x"))
            .await
            .status(),
        200
    );
    let b2 = initialize(&client, &url, bob).await;
    assert_eq!(
        send(&client, &url, bob, Some(&b2), &call(4, "x"))
            .await
            .status(),
        200
    );
    assert_eq!(
        send(&client, &url, carol, Some(&b1), &call(5, "x"))
            .await
            .status(),
        404,
        "bob's old id is still bob's alone"
    );
}

/// What an upstream answers a protocol version it does not support: 400 with the versions it
/// does, which a client reads to fall back.
const UNSUPPORTED: &str = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2025-11-25","2025-06-18","2025-03-26"]}}}"#;

/// Regression: once any client's 2025-era session had passed through the proxy, a request
/// without a session and with an unknown `MCP-Protocol-Version` (2099-01-01, or a falling-back
/// client's 2026-07-28 probe) got the proxy's own 400 "Mcp-Session-Id header is required"
/// instead of the upstream's answer listing the versions it supports.
#[tokio::test]
async fn regression_unknown_protocol_versions_reach_the_upstream_after_another_clients_session() {
    // An SDK-like server: sessions from `initialize`, 400 without one, and UNSUPPORTED for a
    // protocol version it does not know (checked first, as the SDKs do).
    let upstream = MockUpstream::start(|req| {
        let body = req.json();
        match (
            req.header("mcp-protocol-version"),
            req.header("mcp-session-id"),
        ) {
            (Some("2099-01-01" | "2026-07-28"), _) => Reply::status(400, UNSUPPORTED),
            _ if body["method"] == "initialize" => {
                json_reply("up-0", json!({"jsonrpc":"2.0","id":0,"result":{}}))
            }
            (_, None) => Reply::status(400, NO_SESSION),
            (_, Some(id)) => json_reply(id, json!({"jsonrpc":"2.0","id":body["id"],"result":{}})),
        }
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let (client, url) = (client(), proxy.url());
    let ask = |version: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let resp = client
                .post(&url)
                .header("accept", ACCEPT_BOTH)
                .header("content-type", "application/json")
                .header("mcp-protocol-version", version)
                .header("mcp-method", "server/discover")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let before = [ask("2099-01-01").await, ask("2025-11-25").await];
    assert_eq!(before[0], (400, UNSUPPORTED.to_owned()));
    assert_eq!(before[1], (400, NO_SESSION.to_owned()));

    initialize(&client, &url, None).await;

    let seen = upstream.received().len();
    assert_eq!(
        ask("2099-01-01").await,
        before[0],
        "the upstream's answer, verbatim"
    );
    assert_eq!(
        ask("2026-07-28").await,
        before[0],
        "a falling-back client's probe"
    );
    assert_eq!(
        ask("2025-11-25").await,
        before[1],
        "no session: the upstream's own 400, as before any session existed"
    );
    let received = upstream.received();
    assert_eq!(received.len(), seen + 3, "all reached the upstream");
    assert_eq!(
        received[seen].header("mcp-protocol-version"),
        Some("2099-01-01")
    );
    assert_eq!(received[seen].header("mcp-session-id"), None);
}

/// An SDK server's answer to a request that needs a session and has none.
const NO_SESSION: &str = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#;
