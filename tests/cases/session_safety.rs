//! No client's traffic changes how the proxy judges another client's request.

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
