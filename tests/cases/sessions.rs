//! Proxy-owned sessions: mapping both ways, the spec's 404 enforced by the proxy, ending,
//! expiry, the cap, several upstreams with affinity and passive health, hijack protection.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::mcp_server::SessionServer;
use crate::support::*;

/// A proxy config in front of upstream `a` and upstream `b` (round robin).
fn two_upstreams(a: &MockUpstream, b: &MockUpstream) -> shadowcat::config::Config {
    let mut config = config_for(&a.url());
    let mut second = config.upstreams[0].clone();
    second.name = "b".into();
    second.target = shadowcat::config::UpstreamTarget::Url(
        shadowcat::config::UpstreamUrl::parse(&b.url()).unwrap(),
    );
    config.upstreams.push(second);
    config
}

fn init_body() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
}

/// `initialize`, returning the session id the client got.
async fn initialize(client: &reqwest::Client, url: &str, auth: Option<&str>) -> String {
    let mut req = client
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.body(init_body().to_string()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await;
    id
}

async fn call_in(
    client: &reqwest::Client,
    url: &str,
    sid: &str,
    auth: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", sid);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.body(call(1, "echo").to_string()).send().await.unwrap()
}

/// The JSON-RPC result of a response that may be JSON or SSE.
async fn result_of(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap();
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(&text);
    serde_json::from_str::<Value>(json).unwrap()["result"].clone()
}

#[tokio::test]
async fn mapping_holds_on_json_and_sse_responses_and_get_streams() {
    for sse in [false, true] {
        let (_server, upstream) = SessionServer::start("up", sse).await;
        let proxy = Proxy::start(config_for(&upstream.url())).await;
        let client = client();
        let sid = initialize(&client, &proxy.url(), None).await;
        assert_eq!(sid.len(), 43, "the proxy's own id: {sid}");
        assert!(
            !sid.contains("up-"),
            "the upstream id never reaches the client"
        );

        let resp = call_in(&client, &proxy.url(), &sid, None).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["mcp-session-id"],
            sid.as_str(),
            "mapped back on the way out"
        );
        assert_eq!(
            result_of(resp).await["session"],
            "up-0",
            "the upstream saw its own id"
        );

        let mut stream = client
            .get(proxy.url())
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &sid)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        let (text, _) = read_events(&mut stream, 1).await;
        assert!(text.contains("\"session\":\"up-0\""), "{text}");
        assert!(upstream
            .received()
            .iter()
            .all(|r| r.header("mcp-session-id") != Some(sid.as_str())));
    }
}

#[tokio::test]
async fn unknown_ids_are_404_without_upstream_contact() {
    let (_server, upstream) = SessionServer::start("up", false).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    for sid in ["no-such-session", "up-0", &"A".repeat(43)] {
        let resp = call_in(&client, &proxy.url(), sid, None).await;
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32001);
        assert_eq!(body["id"], 1, "the error answers the request's id");
    }
    let resp = client
        .get(proxy.url())
        .header("mcp-session-id", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn delete_ends_the_session_then_its_id_is_404() {
    let (server, upstream) = SessionServer::start("up", false).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    let sid = initialize(&client, &proxy.url(), None).await;
    let resp = client
        .delete(proxy.url())
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        upstream.received()[1].header("mcp-session-id"),
        Some("up-0"),
        "DELETE carries the upstream id"
    );
    assert_eq!(server.live(), 0);
    let seen = upstream.received().len();
    assert_eq!(
        call_in(&client, &proxy.url(), &sid, None).await.status(),
        404
    );
    assert_eq!(upstream.received().len(), seen, "the proxy answered itself");
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(&metrics, r#"shadowcat_sessions_total{outcome="deleted"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "shadowcat_sessions_active"), Some(0.0));
}

#[tokio::test]
async fn delete_refused_with_405_keeps_the_session() {
    let upstream =
        MockUpstream::start(
            |req| match (req.method.as_str(), req.json()["method"].as_str()) {
                ("POST", Some("initialize")) => Reply::Full {
                    status: 200,
                    headers: vec![
                        ("content-type".into(), "application/json".into()),
                        ("mcp-session-id".into(), "keep".into()),
                    ],
                    body: br#"{"jsonrpc":"2.0","id":0,"result":{}}"#.to_vec(),
                },
                ("DELETE", _) => Reply::status(405, ""),
                _ => Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}})),
            },
        )
        .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    let sid = initialize(&client, &proxy.url(), None).await;
    let resp = client
        .delete(proxy.url())
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(
        call_in(&client, &proxy.url(), &sid, None).await.status(),
        200
    );
}

#[tokio::test]
async fn upstream_that_forgets_a_session_gives_404_and_the_mapping_goes() {
    let (server, upstream) = SessionServer::start("up", false).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    let sid = initialize(&client, &proxy.url(), None).await;
    server.forget();
    assert_eq!(
        call_in(&client, &proxy.url(), &sid, None).await.status(),
        404,
        "upstream 404 passed on"
    );
    let seen = upstream.received().len();
    assert_eq!(
        call_in(&client, &proxy.url(), &sid, None).await.status(),
        404
    );
    assert_eq!(
        upstream.received().len(),
        seen,
        "the mapping is gone: the proxy answers"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"shadowcat_sessions_total{outcome="upstream_gone"}"#
        ),
        Some(1.0)
    );
    // The client re-initializes and carries on.
    let again = initialize(&client, &proxy.url(), None).await;
    assert_eq!(
        call_in(&client, &proxy.url(), &again, None).await.status(),
        200
    );
}

#[tokio::test]
async fn idle_sessions_expire() {
    let (_server, upstream) = SessionServer::start("up", false).await;
    let mut config = config_for(&upstream.url());
    config.sessions.idle_timeout = Duration::from_millis(300);
    let proxy = Proxy::start(config).await;
    let client = client();
    let kept = initialize(&client, &proxy.url(), None).await;
    let idle = initialize(&client, &proxy.url(), None).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            call_in(&client, &proxy.url(), &kept, None).await.status(),
            200,
            "use keeps it alive"
        );
    }
    assert_eq!(
        call_in(&client, &proxy.url(), &idle, None).await.status(),
        404
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(&metrics, r#"shadowcat_sessions_total{outcome="expired"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "shadowcat_sessions_active"), Some(1.0));
}

#[tokio::test]
async fn a_full_table_answers_initialize_with_503() {
    let (_server, upstream) = SessionServer::start("up", false).await;
    let mut config = config_for(&upstream.url());
    config.sessions.max = 1;
    let proxy = Proxy::start(config).await;
    let client = client();
    let first = initialize(&client, &proxy.url(), None).await;
    let resp = post(&client, &proxy.url(), &init_body()).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(0), json!(-32006))
    );
    assert_eq!(
        upstream.received().len(),
        1,
        "the upstream never saw the refused initialize"
    );
    client
        .delete(proxy.url())
        .header("mcp-session-id", &first)
        .send()
        .await
        .unwrap();
    initialize(&client, &proxy.url(), None).await;
}

#[tokio::test]
async fn a_stolen_id_with_another_principal_is_404() {
    let (_server, upstream) = SessionServer::start("up", false).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    let sid = initialize(&client, &proxy.url(), Some("Bearer alice")).await;
    assert_eq!(
        call_in(&client, &proxy.url(), &sid, Some("Bearer mallory"))
            .await
            .status(),
        404
    );
    assert_eq!(
        call_in(&client, &proxy.url(), &sid, None).await.status(),
        404
    );
    assert_eq!(
        call_in(&client, &proxy.url(), &sid, Some("Bearer alice"))
            .await
            .status(),
        200
    );
}

/// A request without a session id goes upstream, which answers it: the proxy cannot know
/// whether an upstream needs sessions, and must not guess from other clients' traffic.
#[tokio::test]
async fn missing_ids_get_the_upstreams_400_and_2026_requests_pass_sessionless() {
    let (_server, upstream) = SessionServer::start("up", false).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    initialize(&client, &proxy.url(), None).await;
    let seen = upstream.received().len();
    let resp = post(&client, &proxy.url(), &call(5, "echo")).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"], "Bad Request: No valid session ID provided",
        "the upstream's own answer"
    );
    assert_eq!(upstream.received().len(), seen + 1);
    let seen = seen + 1;

    let resp = client
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .body(call(6, "echo").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        upstream.received().len(),
        seen + 1,
        "a 2026-07-28 request goes upstream as is"
    );
    assert_eq!(
        resp.status(),
        400,
        "and the upstream's own answer comes back"
    );
    assert_eq!(upstream.received()[seen].header("mcp-session-id"), None);
}

#[tokio::test]
async fn two_upstreams_each_see_only_their_own_sessions() {
    let (_a, upstream_a) = SessionServer::start("a", false).await;
    let (_b, upstream_b) = SessionServer::start("b", true).await;
    let proxy = Proxy::start(two_upstreams(&upstream_a, &upstream_b)).await;
    let client = client();
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(initialize(&client, &proxy.url(), None).await);
    }
    let mut owners = Vec::new();
    for sid in &sessions {
        let first =
            result_of(call_in(&client, &proxy.url(), sid, None).await).await["upstream"].clone();
        for _ in 0..3 {
            let again = result_of(call_in(&client, &proxy.url(), sid, None).await).await
                ["upstream"]
                .clone();
            assert_eq!(again, first, "a session stays on its upstream");
        }
        owners.push(first);
    }
    assert_eq!(
        owners.iter().filter(|o| **o == "a").count(),
        2,
        "round robin spread new sessions: {owners:?}"
    );
    let ids = |u: &MockUpstream| -> Vec<String> {
        u.received()
            .iter()
            .filter_map(|r| r.header("mcp-session-id").map(str::to_owned))
            .collect()
    };
    assert!(ids(&upstream_a).iter().all(|s| s.starts_with("a-")));
    assert!(ids(&upstream_b).iter().all(|s| s.starts_with("b-")));
}

#[tokio::test]
async fn a_down_upstream_is_avoided_and_its_sessions_get_502() {
    let (_a, upstream_a) = SessionServer::start("a", false).await;
    let (_b, upstream_b) = SessionServer::start("b", false).await;
    let proxy = Proxy::start(two_upstreams(&upstream_a, &upstream_b)).await;
    let client = client();
    let on_a = initialize(&client, &proxy.url(), None).await;
    let on_b = initialize(&client, &proxy.url(), None).await;
    upstream_b.stop();
    let resp = call_in(&client, &proxy.url(), &on_b, None).await;
    assert_eq!(resp.status(), 502, "never moved to another upstream");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32002);
    assert_eq!(
        call_in(&client, &proxy.url(), &on_b, None).await.status(),
        502
    );
    // New sessions avoid b while it is down, and a's sessions are untouched.
    for _ in 0..3 {
        let sid = initialize(&client, &proxy.url(), None).await;
        assert_eq!(
            result_of(call_in(&client, &proxy.url(), &sid, None).await).await["upstream"],
            "a"
        );
    }
    assert_eq!(
        call_in(&client, &proxy.url(), &on_a, None).await.status(),
        200
    );
}
