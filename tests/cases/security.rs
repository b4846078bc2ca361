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
        .push(shadowcat::authority::AuthorityPattern::new(
            "mcp.example.com:*",
        ));
    config
        .security
        .allowed_origins
        .push(shadowcat::authority::AuthorityPattern::new(
            "https://app.example.com",
        ));
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

/// Real gateways have leaked clients' tokens to upstreams; Shadowcat strips them by default
/// and sends the upstream's own credentials instead.
#[tokio::test]
async fn client_credentials_never_reach_the_upstream_unless_configured() {
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let mut config = config_for(&upstream.url());
    let mut value = http::HeaderValue::from_static("Bearer upstream-own");
    value.set_sensitive(true);
    config.upstreams[0].headers = vec![(http::header::AUTHORIZATION, value)];
    let proxy = Proxy::start(config).await;
    let send = |url: String| async move {
        client()
            .post(url)
            .header("authorization", "Bearer client-token")
            .header("cookie", "sid=client")
            .header("proxy-authorization", "Basic cHJveHk=")
            .body(call(1, "x").to_string())
            .send()
            .await
            .unwrap()
    };
    assert_eq!(send(proxy.url()).await.status(), 200);
    let seen = &upstream.received()[0];
    assert_eq!(seen.header("authorization"), Some("Bearer upstream-own"));
    assert_eq!(seen.header("cookie"), None);
    assert_eq!(seen.header("proxy-authorization"), None);

    let upstream2 =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let mut config = config_for(&upstream2.url());
    config.upstreams[0].forward_authorization = true;
    let proxy2 = Proxy::start(config).await;
    assert_eq!(send(proxy2.url()).await.status(), 200);
    let seen = &upstream2.received()[0];
    assert_eq!(seen.header("authorization"), Some("Bearer client-token"));
    assert_eq!(seen.header("cookie"), Some("sid=client"));
    assert_eq!(
        seen.header("proxy-authorization"),
        None,
        "hop-by-hop, always removed"
    );
}

#[tokio::test]
async fn over_a_rate_limit_is_429_with_retry_after() {
    use shadowcat::config::Rate;
    use std::time::Duration;
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let mut config = config_for(&upstream.url());
    config.rate_limits.per_ip = Some(Rate {
        rate: 1,
        per: Duration::from_secs(60),
        burst: 3,
    });
    let proxy = Proxy::start(config).await;
    let client = client();
    for _ in 0..3 {
        assert_eq!(
            post(&client, &proxy.url(), &call(1, "x")).await.status(),
            200
        );
    }
    let resp = post(&client, &proxy.url(), &call(9, "x")).await;
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(9), json!(-32008))
    );
    assert_eq!(upstream.received().len(), 3, "refused before the upstream");
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(&metrics, r#"shadowcat_rate_limited_total{scope="ip"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    use shadowcat::config::{Cidr, Rate};
    use std::time::Duration;
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let mut config = config_for(&upstream.url());
    config.rate_limits.per_ip = Some(Rate {
        rate: 1,
        per: Duration::from_secs(60),
        burst: 1,
    });
    config.rate_limits.trusted_proxies = vec![Cidr::parse("127.0.0.0/8").unwrap()];
    let proxy = Proxy::start(config).await;
    let client = client();
    let from = |ip: &'static str| {
        let client = client.clone();
        let url = proxy.url();
        async move {
            client
                .post(url)
                .header("x-forwarded-for", ip)
                .body(call(1, "x").to_string())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // The peer (127.0.0.1) is trusted, so each forwarded client has its own budget.
    assert_eq!(from("203.0.113.1").await, 200);
    assert_eq!(from("203.0.113.2").await, 200);
    assert_eq!(from("203.0.113.1").await, 429);
}

/// One keep-alive exchange on an open connection: the status, and whether the proxy closed it.
async fn exchange(s: &mut tokio::net::TcpStream, body: &str) -> (u16, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, true);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n =
            match tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return (0, true),
            };
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                let status = text[9..12].parse().unwrap_or(0);
                return (status, text[..end].contains("connection: close"));
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    (
        text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0),
        true,
    )
}

/// `limits.max_connections` counts connections from accept: past it a new one is closed at
/// once, before any head is read, and counted.
#[tokio::test]
async fn connections_past_the_limit_are_closed_at_accept_until_one_closes() {
    let upstream = MockUpstream::start(|req| {
        Reply::json(serde_json::json!({"jsonrpc":"2.0","id":req.json()["id"],"result":{}}))
    })
    .await;
    let mut config = config_for(&upstream.url());
    config.limits.max_connections = 2;
    let proxy = Proxy::start(config).await;
    let body = call(1, "echo").to_string();
    // The harness's readiness probe was a connection too: wait until it has left the count.
    assert_eq!(
        proxy.settled("shadowcat_connections_open", 0.0).await,
        Some(0.0)
    );
    let connect = || tokio::net::TcpStream::connect(proxy.addr);
    let mut a = connect().await.unwrap();
    let mut b = connect().await.unwrap();
    assert_eq!(exchange(&mut a, &body).await, (200, false));
    // A connection that has sent nothing yet counts too.
    let mut c = connect().await.unwrap();
    assert_eq!(
        proxy
            .settled(
                "shadowcat_connections_rejected_total{reason=\"max_connections\"}",
                1.0
            )
            .await,
        Some(1.0),
        "the third was refused at accept"
    );
    assert_eq!(
        proxy.settled("shadowcat_connections_open", 2.0).await,
        Some(2.0)
    );
    assert_eq!(
        exchange(&mut c, &body).await,
        (0, true),
        "closed without an answer"
    );
    assert_eq!(exchange(&mut b, &body).await, (200, false));
    // An idle connection keeps its place through its next request.
    assert_eq!(exchange(&mut a, &body).await, (200, false));
    drop(a);
    let mut freed = false;
    for _ in 0..100 {
        let mut d = connect().await.unwrap();
        if exchange(&mut d, &body).await.0 == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "a closed connection gives its place back");
}

/// Regression: with two `Authorization` headers the session principal (and, with `auth:`, the
/// token checked) was the first one, while an upstream with `forward_authorization` could act
/// on the other; such a request is now 400 before any upstream contact.
#[tokio::test]
async fn two_authorization_headers_are_400_without_auth() {
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let mut config = config_for(&upstream.url());
    config.upstreams[0].forward_authorization = true;
    let proxy = Proxy::start(config).await;
    for second in ["Bearer mallory", "Bearer alice"] {
        let resp = client()
            .post(proxy.url())
            .header("content-type", "application/json")
            .header("authorization", "Bearer alice")
            .header("authorization", second)
            .body(call(5, "x").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{second}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32600);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization"));
    }
    assert!(upstream.received().is_empty());
}
