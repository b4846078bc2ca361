//! Fail closed, second pass (findings of the review of the fail-closed work): the body's
//! charset, framing headers that disagree, bodies where none is expected, `Expect`, the MCP
//! 2026-07-28 headers, and the head deadline on TLS connections that chose h2.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::interceptors::{echo_upstream, with_rules, RULES};
use crate::support::tls::{tls_config_for, Certs};
use crate::support::*;

/// Sends raw bytes and reads the whole response head and body (bounded by time).
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if len.is_some_and(|l| got.len() >= end + 4 + l) {
                    break;
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Review finding (high): the judge read UTF-8 whatever `Content-Type` said, while the
/// TypeScript SDK and Express decode the charset it names: in UTF-7, `+AGQ-anger` is
/// `danger`. With policy on, a body must be one `application/json` in UTF-8 (415 otherwise).
#[tokio::test]
async fn regression_a_charset_other_than_utf8_is_refused_with_policy() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"+AGQ-elete_all"}}"#;
    for ct in [
        "application/json; charset=utf-7",
        "application/json; charset=shift_jis",
        "text/plain",
    ] {
        let resp = client()
            .post(proxy.url())
            .header("accept", ACCEPT_BOTH)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{ct}");
        let got: Value = resp.json().await.unwrap();
        assert_eq!(got["error"]["code"], -32700);
    }
    assert_eq!(upstream.connections(), 0);
    let resp = client()
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json; charset=UTF-8")
        .body(call(2, "echo").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Review finding: with both `Content-Length` and `Transfer-Encoding: chunked` (Pingora frames
/// by the latter), the client's `Content-Length` went upstream beside a body of another
/// length. A held body now goes with its own length only (RFC 9112 section 6.1).
#[tokio::test]
async fn regression_a_held_body_goes_upstream_with_its_own_length_only() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let body = call(3, "echo").to_string();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        proxy.addr,
        body.len()
    );
    let answer = exchange(proxy.addr, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = &upstream.received()[0];
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(
        seen.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(seen.header("transfer-encoding"), None);
}

/// Review finding: a GET, DELETE or OPTIONS body went upstream unjudged. With policy on, it is
/// refused.
#[tokio::test]
async fn regression_bodies_where_none_is_expected_are_refused_with_policy() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let body = call(4, "delete_all").to_string();
    for method in ["GET", "DELETE", "OPTIONS"] {
        let req = format!(
            "{method} /mcp HTTP/1.1\r\nhost: {}\r\naccept: text/event-stream\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            proxy.addr,
            body.len()
        );
        let answer = exchange(proxy.addr, req.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{method}: {answer}");
    }
    assert_eq!(upstream.connections(), 0);
}

/// Review finding: `read_whole` waited for a body the client held back until `100 Continue`,
/// which Pingora does not send by itself.
#[tokio::test]
async fn regression_expect_100_continue_is_answered_before_the_body_is_read() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let body = call(5, "echo").to_string();
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\nexpect: 100-continue\r\n\
         content-length: {}\r\n\r\n",
        proxy.addr,
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("100 Continue before the body")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"));
    s.write_all(body.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\"result\"") {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(upstream.received()[0].header("expect"), None);
}

/// Review finding: the 2026-07-28 header check ran only with client rules, skipped headers it
/// could not read and compared only the first of two. With any policy on, repeated or
/// unreadable `Mcp-Method`/`Mcp-Name`, or ones that disagree with the body, get 400 -32020.
#[tokio::test]
async fn regression_mcp_2026_headers_are_checked_whenever_policy_is_on() {
    let upstream = echo_upstream().await;
    let proxy = Proxy::start(with_rules(&upstream.url(), RULES)).await;
    let body = call(6, "delete_all").to_string();
    let send = |headers: Vec<(&'static str, &'static str)>| {
        let mut req = client()
            .post(proxy.url())
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.body(body.clone()).send()
    };
    for headers in [
        vec![("mcp-method", "tools/call"), ("mcp-name", "echo")],
        vec![
            ("mcp-method", "tools/call"),
            ("mcp-name", "delete_all"),
            ("mcp-name", "echo"),
        ],
        vec![("mcp-method", "ping"), ("mcp-method", "tools/call")],
        vec![("mcp-name", "delete_all")],
    ] {
        let resp = send(headers.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{headers:?}");
        let got: Value = resp.json().await.unwrap();
        assert_eq!(got["error"]["code"], -32020, "{headers:?}");
    }
    assert_eq!(upstream.connections(), 0);
}

/// Review finding (high): over TLS with ALPN `h2`, the head clock was disarmed before any
/// byte, and Pingora's h2 handshake waits for the preface with no timeout: a client that
/// finished TLS and sent nothing held its connection forever.
#[tokio::test]
async fn regression_tls_h2_connections_without_a_preface_close_at_the_head_deadline() {
    let upstream = echo_upstream().await;
    let certs = Certs::new("h2-silent");
    let ca = certs.ca("ca");
    let (c, k) = certs.server("srv", &["localhost"], &ca);
    let mut config = tls_config_for(&upstream.url(), shadowcat::config::TlsConfig::pair(c, k));
    config.limits.header_read_timeout = Duration::from_secs(1);
    let proxy = Proxy::start(config).await;

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "closed at the deadline: {closed:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// A body trickled one byte at a time moved Pingora's per-read body timeout on every byte,
/// so with policy on (every body read before any upstream contact) a client could hold its
/// connection and a request slot for as long as it liked. The read has a total deadline.
#[tokio::test]
async fn regression_a_trickled_body_is_cut_at_the_total_body_deadline() {
    let upstream = echo_upstream().await;
    let mut config = with_rules(&upstream.url(), RULES);
    config.limits.body_total_timeout = Duration::from_secs(1);
    let proxy = Proxy::start(config).await;
    let body = call(7, "echo").to_string();
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        proxy.addr,
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    for b in body.bytes() {
        if s.write_all(&[b]).await.is_err() {
            break;
        }
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "never cut");
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(upstream.connections(), 0);
}
