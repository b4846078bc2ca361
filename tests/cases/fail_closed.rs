//! Policy fails closed (issue "Fail closed"): a body the proxy cannot judge exactly as the
//! upstream will read it is refused before any upstream contact; no tunnel opens; a request
//! head has a total deadline.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::interceptors::{echo_upstream, with_rules, RULES};
use crate::support::*;

/// A `tools/call` of `delete_all` (blocked by `RULES`) with `args` spliced in as raw bytes.
fn blocked_call(args: &[u8]) -> Vec<u8> {
    let head = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_all","arguments":"#;
    [head.as_slice(), args, b"}}"].concat()
}

async fn post_raw(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client()
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body).send().await.unwrap()
}

/// Regression (issue "Fail closed", item 1): with a rule blocking `delete_*`, each of these
/// bodies ran the tool on a lenient upstream, because the peek failed and the proxy forwarded
/// what it could not read. Each is now refused with 400 and a JSON-RPC error, and the upstream
/// is never contacted.
#[tokio::test]
async fn regression_bodies_the_judge_cannot_read_never_reach_the_upstream() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let mut invalid_utf8 = blocked_call(br#"{"a":"XX"}"#);
    let at = invalid_utf8.windows(2).position(|w| w == b"XX").unwrap();
    invalid_utf8[at..at + 2].copy_from_slice(b"\xff\xfe");
    let utf16: Vec<u8> = String::from_utf8(blocked_call(b"{}"))
        .unwrap()
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
    let cases: Vec<(&str, Vec<u8>, i64)> = vec![
        (
            "byte-order mark",
            [b"\xEF\xBB\xBF".as_slice(), &blocked_call(b"{}")].concat(),
            -32700,
        ),
        ("invalid UTF-8", invalid_utf8, -32700),
        ("lone surrogate", blocked_call(br#"{"a":"\ud800"}"#), -32700),
        ("number past f64", blocked_call(br#"{"a":1e400}"#), -32700),
        ("129 levels deep", blocked_call(deep.as_bytes()), -32700),
        ("NaN", blocked_call(br#"{"a":NaN}"#), -32700),
        ("UTF-16", utf16, -32700),
        ("empty body", Vec::new(), -32700),
        ("a scalar", b"42".to_vec(), -32600),
        (
            "an invalid batch member",
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},7]"#.to_vec(),
            -32600,
        ),
    ];
    for (what, body, code) in cases {
        let resp = post_raw(&proxy.url(), body, &[]).await;
        assert_eq!(resp.status(), 400, "{what}");
        let got: Value = resp.json().await.unwrap();
        assert_eq!(got["error"]["code"], code, "{what}: {got}");
    }
    assert_eq!(upstream.connections(), 0, "no upstream contact at all");
    // A body it can judge still goes through.
    let resp = post(&client(), &proxy.url(), &call(8, "echo")).await;
    assert_eq!(resp.status(), 200);
}

/// Without any policy, bodies pass as they always did: the upstream judges them.
#[tokio::test]
async fn without_policy_unreadable_bodies_still_reach_the_upstream() {
    let upstream = MockUpstream::start(|_| Reply::status(400, r#"{"upstream":"judged"}"#)).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let body = [b"\xEF\xBB\xBF".as_slice(), &blocked_call(b"{}")].concat();
    let resp = post_raw(&proxy.url(), body.clone(), &[("content-encoding", "gzip")]).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.text().await.unwrap(), r#"{"upstream":"judged"}"#);
    assert_eq!(upstream.received()[0].body, body, "forwarded as sent");
}

/// Regression (issue "Fail closed", item 1): an encoded body cannot be judged; with policy on
/// it gets 415 before any upstream contact.
#[tokio::test]
async fn regression_encoded_bodies_get_415_with_policy() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    for encoding in ["gzip", "identity, br", "deflate"] {
        let body = serde_json::to_vec(&call(1, "delete_all")).unwrap();
        let resp = post_raw(&proxy.url(), body, &[("content-encoding", encoding)]).await;
        assert_eq!(resp.status(), 415, "{encoding}");
        let got: Value = resp.json().await.unwrap();
        assert_eq!(got["error"]["code"], -32700);
    }
    assert_eq!(upstream.connections(), 0);
    let body = serde_json::to_vec(&call(2, "echo")).unwrap();
    let resp = post_raw(&proxy.url(), body, &[("content-encoding", "identity")]).await;
    assert_eq!(resp.status(), 200);
}

/// Bodies Pingora cannot hold before choosing an upstream (over 64 KiB, or chunked) are read
/// whole too: a blocked one never reaches the upstream, not even its head, and an allowed one
/// arrives whole, on either exchange path.
#[tokio::test]
async fn large_and_chunked_bodies_are_judged_before_any_upstream_contact() {
    {
        let upstream = echo_upstream().await;
        let config = with_rules(&upstream.url(), RULES);
        let proxy = Proxy::start(config).await;
        let pad = "p".repeat(100 * 1024);
        let blocked = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"delete_all","arguments":{"pad": pad}}});
        let got: Value = post(&client(), &proxy.url(), &blocked)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(got["error"]["code"], -32001, "blocked");
        // Chunked: a stream body has no length.
        let chunked = |v: &Value| {
            let bytes = serde_json::to_vec(v).unwrap();
            let stream = futures_util::stream::iter(
                bytes
                    .chunks(1000)
                    .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                    .collect::<Vec<_>>(),
            );
            client()
                .post(proxy.url())
                .header("accept", ACCEPT_BOTH)
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(stream))
                .send()
        };
        let small =
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_x"}});
        let got: Value = chunked(&small).await.unwrap().json().await.unwrap();
        assert_eq!(got["error"]["code"], -32001, "chunked, blocked");
        let got: Value = chunked(&blocked).await.unwrap().json().await.unwrap();
        assert_eq!(got["error"]["code"], -32001, "large chunked, blocked");
        assert_eq!(upstream.connections(), 0, "no upstream contact");

        let allowed = json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
            "params":{"name":"echo","arguments":{"pad": pad}}});
        let got: Value = chunked(&allowed).await.unwrap().json().await.unwrap();
        assert_eq!(got["result"]["got"], allowed, "arrives whole");
        let got: Value = post(&client(), &proxy.url(), &allowed)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(got["result"]["got"], allowed);
    }
}

/// Regression (issue "Fail closed", item 2): `Upgrade` was forwarded, so an upstream that
/// answered 101 opened a raw tunnel past every check.
#[tokio::test]
async fn regression_upgrade_never_reaches_the_upstream() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let body = call(1, "echo").to_string();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        proxy.addr,
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let seen = &upstream.received()[0];
    assert_eq!(seen.header("upgrade"), None);
    assert!(!seen
        .header("connection")
        .is_some_and(|c| c.to_ascii_lowercase().contains("upgrade")));
}

/// Regression (issue "Fail closed", item 2): an upstream `101 Switching Protocols` becomes 502
/// with a JSON-RPC error, on both exchange paths, and the proxy goes on serving.
#[tokio::test]
async fn regression_an_upstream_101_becomes_502() {
    {
        let upstream = MockUpstream::start(|req| {
            if req.json()["method"] == "tools/call" {
                Reply::Full {
                    status: 101,
                    headers: vec![
                        ("connection".into(), "upgrade".into()),
                        ("upgrade".into(), "websocket".into()),
                    ],
                    body: Vec::new(),
                }
            } else {
                Reply::json(json!({"jsonrpc":"2.0","id":req.json()["id"],"result":{}}))
            }
        })
        .await;
        let config = config_for(&upstream.url());
        let proxy = Proxy::start(config).await;
        let resp = post(&client(), &proxy.url(), &call(5, "echo")).await;
        assert_eq!(resp.status(), 502);
        let got: Value = resp.json().await.unwrap();
        assert_eq!(got["id"], 5);
        assert_eq!(got["error"]["code"], -32002);
        let message = got["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("101"), "{message}");
        let ping = json!({"jsonrpc":"2.0","id":6,"method":"ping"});
        assert_eq!(post(&client(), &proxy.url(), &ping).await.status(), 200);
    }
}

/// Writes `bytes` one at a time, `gap` apart, until the proxy closes the connection or
/// `budget` passes. Returns how long the connection stayed open, or `None` if it never closed.
async fn trickle(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    gap: Duration,
    budget: Duration,
) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 512];
    for b in bytes.iter().cycle() {
        if started.elapsed() > budget {
            return None;
        }
        if s.write_all(&[*b]).await.is_err() {
            return Some(started.elapsed());
        }
        if let Ok(r) = tokio::time::timeout(gap, s.read(&mut buf)).await {
            match r {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                Ok(_) => {}
            }
        }
    }
    None
}

/// Regression (issue "Fail closed", item 3): a client sending one header byte at a time kept
/// its connection forever (Pingora's header timer restarts on every read). Now the head has a
/// total deadline from accept, and the connection is closed and counted past it.
#[tokio::test]
async fn regression_slow_headers_are_cut_at_the_head_deadline() {
    let upstream = echo_upstream().await;
    let mut config = config_for(&upstream.url());
    config.limits.header_read_timeout = Duration::from_secs(1);
    let proxy = Proxy::start(config).await;
    let head = format!("POST /mcp HTTP/1.1\r\nhost: {}\r\nx-slow: ", proxy.addr);
    let open = trickle(
        proxy.addr,
        head.as_bytes(),
        Duration::from_millis(100),
        Duration::from_secs(8),
    )
    .await;
    let open = open.expect("the proxy closed the connection");
    assert!(
        open >= Duration::from_millis(900),
        "not before the deadline: {open:?}"
    );
    assert_eq!(
        proxy
            .settled(
                "shadowcat_connections_rejected_total{reason=\"header_timeout\"}",
                1.0
            )
            .await,
        Some(1.0)
    );
    // A connection that sends nothing at all (it would wait for the h2c preface) too.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(8), s.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a silent connection is closed: {closed:?}"
    );
    assert_eq!(upstream.connections(), 0);
}

/// The deadline times heads only: a response longer than it (an SSE stream) is untouched, and
/// the next head on the keep-alive connection gets the full deadline from the response's end.
#[tokio::test]
async fn the_head_deadline_spares_responses_and_restarts_after_each() {
    let upstream = MockUpstream::start(|_| {
        Reply::sse(
            &[
                "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n",
                "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n",
                "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
            ],
            Duration::from_millis(700),
            false,
        )
    })
    .await;
    let mut config = config_for(&upstream.url());
    config.limits.header_read_timeout = Duration::from_secs(1);
    let proxy = Proxy::start(config).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let body = call(1, "slow").to_string();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\naccept: {ACCEPT_BOTH}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        proxy.addr,
        body.len()
    );
    for round in 0..2 {
        s.write_all(req.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(5).any(|w| w == b"0\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "round {round}: closed mid-stream after {} bytes",
                got.len()
            );
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            String::from_utf8_lossy(&got).contains("\"result\""),
            "round {round}"
        );
        // Well within the deadline counted from the end of the response.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Idle past the deadline: the connection is closed.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
}

/// HTTP/2 (h2c prior knowledge): a connection that sends its preface and then nothing, or no
/// complete HEADERS, is closed after the same deadline.
#[tokio::test]
async fn h2c_connections_without_a_request_are_closed_at_the_head_deadline() {
    let upstream = echo_upstream().await;
    let mut config = config_for(&upstream.url());
    config.limits.header_read_timeout = Duration::from_secs(1);
    let proxy = Proxy::start(config).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    // The preface, then an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // the server's SETTINGS and ACK
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the idle h2c connection was closed");
    assert!(started.elapsed() >= Duration::from_millis(900));
}
