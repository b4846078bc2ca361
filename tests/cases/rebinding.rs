//! DNS-rebinding checks that must fail closed on inputs no browser sends, over raw TCP so
//! the bytes are exactly the hostile ones (HTTP clients would normalise or refuse them).

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Sends `head` (request line and headers, without the blank line) with a small JSON-RPC
/// body, and returns the status and the body of the answer.
async fn send(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    let body = r#"{"jsonrpc":"2.0","id":41,"method":"ping"}"#;
    let mut req = format!(
        "{head}\r\ncontent-type: application/json\r\naccept: {ACCEPT_BOTH}\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    send_bytes(addr, &req).await
}

async fn send_bytes(addr: std::net::SocketAddr, req: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let len: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

#[tokio::test]
async fn rebinding_checks_refuse_what_no_browser_sends_over_raw_tcp() {
    let upstream = MockUpstream::start(|req| {
        Reply::json(json!({"jsonrpc":"2.0","id":req.json()["id"],"result":{}}))
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let port = proxy.addr.port();
    let ok_host = format!("host: localhost:{port}");
    // (name, request head, status, answered by Pingora's parser: 400 with no JSON-RPC body)
    #[rustfmt::skip]
    let cases: Vec<(&str, String, u16, bool)> = vec![
        ("HTTP/1.1 without Host", "POST /mcp HTTP/1.1".into(), 400, false),
        ("two Host headers", format!("POST /mcp HTTP/1.1\r\n{ok_host}\r\n{ok_host}"), 400, true),
        ("two Origin headers", format!("POST /mcp HTTP/1.1\r\n{ok_host}\r\norigin: http://localhost\r\norigin: http://localhost"), 400, false),
        ("Host a port wildcard must not match", "POST /mcp HTTP/1.1\r\nhost: localhost:x.evil.com".into(), 403, false),
        ("Host with a dotted port", "POST /mcp HTTP/1.1\r\nhost: localhost:1.evil.com".into(), 403, false),
        ("Origin with a dotted port", format!("POST /mcp HTTP/1.1\r\n{ok_host}\r\norigin: http://localhost:1.evil.com"), 403, false),
        ("Origin with userinfo after the port", format!("POST /mcp HTTP/1.1\r\n{ok_host}\r\norigin: http://localhost:80@evil.com"), 403, false),
        ("absolute form without Host", format!("POST http://localhost:{port}/mcp HTTP/1.1"), 400, false),
        ("absolute form naming a foreign host", format!("POST http://evil.example:{port}/mcp HTTP/1.1\r\nhost: evil.example:{port}"), 403, false),
        ("absolute form disagreeing with Host", format!("POST http://evil.example:{port}/mcp HTTP/1.1\r\n{ok_host}"), 400, true),
        ("absolute form agreeing with Host", format!("POST http://localhost:{port}/mcp HTTP/1.1\r\n{ok_host}"), 200, false),
        ("HTTP/1.0 without Host", "POST /mcp HTTP/1.0".into(), 200, false),
        ("loopback Host and Origin", format!("POST /mcp HTTP/1.1\r\n{ok_host}\r\norigin: http://localhost:6274"), 200, false),
    ];
    let mut wrong = Vec::new();
    let mut allowed = 0;
    for (name, head, want, by_pingora) in &cases {
        let (status, body) = send(proxy.addr, head).await;
        if status != *want {
            wrong.push(format!("{name}: got {status}, want {want}: {body}"));
            continue;
        }
        if *by_pingora {
            continue;
        }
        let reply: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        // Refused before the body is read, so with id null; served ones echo 41.
        match want {
            400 => assert_eq!(reply["error"]["code"], -32600, "{name}: {body}"),
            403 => assert_eq!(reply["error"]["code"], -32000, "{name}: {body}"),
            _ => {
                assert_eq!(reply["id"], 41, "{name}: {body}");
                allowed += 1;
            }
        }
        assert_eq!(reply["jsonrpc"], "2.0", "{name}: {body}");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(
        upstream.received().len(),
        allowed,
        "refused before the upstream"
    );
}

#[tokio::test]
async fn non_utf8_host_is_400_not_waved_through() {
    let upstream = MockUpstream::start(|_| Reply::json(json!({}))).await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    for host in [
        &b"localhost\xff"[..],
        b"\xe2\x80\x8blocalhost",
        b"local\x80host:8080",
    ] {
        let mut req = b"POST /mcp HTTP/1.1\r\nhost: ".to_vec();
        req.extend_from_slice(host);
        req.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
        let (status, body) = send_bytes(proxy.addr, &req).await;
        assert_eq!(status, 400, "{host:?}: {body}");
        assert!(body.contains("malformed Host"), "{body}");
    }
    assert!(upstream.received().is_empty());
}
