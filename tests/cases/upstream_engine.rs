//! The upstream engine: HTTP/2 (h2c by prior knowledge, h2 by ALPN), HTTPS upstreams (good
//! chain, and every way the handshake fails: 502 naming TLS, with a metric label), mTLS
//! upstreams, trace context passed through, SSE over TLS unbuffered, a stream resumed over TLS
//! after its connection died, and a client's disconnect resetting an HTTP/2 upstream stream.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use shadowcat::config::{Config, Http2Mode, UpstreamTls};

use crate::support::http_upstream::{HttpUpstream, UpstreamTls as ServeTls};
use crate::support::tls::Certs;
use crate::support::*;

const H2: &[&[u8]] = &[b"h2", b"http/1.1"];
const H1: &[&[u8]] = &[b"http/1.1"];

fn config_with(url: &str, tweak: impl FnOnce(&mut shadowcat::config::UpstreamConfig)) -> Config {
    let mut config = config_for(url);
    tweak(&mut config.upstreams[0]);
    config
}

/// A `ping` through the proxy: status and JSON body.
async fn ping_through(proxy: &Proxy, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client()
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = req
        .body(json!({"jsonrpc":"2.0","id":7,"method":"ping"}).to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn http_upstreams_speak_http1_by_default_and_h2c_with_http2_always() {
    let upstream = HttpUpstream::start(None).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let (status, body) = ping_through(&proxy, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["version"], "HTTP/1.1");
    drop(proxy);

    let proxy = Proxy::start(config_with(&upstream.url(), |u| {
        u.http2 = Http2Mode::Always
    }))
    .await;
    for _ in 0..3 {
        let (status, body) = ping_through(&proxy, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["result"]["version"], "HTTP/2.0",
            "h2c, prior knowledge"
        );
    }
}

/// W3C trace context reaches the upstream exactly as the client sent it.
#[tokio::test]
async fn traceparent_and_tracestate_pass_through_unchanged() {
    let upstream = HttpUpstream::start(None).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let ts = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    let (status, body) = ping_through(&proxy, &[("traceparent", tp), ("tracestate", ts)]).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["traceparent"], tp);
    assert_eq!(body["result"]["tracestate"], ts);
}

/// MCP 2026-07-28: closing a request's stream cancels it. Over HTTP/2 that is an
/// `RST_STREAM` on the one stream, and the connection goes on serving others.
#[tokio::test]
async fn a_client_disconnect_resets_the_http2_upstream_stream() {
    let upstream = HttpUpstream::start(None).await;
    let proxy = Proxy::start(config_with(&upstream.url(), |u| {
        u.http2 = Http2Mode::Always
    }))
    .await;
    let c = client();
    let mut resp = c
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "stream")
        .body(call(1, "stream").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    read_events(&mut resp, 2).await;
    assert_eq!(upstream.cancelled.load(Ordering::Relaxed), 0);
    drop(resp);
    drop(c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while upstream.cancelled.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream stream was not reset"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = ping_through(&proxy, &[]).await;
    assert_eq!(
        (status, body["result"]["version"].as_str()),
        (200, Some("HTTP/2.0"))
    );
}

/// An HTTPS upstream with a certificate for `names`, signed by a CA of its own; `mtls`: it
/// requires a client certificate signed by that CA.
struct TlsRig {
    certs: Certs,
    ca: crate::support::tls::Ca,
}

impl TlsRig {
    fn new(tag: &str) -> Self {
        let certs = Certs::new(tag);
        let ca = certs.ca("upstream-ca");
        Self { certs, ca }
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.certs.path("upstream-ca.crt")
    }

    async fn upstream(&self, expired: bool, alpn: &[&[u8]], mtls: bool) -> HttpUpstream {
        let (cert, key) = match expired {
            false => self
                .certs
                .server("up", &["localhost", "127.0.0.1"], &self.ca),
            true => self
                .certs
                .server_expired("up", &["localhost", "127.0.0.1"], &self.ca),
        };
        let client_ca = self.ca_file();
        HttpUpstream::start(Some(ServeTls {
            cert: &cert,
            key: &key,
            alpn,
            client_ca: mtls.then_some(client_ca.as_path()),
        }))
        .await
    }

    fn trusting(&self) -> UpstreamTls {
        UpstreamTls {
            ca_file: Some(self.ca_file()),
            ..UpstreamTls::default()
        }
    }
}

#[tokio::test]
async fn an_https_upstream_with_a_good_chain_answers_over_h2_or_http1() {
    let rig = TlsRig::new("up-good");
    let upstream = rig.upstream(false, H2, false).await;
    let proxy = Proxy::start(config_with(&upstream.url_as("localhost"), |u| {
        u.tls = rig.trusting()
    }))
    .await;
    let (status, body) = ping_through(&proxy, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["version"], "HTTP/2.0", "h2 offered by ALPN");
    drop(proxy);

    let proxy = Proxy::start(config_with(&upstream.url(), |u| {
        u.tls = rig.trusting();
        u.http2 = Http2Mode::Never;
    }))
    .await;
    let (status, body) = ping_through(&proxy, &[]).await;
    assert_eq!(status, 200, "an IP address in the certificate: {body}");
    assert_eq!(body["result"]["version"], "HTTP/1.1");

    let h1_only = rig.upstream(false, H1, false).await;
    let proxy = Proxy::start(config_with(&h1_only.url(), |u| u.tls = rig.trusting())).await;
    let (status, body) = ping_through(&proxy, &[]).await;
    assert_eq!(
        (status, body["result"]["version"].as_str()),
        (200, Some("HTTP/1.1"))
    );
}

/// A handshake that fails: 502, a JSON-RPC error (the request's id) naming TLS, and the
/// failure's kind on `shadowcat_upstream_errors_total`.
async fn assert_tls_refused(config: Config, kind: &str) {
    let proxy = Proxy::start(config).await;
    let (status, body) = ping_through(&proxy, &[]).await;
    assert_eq!(status, 502, "{kind}: {body}");
    assert_eq!(body["id"], 7, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("TLS"), "{kind}: {message}");
    let series = format!("shadowcat_upstream_errors_total{{kind=\"{kind}\",upstream=\"mock\"}}");
    assert!(
        proxy.settled(&series, 1.0).await.is_some(),
        "{kind}: {}",
        proxy.metrics().await
    );
}

#[tokio::test]
async fn tls_failures_are_502_naming_tls_with_their_kind() {
    let rig = TlsRig::new("up-bad");
    let good = rig.upstream(false, H2, false).await;
    // Not trusted: the system roots do not know the test CA.
    assert_tls_refused(config_for(&good.url_as("localhost")), "tls_unknown_ca").await;
    // A name the certificate does not hold.
    let other = rig.certs.server("other", &["other.test"], &rig.ca);
    let wrong = HttpUpstream::start(Some(ServeTls {
        cert: &other.0,
        key: &other.1,
        alpn: H2,
        client_ca: None,
    }))
    .await;
    assert_tls_refused(
        config_with(&wrong.url_as("localhost"), |u| u.tls = rig.trusting()),
        "tls_name_mismatch",
    )
    .await;
    // `tls.server_name` checks (and sends) the name the certificate holds.
    let proxy = Proxy::start(config_with(&wrong.url_as("localhost"), |u| {
        u.tls = UpstreamTls {
            server_name: Some("other.test".into()),
            ..rig.trusting()
        }
    }))
    .await;
    assert_eq!(ping_through(&proxy, &[]).await.0, 200);
    drop(proxy);
    let expired = rig.upstream(true, H2, false).await;
    assert_tls_refused(
        config_with(&expired.url_as("localhost"), |u| u.tls = rig.trusting()),
        "tls_expired",
    )
    .await;
    // Only when written out: any certificate is accepted.
    let proxy = Proxy::start(config_with(&expired.url_as("localhost"), |u| {
        u.tls = UpstreamTls {
            insecure_skip_verify: true,
            ..UpstreamTls::default()
        }
    }))
    .await;
    assert_eq!(ping_through(&proxy, &[]).await.0, 200);
}

#[tokio::test]
async fn an_mtls_upstream_gets_the_configured_client_certificate() {
    let rig = TlsRig::new("up-mtls");
    let upstream = rig.upstream(false, H2, true).await;
    assert_tls_refused(
        config_with(&upstream.url_as("localhost"), |u| u.tls = rig.trusting()),
        "tls_client_cert",
    )
    .await;
    let (cert, key) = rig.certs.client_files("proxy-id", "shadowcat", &rig.ca);
    let proxy = Proxy::start(config_with(&upstream.url_as("localhost"), |u| {
        u.tls = UpstreamTls {
            cert_file: Some(cert),
            key_file: Some(key),
            ..rig.trusting()
        }
    }))
    .await;
    let (status, body) = ping_through(&proxy, &[]).await;
    assert_eq!(status, 200, "{body}");
}

/// A session over TLS: `initialize`, then a `tools/call` answered as an SSE stream.
async fn session_call(proxy: &Proxy, c: &reqwest::Client, tool: &str) -> reqwest::Response {
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let resp = post(c, &proxy.url(), &init).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(sid, "upstream-session-1", "the proxy issues its own id");
    c.post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-11-25")
        .body(call(2, tool).to_string())
        .send()
        .await
        .unwrap()
}

/// Each upstream event reaches the client while the upstream still holds the stream open:
/// nothing waits for the body's end, over TLS and HTTP/2 as over plain HTTP/1.1.
#[tokio::test]
async fn sse_over_tls_is_not_buffered() {
    let rig = TlsRig::new("up-sse");
    let upstream = rig.upstream(false, H2, false).await;
    let proxy = Proxy::start(config_with(&upstream.url_as("localhost"), |u| {
        u.tls = rig.trusting()
    }))
    .await;
    let c = client();
    let mut resp = session_call(&proxy, &c, "stream").await;
    assert_eq!(resp.status(), 200);
    let (text, _) = read_events(&mut resp, 2).await;
    assert!(
        text.contains("\"progress\":1") && text.contains("\"progress\":2"),
        "{text}"
    );
    assert!(
        !text.contains("up-1"),
        "the upstream's ids never show: {text}"
    );
}

/// The upstream connection dies under a session stream whose events carry ids: the proxy
/// resumes it upstream (`GET` + the upstream's `Last-Event-ID`, through the same TLS client)
/// and the client sees one stream: every event once, in order, then the result.
#[tokio::test]
async fn a_stream_whose_tls_connection_dies_is_resumed_upstream() {
    let rig = TlsRig::new("up-resume");
    let upstream = rig.upstream(false, H2, false).await;
    let proxy = Proxy::start(config_with(&upstream.url_as("localhost"), |u| {
        u.tls = rig.trusting()
    }))
    .await;
    let c = client();
    let resp = session_call(&proxy, &c, "stream_dies").await;
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .expect("the stream ends")
        .unwrap();
    let progress: Vec<_> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .collect();
    let numbers: Vec<_> = progress
        .iter()
        .filter_map(|m| m["params"]["progress"].as_u64())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4], "{text}");
    assert_eq!(progress.last().unwrap()["id"], 2, "{text}");
    assert!(
        !text.contains("half"),
        "the dead connection's half event is dropped: {text}"
    );
    let resumed = upstream
        .seen()
        .into_iter()
        .filter(|s| s.headers.contains_key("last-event-id"))
        .map(|s| s.headers["last-event-id"].to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(resumed, ["up-2"]);
}
