//! Hostile input, table-driven: each bad request gets the right 4xx (from the proxy, or from
//! the upstream passed through unchanged) and the proxy serves the next request normally.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// An upstream that judges requests the way MCP servers do.
pub(super) fn strict(req: &Received) -> Reply {
    let bad = |status, code: i32, msg: &str| {
        Reply::status(
            status,
            &json!({"jsonrpc":"2.0","id":null,"error":{"code":code,"message":msg}}).to_string(),
        )
    };
    if req.method != "POST" {
        return Reply::status(405, "");
    }
    if !req
        .header("content-type")
        .is_some_and(|c| c.contains("application/json"))
    {
        return bad(415, -32000, "Unsupported Media Type");
    }
    if let Some(v) = req.header("mcp-protocol-version") {
        if !["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"].contains(&v) {
            return bad(400, -32000, "Unsupported protocol version");
        }
    }
    match serde_json::from_slice::<serde_json::Value>(&req.body) {
        Ok(v) if v.is_object() || v.is_array() => {
            Reply::json(json!({"jsonrpc":"2.0","id":v["id"],"result":{}}))
        }
        Ok(_) => bad(400, -32600, "Invalid Request"),
        Err(_) => bad(400, -32700, "Parse error"),
    }
}

/// Sends raw bytes, half-closes, and returns the response status (0 if the proxy closed the
/// connection without an answer).
pub(super) async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub(super) fn post(host: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A proxy set up as the bad-request tables expect: small limits so each one is reached.
pub(super) fn hostile_config(upstream: &str) -> shadowcat::config::Config {
    let mut config = config_for(upstream);
    config.limits.max_body = 64 * 1024;
    config.limits.max_headers = 50;
    config.limits.body_read_timeout = Duration::from_millis(500);
    config
}

/// Last round's thirty bad requests (host `h`), each with the status it gets from a proxy
/// without policy in front of [`strict`].
pub(super) fn last_round(h: &str) -> Vec<(&'static str, Vec<u8>, u16)> {
    let json_ct = ("content-type", "application/json");
    let ok_body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"b":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    let deep = "[".repeat(60_000);
    let long_id = "s".repeat(10_000);
    let huge_header = "v".repeat(40_000);
    let many: Vec<(String, String)> = (0..60).map(|i| (format!("x-h{i}"), "1".into())).collect();
    let many_refs: Vec<(&str, &str)> = many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([json_ct])
        .collect();
    let chunked = |chunks: &str| {
        format!("POST /mcp HTTP/1.1\r\nhost: {h}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{chunks}").into_bytes()
    };

    vec![
        ("truncated JSON", post(h, &[json_ct], br#"{"jsonrpc":"2.0","id":"#), 400),
        ("not JSON", post(h, &[json_ct], b"hello"), 400),
        ("JSON scalar", post(h, &[json_ct], b"42"), 400),
        ("invalid UTF-8", post(h, &[json_ct], b"{\"a\":\"\xff\xfe\"}"), 400),
        ("empty body", post(h, &[json_ct], b""), 400),
        ("deeply nested JSON", post(h, &[json_ct], deep.as_bytes()), 400),
        ("wrong content-type", post(h, &[("content-type", "text/plain")], ok_body), 415),
        ("no content-type", post(h, &[], ok_body), 415),
        ("declared body over max_body", post(h, &[json_ct], big.as_bytes()), 413),
        ("chunked body over max_body", chunked(&format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len())), 413),
        ("unknown session id", post(h, &[json_ct, ("mcp-session-id", "nope")], ok_body), 404),
        ("session id with spaces", post(h, &[json_ct, ("mcp-session-id", "a b c")], ok_body), 404),
        ("10 KB session id", post(h, &[json_ct, ("mcp-session-id", &long_id)], ok_body), 404),
        ("conflicting session ids", post(h, &[json_ct, ("mcp-session-id", "a"), ("mcp-session-id", "b")], ok_body), 400),
        ("malformed protocol version", post(h, &[json_ct, ("mcp-protocol-version", "latest")], ok_body), 400),
        ("unsupported protocol version", post(h, &[json_ct, ("mcp-protocol-version", "1999-01-01")], ok_body), 400),
        ("too many headers", post(h, &many_refs, ok_body), 431),
        ("oversized header", post(h, &[json_ct, ("x-big", &huge_header)], ok_body), 431),
        ("foreign Origin", post(h, &[json_ct, ("origin", "http://evil.example")], ok_body), 403),
        ("foreign Host", post("evil.example.com", &[json_ct], ok_body), 403),
        ("wrong path", format!("POST /other HTTP/1.1\r\nhost: {h}\r\ncontent-length: 2\r\n\r\n{{}}").into_bytes(), 404),
        ("wrong method", format!("PUT /mcp HTTP/1.1\r\nhost: {h}\r\ncontent-length: 2\r\n\r\n{{}}").into_bytes(), 405),
        ("GET the upstream refuses", format!("GET /mcp HTTP/1.1\r\nhost: {h}\r\naccept: text/event-stream\r\n\r\n").into_bytes(), 405),
        // (Pingora peeks for the 24-byte h2c preface first: garbage shorter than that waits
        // for more bytes, bounded by Pingora's 60 s header timeout.)
        ("garbage request line", b"GARBAGE GARBAGE GARBAGE GARBAGE\r\n\r\n".to_vec(), 400),
        ("unsupported HTTP version", format!("GET /mcp HTTP/9.9\r\nhost: {h}\r\n\r\n").into_bytes(), 400),
        ("control byte in a header", format!("GET /mcp HTTP/1.1\r\nhost: {h}\r\nx: a\x01b\r\n\r\n").into_bytes(), 400),
        ("conflicting Content-Length", format!("POST /mcp HTTP/1.1\r\nhost: {h}\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello").into_bytes(), 400),
        ("non-numeric Content-Length", format!("POST /mcp HTTP/1.1\r\nhost: {h}\r\ncontent-length: abc\r\n\r\n").into_bytes(), 400),
        ("invalid header name", format!("POST /mcp HTTP/1.1\r\nhost: {h}\r\nbad header: x\r\ncontent-length: 0\r\n\r\n").into_bytes(), 400),
        ("bad chunk size", chunked("zz\r\nhello\r\n0\r\n\r\n"), 400),
        ("truncated chunked body", chunked("64\r\n{\"jsonrpc\":"), 408),
        ("body slower than body_read_timeout", format!("POST /mcp HTTP/1.1\r\nhost: {h}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{").into_bytes(), 408),
    ]
}

#[tokio::test]
async fn thirty_bad_requests_each_get_the_right_4xx() {
    let upstream = MockUpstream::start(strict).await;
    let proxy = Proxy::start(hostile_config(&upstream.url())).await;
    let host = proxy.addr.to_string();
    let cases = last_round(&host);
    assert!(cases.len() >= 30);
    assert_each(&proxy, &cases).await;
}

/// Sends each case on its own connection and checks its status; after each, the proxy still
/// serves a plain request.
pub(super) async fn assert_each(proxy: &Proxy, cases: &[(&str, Vec<u8>, u16)]) {
    let ok_body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let mut wrong = Vec::new();
    for (name, bytes, want) in cases {
        let got = raw(proxy.addr, bytes).await;
        if got != *want {
            wrong.push(format!("{name}: got {got}, want {want}"));
        }
        // The proxy keeps serving.
        let resp = client()
            .post(proxy.url())
            .header("content-type", "application/json")
            .body(ok_body.to_vec())
            .send()
            .await
            .unwrap_or_else(|e| panic!("after {name}: {e}"));
        assert_eq!(resp.status(), 200, "after {name}");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn requests_from_clients_that_already_left_do_not_hurt() {
    let upstream = MockUpstream::start(|_| {
        Reply::After(Duration::from_millis(200), Box::new(Reply::json(json!({}))))
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    for _ in 0..20 {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        let req = post(
            &proxy.addr.to_string(),
            &[("content-type", "application/json")],
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        );
        s.write_all(&req).await.unwrap();
        drop(s); // gone before the answer
    }
    let resp = client().post(proxy.url()).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn concurrency_limits_per_session_and_overall() {
    use crate::support::mcp_server::SessionServer;
    let (_server, upstream) = SessionServer::start("up", false).await;
    let mut config = config_for(&upstream.url());
    config.limits.max_streams_per_session = 2;
    config.limits.max_concurrent_requests = 3;
    let proxy = Proxy::start(config).await;
    let client = client();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{}});
    let resp = crate::support::post(&client, &proxy.url(), &init).await;
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let open = |sid: String| {
        let client = client.clone();
        let url = proxy.url();
        async move {
            client
                .get(url)
                .header("accept", "text/event-stream")
                .header("mcp-session-id", sid)
                .send()
                .await
                .unwrap()
        }
    };
    let mut a = open(sid.clone()).await;
    let mut b = open(sid.clone()).await;
    read_events(&mut a, 1).await;
    read_events(&mut b, 1).await;
    let third = open(sid.clone()).await;
    assert_eq!(third.status(), 429, "a third stream in one session");
    drop(third);
    drop(a);
    let mut again = None;
    for _ in 0..50 {
        let r = open(sid.clone()).await;
        if r.status() == 200 {
            again = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = again.expect("a closed stream frees its place");
    read_events(&mut again, 1).await;

    // Two streams are open; a second session's two streams make four requests > 3.
    let resp = crate::support::post(&client, &proxy.url(), &init).await;
    let other = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut c = open(other.clone()).await;
    read_events(&mut c, 1).await;
    let over = open(other).await;
    assert_eq!(over.status(), 503);
    assert!(over.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn idle_keepalive_connections_are_closed() {
    let upstream = MockUpstream::start(|_| Reply::json(json!({}))).await;
    let mut config = config_for(&upstream.url());
    config.limits.keepalive_idle = Duration::from_secs(1);
    let proxy = Proxy::start(config).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&post(
        &proxy.addr.to_string(),
        &[("content-type", "application/json")],
        b"{}",
    ))
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Nothing more is sent: the proxy closes the idle connection after keepalive_idle.
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "closed: {closed:?}"
    );
}

/// Regression: a `Content-Length` repeated with the same value (`40, 40`, or two lines), which
/// Pingora's parser accepts, went to the upstream as the client wrote it; the upstream now
/// gets one value: the body's own length, set by the upstream client.
#[tokio::test]
async fn repeated_content_length_reaches_the_upstream_as_one_value() {
    let upstream = MockUpstream::start(|req| {
        Reply::json(json!({"jsonrpc":"2.0","id":req.json()["id"],"result":{}}))
    })
    .await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let n = body.len();
    {
        let config = config_for(&upstream.url());
        let proxy = Proxy::start(config).await;
        let host = proxy.addr;
        for lengths in [
            format!("content-length: {n}, {n}"),
            format!("content-length: {n}\r\ncontent-length: {n}"),
        ] {
            let req = format!(
                "POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{lengths}\r\n\r\n{body}"
            );
            let before = upstream.received().len();
            assert_eq!(raw(proxy.addr, req.as_bytes()).await, 200, "{lengths:?}");
            let got = upstream.received();
            assert_eq!(got.len(), before + 1);
            let seen = &got[before];
            assert_eq!(
                seen.header_lines("content-length"),
                [n.to_string()],
                "{lengths:?}"
            );
            assert_eq!(seen.body, body.as_bytes());
        }
    }
}
