//! Client certificates (issue 16, item 3): `required` refuses clients without one or with one
//! from another CA; `optional` serves both; a verified certificate is the principal that
//! sessions and rate limits bind to when no bearer auth is configured.

use std::time::Duration;

use serde_json::json;
use shadowcat::config::{ClientAuth, TlsConfig};
use shadowcat::ratelimit::Rate;

use crate::support::mcp_server::SessionServer;
use crate::support::tls::*;
use crate::support::*;

/// A server pair for `localhost`, client certificates from CA `clients` (`clients.crt`).
fn mtls(certs: &Certs, ca: &Ca, auth: ClientAuth) -> TlsConfig {
    let (c, k) = certs.server("srv", &["localhost"], ca);
    let mut tls = TlsConfig::pair(c, k);
    tls.client_ca_file = Some(certs.path("clients.crt"));
    tls.client_auth = auth;
    tls
}

fn client_with(ca: &Ca, identity: Option<&str>, proxy: &Proxy) -> reqwest::Client {
    https_client(ca, identity)
        .resolve("localhost", proxy.addr)
        .build()
        .unwrap()
}

#[tokio::test]
async fn required_refuses_a_missing_or_foreign_certificate() {
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let certs = Certs::new("mtls-req");
    let ca = certs.ca("ca");
    let clients = certs.ca("clients");
    let other = certs.ca("other");
    let tls = mtls(&certs, &ca, ClientAuth::Required);
    let proxy = Proxy::start(tls_config_for(&upstream.url(), tls)).await;
    let url = https_url("localhost", proxy.addr);
    let alice = certs.client("alice", &clients);
    let mallory = certs.client("mallory", &other);
    assert!(ping(&client_with(&ca, None, &proxy), &url).await.is_err());
    assert!(ping(&client_with(&ca, Some(&mallory), &proxy), &url)
        .await
        .is_err());
    let series = "shadowcat_tls_handshake_failures_total{reason=\"client_cert\"}";
    assert_eq!(proxy.settled(series, 2.0).await, Some(2.0));
    assert_eq!(
        ping(&client_with(&ca, Some(&alice), &proxy), &url).await,
        Ok(200)
    );
    assert_eq!(upstream.received().len(), 1, "only alice got through");
}

fn init_body() -> serde_json::Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
}

async fn call_in(client: &reqwest::Client, url: &str, sid: &str) -> u16 {
    client
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", sid)
        .body(call(1, "echo").to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn optional_serves_without_and_sessions_bind_to_the_certificate() {
    let (_server, upstream) = SessionServer::start("up", false).await;
    let certs = Certs::new("mtls-opt");
    let ca = certs.ca("ca");
    let clients = certs.ca("clients");
    let tls = mtls(&certs, &ca, ClientAuth::Optional);
    let proxy = Proxy::start(tls_config_for(&upstream.url(), tls)).await;
    let url = https_url("localhost", proxy.addr);
    let alice = client_with(&ca, Some(&certs.client("alice", &clients)), &proxy);
    let bob = client_with(&ca, Some(&certs.client("bob", &clients)), &proxy);
    let anonymous = client_with(&ca, None, &proxy);

    let resp = post(&alice, &url, &init_body()).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(call_in(&alice, &url, &sid).await, 200);
    // Another certificate, or none, cannot use alice's session: it is unknown to them.
    assert_eq!(call_in(&bob, &url, &sid).await, 404);
    assert_eq!(call_in(&anonymous, &url, &sid).await, 404);
    // Nor can a header pretend to be her certificate.
    let forged = anonymous
        .post(&url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &sid)
        .header("authorization", "CN=alice")
        .body(call(2, "echo").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);
    // Without a certificate the client is still served (a new session of its own).
    let resp = post(&anonymous, &url, &init_body()).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn rate_limits_per_principal_count_per_certificate() {
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let certs = Certs::new("mtls-rate");
    let ca = certs.ca("ca");
    let clients = certs.ca("clients");
    let mut config = tls_config_for(&upstream.url(), mtls(&certs, &ca, ClientAuth::Required));
    config.rate_limits.per_principal = Some(Rate {
        rate: 1,
        per: Duration::from_secs(60),
        burst: 1,
    });
    let proxy = Proxy::start(config).await;
    let url = https_url("localhost", proxy.addr);
    let alice = client_with(&ca, Some(&certs.client("alice", &clients)), &proxy);
    let bob = client_with(&ca, Some(&certs.client("bob", &clients)), &proxy);
    assert_eq!(ping(&alice, &url).await, Ok(200));
    assert_eq!(ping(&alice, &url).await, Ok(429));
    // Another connection of alice's is still alice, over HTTP/1.1 as over h2.
    let alice_again = https_client(&ca, Some(&certs.client("alice", &clients)))
        .http1_only()
        .resolve("localhost", proxy.addr)
        .build()
        .unwrap();
    assert_eq!(ping(&alice_again, &url).await, Ok(429));
    assert_eq!(ping(&bob, &url).await, Ok(200));
}
