//! Per-client session caps: one client cannot fill `sessions.max` and lock everyone else out of
//! `initialize`. 429 with `Retry-After` and a JSON-RPC error, before any upstream contact; the
//! places come back whichever way a session ends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::mcp_server::SessionServer;
use crate::support::tokens::{self, bearer, claims};
use crate::support::*;

fn init_body() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
}

/// `initialize` with a credential and an `X-Forwarded-For`.
async fn init(url: &str, auth: Option<&str>, xff: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.body(init_body().to_string()).send().await.unwrap()
}

async fn session_of(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await;
    sid
}

/// The refusal: 429, `Retry-After`, a JSON-RPC error naming the cap, with the request's id.
async fn assert_capped(resp: reqwest::Response, key: &str, retry_after: &str) {
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], retry_after);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (&body["id"], &body["error"]["code"]),
        (&json!(0), &json!(-32008))
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(key), "{message}");
}

/// Regression: one client rotating bearer tokens filled `sessions.max` (without `auth:` every
/// token is a new principal) and locked every other client out of `initialize` until its
/// sessions idled out (30 minutes by default).
#[tokio::test]
async fn regression_one_client_rotating_tokens_cannot_fill_the_session_table() {
    let (_server, upstream) = SessionServer::start("up", false).await;
    let mut config = config_for(&upstream.url());
    config.sessions.max = 10;
    config.sessions.max_per_ip = 3;
    // The test's clients all connect from 127.0.0.1, a trusted proxy naming the client.
    config.rate_limits.trusted_proxies = vec![shadowcat::config::Cidr::parse("127.0.0.1").unwrap()];
    let proxy = Proxy::start(config).await;
    let url = proxy.url();
    let mallory = Some("203.0.113.66");
    for i in 0..3 {
        session_of(init(&url, Some(&format!("Bearer rotated-{i}")), mallory).await).await;
    }
    let seen = upstream.received().len();
    let resp = init(&url, Some("Bearer rotated-3"), mallory).await;
    assert_capped(resp, "sessions.max_per_ip", "60").await;
    let resp = init(&url, None, Some("203.0.113.66, 127.0.0.1")).await;
    assert_capped(resp, "sessions.max_per_ip", "60").await;
    assert_eq!(
        upstream.received().len(),
        seen,
        "refused before any upstream contact"
    );

    // Everyone else still gets in, anonymous or not.
    session_of(init(&url, None, Some("203.0.113.7")).await).await;
    session_of(init(&url, Some("Bearer carol"), Some("198.51.100.1")).await).await;
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"shadowcat_rate_limited_total{scope="sessions_per_ip"}"#
        ),
        Some(2.0)
    );
    assert_eq!(sample(&metrics, "shadowcat_sessions_active"), Some(5.0));
}

/// `X-Forwarded-For` counts only from a trusted proxy: a client cannot forge a fresh address.
#[tokio::test]
async fn a_forged_forwarded_for_gives_no_fresh_cap() {
    let (_server, upstream) = SessionServer::start("up", false).await;
    let mut config = config_for(&upstream.url());
    config.sessions.max_per_ip = 2;
    let proxy = Proxy::start(config).await;
    for i in 0..2 {
        let xff = format!("192.0.2.{i}");
        session_of(init(&proxy.url(), None, Some(&xff)).await).await;
    }
    let resp = init(&proxy.url(), None, Some("192.0.2.9")).await;
    assert_capped(resp, "sessions.max_per_ip", "60").await;
}

/// Ended sessions give their places back: DELETE, the upstream's 404, idle expiry.
#[tokio::test]
async fn a_principal_at_its_cap_gets_429_until_one_of_its_sessions_ends() {
    let (server, upstream) = SessionServer::start("up", false).await;
    let mut config = config_for(&upstream.url());
    config.sessions.max_per_principal = 2;
    config.sessions.idle_timeout = Duration::from_millis(500);
    let proxy = Proxy::start(config).await;
    let url = proxy.url();
    let alice = Some("Bearer alice");
    let first = session_of(init(&url, alice, None).await).await;
    let second = session_of(init(&url, alice, None).await).await;
    assert_capped(
        init(&url, alice, None).await,
        "sessions.max_per_principal",
        "1",
    )
    .await;
    session_of(init(&url, Some("Bearer bob"), None).await).await;
    assert_eq!(
        sample(
            &proxy.metrics().await,
            r#"shadowcat_rate_limited_total{scope="sessions_per_principal"}"#
        ),
        Some(1.0)
    );

    let delete = client()
        .delete(&url)
        .header("authorization", "Bearer alice")
        .header("mcp-session-id", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 200);
    let third = session_of(init(&url, alice, None).await).await;
    assert_capped(
        init(&url, alice, None).await,
        "sessions.max_per_principal",
        "1",
    )
    .await;

    // The upstream forgets every session: alice's next call meets its 404.
    server.forget();
    let resp = client()
        .post(&url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("authorization", "Bearer alice")
        .header("mcp-session-id", &second)
        .body(call(1, "echo").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    session_of(init(&url, alice, None).await).await;
    assert_capped(
        init(&url, alice, None).await,
        "sessions.max_per_principal",
        "1",
    )
    .await;

    // Both of alice's sessions (`third` and the last) idle out.
    let _ = third;
    let expired = r#"shadowcat_sessions_total{outcome="expired"}"#;
    assert!(proxy.settled_when(expired, |n| n >= 2.0).await >= Some(2.0));
    session_of(init(&url, alice, None).await).await;
}

/// With `auth:` the principal is the token's subject: a client with several tokens of one
/// subject is one principal, and the address cap (for clients the proxy cannot identify) does
/// not apply, so users behind one address are not limited together.
#[tokio::test]
async fn with_auth_the_cap_is_per_subject_whatever_the_token() {
    let jwks = std::fs::read_to_string(tokens::fixture("jwks.json")).unwrap();
    let jwks_server = MockUpstream::start(move |_| Reply::Full {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: jwks.clone().into_bytes(),
    })
    .await;
    let (_server, upstream) = SessionServer::start("up", false).await;
    let mut config = config_for(&upstream.url());
    config.auth = Some(super::auth::auth_config(format!(
        "http://{}/jwks",
        jwks_server.addr
    )));
    config.sessions.max_per_principal = 2;
    config.sessions.max_per_ip = 1;
    let proxy = Proxy::start(config).await;
    let url = proxy.url();
    let token = |sub: &str, n: u32| {
        let mut c = claims(sub, "mcp");
        c["jti"] = json!(n);
        bearer(&c)
    };
    session_of(init(&url, Some(&token("alice", 1)), None).await).await;
    session_of(init(&url, Some(&token("alice", 2)), None).await).await;
    let resp = init(&url, Some(&token("alice", 3)), None).await;
    assert_capped(resp, "sessions.max_per_principal", "60").await;
    session_of(init(&url, Some(&token("bob", 1)), None).await).await;
}
