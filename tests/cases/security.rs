//! DNS-rebinding protection: foreign `Origin` and `Host` get 403 before any upstream contact.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn foreign_origin_and_host_are_403_and_loopback_passes() {
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let client = client();
    let resp = client
        .post(proxy.url())
        .header("origin", "http://evil.example")
        .header("accept", ACCEPT_BOTH)
        .body(call(1, "x").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32000);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Origin"));

    let resp = client
        .post(proxy.url())
        .header("origin", format!("http://localhost:{}", proxy.addr.port()))
        .body(call(1, "x").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a loopback origin is served");

    // A foreign name resolving to the proxy (the DNS-rebinding case), over HTTP/1.1 and h2c.
    for h2 in [false, true] {
        let mut builder = reqwest::Client::builder().resolve("evil.example.com", proxy.addr);
        if h2 {
            builder = builder.http2_prior_knowledge();
        }
        let rebinding = builder.build().unwrap();
        let url = format!("http://evil.example.com:{}/mcp", proxy.addr.port());
        let resp = rebinding
            .post(url)
            .body(call(1, "x").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "h2: {h2}");
        assert!(resp.text().await.unwrap().contains("Host"));
    }
    assert_eq!(
        upstream.received().len(),
        1,
        "only the allowed request went upstream"
    );
}

#[tokio::test]
async fn configured_names_are_served() {
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let mut config = config_for(&upstream.url());
    config
        .security
        .allowed_hosts
        .push(shadowcat::glob::Glob::new("mcp.example.com:*", true));
    config
        .security
        .allowed_origins
        .push(shadowcat::glob::Glob::new("https://app.example.com", true));
    let proxy = Proxy::start(config).await;
    let client = reqwest::Client::builder()
        .resolve("mcp.example.com", proxy.addr)
        .build()
        .unwrap();
    let resp = client
        .post(format!("http://mcp.example.com:{}/mcp", proxy.addr.port()))
        .header("origin", "https://app.example.com")
        .body(call(1, "x").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
