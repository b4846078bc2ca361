//! Replicas sharing a real `redis-server` (`store: redis`): a session ended on one replica is
//! refused by every replica, rate limits hold across replicas, and when the store goes down
//! routing goes on through sealed ids, rate limits follow `store.on_error`, `/readyz` and
//! `shadowcat_store_errors_total` say so, and all recovers when it is back.

use std::time::Duration;

use serde_json::json;
use shadowcat::config::{Config, OnStoreError, Rate, SessionKey, StoreConfig, StoreKind};

use crate::support::mcp_server::SessionServer;
use crate::support::redis_server::RedisServer;
use crate::support::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-store";

fn replica(upstream: &str, redis: &RedisServer, on_error: OnStoreError) -> Config {
    let mut config = config_for(upstream);
    config.sessions.keys = vec![SessionKey {
        id: "k1".into(),
        secret: SECRET.into(),
    }];
    config.store = StoreConfig {
        kind: StoreKind::Redis,
        url: redis.url(),
        prefix: format!("t{}:", redis.port),
        on_error,
    };
    config
}

async fn initialize(client: &reqwest::Client, url: &str) -> String {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let resp = post(client, url, &init).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await;
    sid
}

async fn in_session(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    sid: &str,
) -> reqwest::Response {
    let mut req = client
        .request(method.clone(), url)
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", sid);
    if method == reqwest::Method::POST {
        req = req
            .header("content-type", "application/json")
            .body(call(1, "echo").to_string());
    }
    req.send().await.unwrap()
}

async fn status(client: &reqwest::Client, url: &str, sid: &str) -> u16 {
    in_session(client, reqwest::Method::POST, url, sid)
        .await
        .status()
        .as_u16()
}

async fn readyz(proxy: &Proxy) -> (u16, String) {
    let resp = reqwest::get(format!("http://{}/readyz", proxy.admin))
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Polls `check` every 50 ms for up to 5 s; whether it came true.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_session_ended_on_one_replica_is_refused_by_every_replica() {
    let redis = RedisServer::start().await;
    let (_server, up) = SessionServer::start("s", false).await;
    let a = Proxy::start(replica(&up.url(), &redis, OnStoreError::Allow)).await;
    let b = Proxy::start(replica(&up.url(), &redis, OnStoreError::Allow)).await;
    let client = client();
    let sid = initialize(&client, &a.url()).await;
    assert_eq!(status(&client, &b.url(), &sid).await, 200);
    let del = in_session(&client, reqwest::Method::DELETE, &a.url(), &sid).await;
    assert_eq!(del.status(), 200);
    // Replica b never saw the DELETE: the store tells it (written before the answer left).
    let seen = up.received().len();
    assert_eq!(status(&client, &b.url(), &sid).await, 404);
    assert_eq!(
        up.received().len(),
        seen,
        "b refused it without upstream contact"
    );
    // A fresh replica, started after the end, refuses it too.
    let c = Proxy::start(replica(&up.url(), &redis, OnStoreError::Allow)).await;
    assert_eq!(status(&client, &c.url(), &sid).await, 404);
    assert_eq!(up.received().len(), seen);
}

#[tokio::test]
async fn rate_limits_hold_across_replicas() {
    let redis = RedisServer::start().await;
    let (_server, up) = SessionServer::start("r", false).await;
    let limited = |on_error| {
        let mut c = replica(&up.url(), &redis, on_error);
        c.rate_limits.per_session = Some(Rate {
            rate: 4,
            per: Duration::from_secs(3600),
            burst: 4,
        });
        c
    };
    let replicas = [
        Proxy::start(limited(OnStoreError::Allow)).await,
        Proxy::start(limited(OnStoreError::Allow)).await,
    ];
    let client = client();
    let sid = initialize(&client, &replicas[0].url()).await;
    // Four tokens for the session in all: alternating replicas, the fifth request is over.
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(status(&client, &replicas[i % 2].url(), &sid).await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    let m = replicas[0].metrics().await;
    assert_eq!(
        sample(&m, r#"shadowcat_rate_limited_total{scope="session"}"#),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn store_down_routing_goes_on_limits_follow_on_error_and_it_recovers() {
    let mut redis = RedisServer::start().await;
    let (_server, up) = SessionServer::start("d", false).await;
    let with_limit = |on_error| {
        let mut c = replica(&up.url(), &redis, on_error);
        c.rate_limits.per_session = Some(Rate {
            rate: 1000,
            per: Duration::from_secs(1),
            burst: 1000,
        });
        c
    };
    let allow = Proxy::start(with_limit(OnStoreError::Allow)).await;
    let deny = Proxy::start(with_limit(OnStoreError::Deny)).await;
    let client = client();
    let sid = initialize(&client, &allow.url()).await;
    assert_eq!(status(&client, &deny.url(), &sid).await, 200);
    assert_eq!(readyz(&deny).await, (200, "ready\n".into()));

    redis.stop();
    // allow: sealed ids still route, this replica's buckets decide.
    assert_eq!(status(&client, &allow.url(), &sid).await, 200);
    // deny: a rate-limited request gets 503 with a JSON-RPC error.
    let resp = in_session(&client, reqwest::Method::POST, &deny.url(), &sid).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 1, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("store"),
        "{body}"
    );
    // /readyz and the error counter say so.
    assert!(eventually(|| async { readyz(&deny).await.0 == 503 }).await);
    let (code, text) = readyz(&allow).await;
    assert_eq!(code, 200);
    assert!(text.contains("store unreachable"), "{text}");
    let m = allow.metrics().await;
    let errors = sample(&m, r#"shadowcat_store_errors_total{op="rate_limit"}"#).unwrap_or(0.0);
    assert!(errors >= 1.0, "{m}");

    // Back: recovery is automatic.
    redis.start_again().await;
    assert!(eventually(|| async { readyz(&deny).await == (200, "ready\n".into()) }).await);
    assert!(
        eventually(|| {
            let (c, u, s) = (client.clone(), deny.url(), sid.clone());
            async move { status(&c, &u, &s).await == 200 }
        })
        .await
    );
}
