//! OAuth 2.1 resource server at the edge: 401/403 with RFC 6750 challenges, RFC 9728
//! metadata, scopes per tool, the token's subject as the session principal, and the token
//! never passed upstream.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::mcp_server::SessionServer;
use crate::support::tokens::{bearer, claims, fixture, ISSUER, RESOURCE};
use crate::support::*;

pub(super) fn auth_config(jwks_url: String) -> shadowcat::config::AuthConfig {
    shadowcat::config::AuthConfig {
        resource: RESOURCE.into(),
        issuer: ISSUER.into(),
        authorization_servers: vec![ISSUER.into()],
        jwks_url: Some(jwks_url),
        jwks_file: None,
        refresh: Duration::from_secs(600),
        algorithms: vec![
            jsonwebtoken::Algorithm::EdDSA,
            jsonwebtoken::Algorithm::RS256,
        ],
        leeway: Duration::from_secs(30),
        scopes_supported: vec!["mcp".into(), "mcp:admin".into()],
        required_scopes: vec![
            shadowcat::config::ScopeRule {
                method: shadowcat::glob::Glob::new("tools/call", false),
                tool: Some(shadowcat::glob::Glob::new("admin_*", false)),
                scopes: vec!["mcp:admin".into()],
            },
            shadowcat::config::ScopeRule {
                method: shadowcat::glob::Glob::new("*", false),
                tool: None,
                scopes: vec!["mcp".into()],
            },
        ],
    }
}

/// A proxy with `auth:` in front of a session-issuing upstream; the JWKS comes from a
/// loopback server.
async fn setup() -> (Proxy, MockUpstream, MockUpstream) {
    let jwks = std::fs::read_to_string(fixture("jwks.json")).unwrap();
    let jwks_server = MockUpstream::start(move |_| Reply::Full {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: jwks.clone().into_bytes(),
    })
    .await;
    let (_server, upstream) = SessionServer::start("up", false).await;
    let mut config = config_for(&upstream.url());
    config.auth = Some(auth_config(format!("http://{}/jwks", jwks_server.addr)));
    (Proxy::start(config).await, upstream, jwks_server)
}

async fn send(
    proxy: &Proxy,
    auth: Option<&str>,
    body: Value,
    sid: Option<&str>,
) -> reqwest::Response {
    let mut req = client()
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(s) = sid {
        req = req.header("mcp-session-id", s);
    }
    req.body(body.to_string()).send().await.unwrap()
}

fn init() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{}})
}

#[tokio::test]
async fn missing_and_invalid_tokens_get_401_with_a_challenge() {
    let (proxy, upstream, _jwks) = setup().await;
    let resp = send(&proxy, None, init(), None).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp mcp:admin""#
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(0), json!(-32009))
    );

    let mut expired = claims("alice", "mcp");
    expired["exp"] = json!(1);
    for bad in [
        bearer(&expired),
        "Bearer abc.def.ghi".into(),
        bearer(&json!({"sub":"x","iss":ISSUER,"aud":"https://else","exp":9999999999u64})),
    ] {
        let resp = send(&proxy, Some(&bad), init(), None).await;
        assert_eq!(resp.status(), 401);
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with(r#"Bearer error="invalid_token""#));
    }
    assert!(
        upstream.received().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn valid_tokens_pass_but_never_reach_the_upstream() {
    let (proxy, upstream, _jwks) = setup().await;
    let token = bearer(&claims("alice", "mcp"));
    let resp = send(&proxy, Some(&token), init(), None).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        upstream.received()[0].header("authorization"),
        None,
        "no token passthrough"
    );

    // The principal is the subject: a fresh token of alice's works on her session...
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = bearer(&claims("alice", "mcp"));
    assert_ne!(renewed, token);
    assert_eq!(
        send(&proxy, Some(&renewed), call(1, "echo"), Some(&sid))
            .await
            .status(),
        200
    );
    // ...and bob's valid token does not.
    let bob = bearer(&claims("bob", "mcp"));
    assert_eq!(
        send(&proxy, Some(&bob), call(2, "echo"), Some(&sid))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn scopes_per_tool_give_403_insufficient_scope() {
    let (proxy, upstream, _jwks) = setup().await;
    let user = bearer(&claims("alice", "mcp"));
    let resp = send(&proxy, Some(&user), init(), None).await;
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let seen = upstream.received().len();
    let resp = send(&proxy, Some(&user), call(3, "admin_reset"), Some(&sid)).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["www-authenticate"].to_str().unwrap(),
        r#"Bearer error="insufficient_scope", scope="mcp:admin", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
    );
    // Hiding the call in a batch behind a harmless one does not help.
    let batch = json!([{"jsonrpc":"2.0","id":4,"method":"ping"},{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"admin_reset"}}]);
    assert_eq!(
        send(&proxy, Some(&user), batch, Some(&sid)).await.status(),
        403
    );
    // Nor does a body too large for Pingora's retry buffer: it is read whole first.
    let big = json!({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"admin_reset","arguments":{"pad":"x".repeat(100_000)}}});
    assert_eq!(
        send(&proxy, Some(&user), big, Some(&sid)).await.status(),
        403
    );
    assert_eq!(
        upstream.received().len(),
        seen,
        "no refused call reached the upstream"
    );
    let admin = bearer(&claims("alice", "mcp mcp:admin"));
    assert_eq!(
        send(&proxy, Some(&admin), call(7, "admin_reset"), Some(&sid))
            .await
            .status(),
        200
    );
    let none = bearer(&claims("alice", ""));
    assert_eq!(
        send(&proxy, Some(&none), call(8, "echo"), Some(&sid))
            .await
            .status(),
        403,
        "every call needs mcp"
    );
}

#[tokio::test]
async fn protected_resource_metadata_is_served_at_both_well_known_paths() {
    let (proxy, _upstream, _jwks) = setup().await;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let resp = client()
            .get(format!("http://{}{path}", proxy.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["resource"], RESOURCE);
        assert_eq!(doc["authorization_servers"], json!([ISSUER]));
        assert_eq!(doc["scopes_supported"], json!(["mcp", "mcp:admin"]));
    }
}

/// Regression (issue "Fail closed", item 1): a call the token lacks the scope for ran on the
/// upstream when its body was one the proxy could not read (the scope check then saw no
/// method at all). With required scopes configured, such a body is refused before any
/// upstream contact.
#[tokio::test]
async fn regression_unreadable_bodies_never_dodge_a_required_scope() {
    let (proxy, upstream, _jwks) = setup().await;
    let user = bearer(&claims("alice", "mcp"));
    let resp = send(&proxy, Some(&user), init(), None).await;
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let seen = upstream.received().len();
    let call = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"admin_reset","arguments":{"a":"\ud800"}}}"#;
    for body in [
        call.to_vec(),
        [
            b"\xEF\xBB\xBF".as_slice(),
            br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"admin_reset"}}"#,
        ]
        .concat(),
    ] {
        let resp = client()
            .post(proxy.url())
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .header("authorization", &user)
            .header("mcp-session-id", &sid)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let got: Value = resp.json().await.unwrap();
        assert_eq!(got["error"]["code"], -32700);
    }
    assert_eq!(
        upstream.received().len(),
        seen,
        "nothing reached the upstream"
    );
}

/// Regression: two `Authorization` headers (two tokens) were judged by the first alone; they
/// are now 400 before any token is checked.
#[tokio::test]
async fn two_authorization_headers_are_400_with_auth() {
    let (proxy, upstream, _jwks) = setup().await;
    let alice = bearer(&claims("alice", "mcp"));
    let resp = client()
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("authorization", &alice)
        .header("authorization", "Bearer not-a-token")
        .body(init().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600);
    assert!(upstream.received().is_empty());
    assert_eq!(send(&proxy, Some(&alice), init(), None).await.status(), 200);
}

/// Regression (RFC 7515 section 4.1.11): a token naming a critical extension in `crit` was
/// accepted although the proxy implements none; it is now 401 `invalid_token`.
#[tokio::test]
async fn tokens_with_a_crit_header_are_401_invalid_token() {
    use crate::support::tokens::bearer_with_header;
    let (proxy, upstream, _jwks) = setup().await;
    let header = json!({"alg": "EdDSA", "kid": "ed-1", "typ": "JWT"});
    let plain = bearer_with_header(&header, &claims("alice", "mcp"));
    assert_eq!(send(&proxy, Some(&plain), init(), None).await.status(), 200);
    let mut critical = header.clone();
    critical["crit"] = json!(["urn:example:must-understand"]);
    critical["urn:example:must-understand"] = json!(true);
    let token = bearer_with_header(&critical, &claims("alice", "mcp"));
    let resp = send(&proxy, Some(&token), init(), None).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with(
            r#"Bearer error="invalid_token", error_description="unsupported critical header parameter""#
        ),
        "{challenge}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(0), json!(-32009))
    );
    assert_eq!(
        upstream.received().len(),
        1,
        "only the plain token's request"
    );
}
