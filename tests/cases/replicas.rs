//! Many replicas, no shared state: with `sessions.keys`, a session created through one proxy
//! is routed by another that holds the same keys (sealed ids), keys rotate (the first seals,
//! all open), and tampered, foreign-key, expired, stolen and ended ids get 404 on every
//! replica, without upstream contact.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use shadowcat::config::{Config, SessionKey, UpstreamTarget, UpstreamUrl};
use shadowcat::sealed_id::{principal_hash, Claims, Sealer};

use crate::support::mcp_server::SessionServer;
use crate::support::*;

const K1: &str = "0123456789abcdef0123456789abcdef-one";
const K2: &str = "0123456789abcdef0123456789abcdef-two";
const ALICE: &str = "Bearer alice";

fn key(id: &str, secret: &str) -> SessionKey {
    SessionKey {
        id: id.into(),
        secret: secret.into(),
    }
}

/// A replica in front of `upstreams` (name, url) in this order, sealing with `keys`.
fn replica(upstreams: &[(&str, &str)], keys: Vec<SessionKey>) -> Config {
    let mut config = config_for(upstreams[0].1);
    let template = config.upstreams[0].clone();
    config.upstreams = upstreams
        .iter()
        .map(|(name, url)| {
            let mut u = template.clone();
            u.name = (*name).into();
            u.target = UpstreamTarget::Url(UpstreamUrl::parse(url).unwrap());
            u
        })
        .collect();
    config.sessions.keys = keys;
    config.sessions.max_age = Duration::from_secs(3600);
    config
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    sid: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = client
        .request(method, url)
        .header("accept", ACCEPT_BOTH)
        .header("authorization", ALICE)
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(sid) = sid {
        req = req.header("mcp-session-id", sid);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    req.send().await.unwrap()
}

async fn initialize(client: &reqwest::Client, url: &str) -> String {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let resp = send(client, reqwest::Method::POST, url, None, Some(init)).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await;
    sid
}

/// A tools/call in session `sid`: the status and the JSON body.
async fn call_in(client: &reqwest::Client, url: &str, sid: &str) -> (u16, Value) {
    let resp = send(
        client,
        reqwest::Method::POST,
        url,
        Some(sid),
        Some(call(1, "echo")),
    )
    .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_session_made_on_one_replica_is_routed_by_another() {
    let (server_a, up_a) = SessionServer::start("a", false).await;
    let (_server_b, up_b) = SessionServer::start("b", false).await;
    let (url_a, url_b) = (up_a.url(), up_b.url());
    // The replicas list the upstreams in opposite orders: a sealed id names its upstream.
    let one = Proxy::start(replica(
        &[("a", &url_a), ("b", &url_b)],
        vec![key("k1", K1)],
    ))
    .await;
    let two = Proxy::start(replica(
        &[("b", &url_b), ("a", &url_a)],
        vec![key("k1", K1)],
    ))
    .await;
    let client = client();
    // Round robin on replica one: a session on each upstream.
    let s1 = initialize(&client, &one.url()).await;
    let s2 = initialize(&client, &one.url()).await;
    for (sid, upstream) in [(&s1, "a"), (&s2, "b")] {
        assert!(sid.len() < 200, "{} bytes", sid.len());
        assert!(
            !sid.contains(&format!("{upstream}-0")),
            "the upstream id is hidden"
        );
        for replica in [&one, &two] {
            let (status, body) = call_in(&client, &replica.url(), sid).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["result"]["upstream"], upstream, "{body}");
            assert_eq!(body["result"]["session"], format!("{upstream}-0"));
        }
    }
    let m = two.metrics().await;
    assert_eq!(
        sample(&m, r#"shadowcat_sessions_total{outcome="adopted"}"#),
        Some(2.0),
        "{m}"
    );
    // A GET stream through replica two names the upstream's session.
    let mut get = send(&client, reqwest::Method::GET, &two.url(), Some(&s1), None).await;
    assert_eq!(get.status(), 200);
    let (text, _) = read_events(&mut get, 1).await;
    assert!(text.contains(r#""session":"a-0""#), "{text}");
    drop(get);
    // DELETE through replica two ends it: two refuses it at once (404 without upstream
    // contact), and one learns it from the upstream's 404.
    let del = send(
        &client,
        reqwest::Method::DELETE,
        &two.url(),
        Some(&s1),
        None,
    )
    .await;
    assert_eq!(del.status(), 200);
    assert_eq!(server_a.live(), 0);
    let seen = up_a.received().len();
    let (status, body) = call_in(&client, &two.url(), &s1).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!(-32001)));
    assert_eq!(
        up_a.received().len(),
        seen,
        "refused without upstream contact"
    );
    let (status, _) = call_in(&client, &one.url(), &s1).await;
    assert_eq!(status, 404);
    // And then without upstream contact on one too.
    let seen = up_a.received().len();
    assert_eq!(call_in(&client, &one.url(), &s1).await.0, 404);
    assert_eq!(up_a.received().len(), seen);
}

#[tokio::test]
async fn keys_rotate_first_seals_all_open() {
    let (_server, up) = SessionServer::start("r", false).await;
    let url = up.url();
    let old = Proxy::start(replica(&[("u", &url)], vec![key("k1", K1)])).await;
    let rotating = Proxy::start(replica(&[("u", &url)], vec![key("k2", K2), key("k1", K1)])).await;
    let new = Proxy::start(replica(&[("u", &url)], vec![key("k2", K2)])).await;
    let client = client();
    let by_old = initialize(&client, &old.url()).await;
    let by_rotating = initialize(&client, &rotating.url()).await;
    let status = |sid: String, proxy: &Proxy| {
        let (client, url) = (client.clone(), proxy.url());
        async move { call_in(&client, &url, &sid).await.0 }
    };
    assert_eq!(
        status(by_old.clone(), &rotating).await,
        200,
        "old keys still open"
    );
    assert_eq!(
        status(by_old.clone(), &new).await,
        404,
        "k1 dropped: unknown key"
    );
    assert_eq!(status(by_rotating.clone(), &new).await, 200, "k2 seals");
    assert_eq!(
        status(by_rotating.clone(), &old).await,
        404,
        "k2 unknown to the old"
    );
    assert_eq!(status(by_rotating, &rotating).await, 200);
}

#[tokio::test]
async fn tampered_foreign_expired_stolen_and_random_ids_get_404_everywhere() {
    let (_server, up) = SessionServer::start("t", false).await;
    let url = up.url();
    let replicas = [
        Proxy::start(replica(&[("u", &url)], vec![key("k1", K1)])).await,
        Proxy::start(replica(&[("u", &url)], vec![key("k1", K1)])).await,
    ];
    let client = client();
    let sid = initialize(&client, &replicas[0].url()).await;
    let now = unix_now();
    let claims = |issued: u64| Claims {
        upstream: "u".into(),
        upstream_id: "t-0".into(),
        principal: Some(principal_hash(&sha256(ALICE))),
        issued: issued as u32,
    };
    let max_age = Duration::from_secs(3600);
    let ours = Sealer::new([("k1", K1.as_bytes())], max_age).unwrap();
    let foreign_secret = Sealer::new([("k1", K2.as_bytes())], max_age).unwrap();
    let foreign_key = Sealer::new([("k9", K1.as_bytes())], max_age).unwrap();
    // Sanity: the same claims sealed with our key, now, are a working id.
    let forged_ok = ours.seal(&claims(now)).unwrap();
    assert_eq!(
        call_in(&client, &replicas[1].url(), &forged_ok).await.0,
        200
    );
    let mut tampered = sid.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let bad = [
        ("tampered", String::from_utf8(tampered).unwrap()),
        ("other secret", foreign_secret.seal(&claims(now)).unwrap()),
        ("unknown key", foreign_key.seal(&claims(now)).unwrap()),
        ("expired", ours.seal(&claims(now - 3601)).unwrap()),
        (
            "random",
            "q8b3WJ4o3cC1I5m2dG6gkVx0bqk2wq3uJm1yXnL9aZc".to_owned(),
        ),
        ("too long", "A".repeat(300)),
    ];
    let seen = up.received().len();
    for replica in &replicas {
        for (what, id) in &bad {
            let (status, body) = call_in(&client, &replica.url(), id).await;
            assert_eq!(status, 404, "{what}: {body}");
            assert_eq!(body["error"]["code"], -32001, "{what}: {body}");
            assert_eq!(body["id"], 1, "{what}: the request's id");
        }
        // A stolen id used with other credentials is just unknown.
        let stolen = client
            .post(replica.url())
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .header("authorization", "Bearer mallory")
            .header("mcp-session-id", &sid)
            .body(call(1, "echo").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(stolen.status(), 404);
    }
    assert_eq!(
        up.received().len(),
        seen,
        "no upstream contact for any of them"
    );
}

fn sha256(text: &str) -> [u8; 32] {
    shadowcat::proxy::reverse::session::principal_of(Some(text.as_bytes())).unwrap()
}
