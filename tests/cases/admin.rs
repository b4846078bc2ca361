//! The admin listener with `admin.bearer_token`: `/metrics` needs the token, the probes do not.

use shadowcat::config::BearerToken;

use crate::support::*;

/// Regression: `/metrics` had no protection at all, so an admin listener beyond loopback
/// served every upstream, rule and tool name to anyone who reached it.
#[tokio::test]
async fn metrics_need_the_bearer_token_and_probes_stay_open() {
    let upstream = MockUpstream::start(|_| Reply::json(serde_json::json!({}))).await;
    let mut config = config_for(&upstream.url());
    let token = "s3cret-admin-token-0123456789";
    config.admin_bearer_token = Some(BearerToken::new(token));
    let proxy = Proxy::start(config).await;
    let client = client();
    let get = |path: &str, auth: &[&str]| {
        let mut req = client.get(format!("http://{}{path}", proxy.admin));
        for a in auth {
            req = req.header("authorization", *a);
        }
        req.send()
    };
    let right = format!("Bearer {token}");
    for refused in [
        &[][..],
        &["Bearer wrong"],
        &[&format!("Bearer {token}x")],
        &[&format!("Basic {token}")],
        &[right.as_str(), right.as_str()],
    ] {
        let resp = get("/metrics", refused).await.unwrap();
        assert_eq!(resp.status(), 401, "{refused:?}");
        assert_eq!(
            resp.headers()["www-authenticate"],
            r#"Bearer realm="shadowcat-admin""#
        );
        assert!(!resp.text().await.unwrap().contains("shadowcat_"));
    }
    let resp = get("/metrics", &[&right]).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("shadowcat_sse_streams_active"));
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(get(probe, &[]).await.unwrap().status(), 200, "{probe}");
    }
    assert_eq!(get("/other", &[]).await.unwrap().status(), 404);
}
