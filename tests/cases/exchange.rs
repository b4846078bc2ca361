//! The upstream exchange end to end: answers, upstream framings (chunked, close-delimited,
//! interim heads), failures, failover, and a client that leaves.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

fn config(upstream: &str) -> shadowcat::config::Config {
    config_for(upstream)
}

/// What a client sees, minus what legitimately differs between runs.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    content_type: Option<String>,
    session: bool,
    body: String,
}

async fn post_and_read(proxy: &Proxy, body: &serde_json::Value) -> Seen {
    post_in(proxy, body, None).await.0
}

/// POST `body` (in `session`, if any); what the client saw and the session id it was given.
async fn post_in(
    proxy: &Proxy,
    body: &serde_json::Value,
    session: Option<&str>,
) -> (Seen, Option<String>) {
    let mut req = client()
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string());
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let issued = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let seen = Seen {
        status,
        content_type,
        session: issued.is_some(),
        body: resp.text().await.unwrap(),
    };
    (seen, issued)
}

#[tokio::test]
async fn json_sse_and_error_answers_reach_the_client() {
    let upstream = MockUpstream::start(|req| {
        let body = req.json();
        let id = body["id"].clone();
        match body["method"].as_str() {
            Some("initialize") => Reply::Full {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("mcp-session-id".into(), "up-1".into()),
                ],
                body: json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-06-18"}})
                    .to_string()
                    .into_bytes(),
            },
            Some("tools/call") if body["params"]["name"] == "stream" => Reply::sse(
                &[
                    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n",
                    &format!("data: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{}}}}\n\n"),
                ],
                Duration::from_millis(5),
                false,
            ),
            Some("tools/call") if body["params"]["name"] == "broken" => {
                Reply::status(500, "{\"oops\":true}")
            }
            _ => Reply::json(json!({"jsonrpc":"2.0","id":id,"result":{"echo":true}})),
        }
    })
    .await;
    let mut seen = Vec::new();
    {
        let proxy = Proxy::start(config(&upstream.url())).await;
        let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}});
        let (first, issued) = post_in(&proxy, &init, None).await;
        let issued = issued.expect("the proxy issues a session id");
        assert_ne!(
            issued, "up-1",
            "the upstream's own id never reaches the client"
        );
        let mut answers = vec![first];
        for tool in ["echo", "stream", "broken"] {
            answers.push(post_in(&proxy, &call(2, tool), Some(&issued)).await.0);
        }
        seen.push(answers);
    }
    let calls: Vec<_> = upstream.received().into_iter().skip(1).take(3).collect();
    assert!(
        calls
            .iter()
            .all(|r| r.header("mcp-session-id") == Some("up-1")),
        "the upstream sees its own session id"
    );
    let direct = &seen[0];
    assert!(
        direct[0].session,
        "initialize answer carries the proxy's session id"
    );
    assert_eq!(direct[1].status, 200);
    assert!(direct[1].body.contains("\"echo\":true"));
    assert_eq!(direct[2].content_type.as_deref(), Some("text/event-stream"));
    assert!(
        direct[2].body.contains("notifications/progress") && direct[2].body.contains("\"result\"")
    );
    assert_eq!(direct[3].status, 500, "upstream statuses pass through");
}

/// An upstream written by hand: each connection answers one request with `answer`, then
/// closes (close-delimited bodies end only there).
async fn raw_upstream(answer: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                // Head and the (small) body: enough for the tests' requests.
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn chunked_close_delimited_and_informational_responses_are_relayed_whole() {
    let cases: [(&str, &str); 3] = [
        (
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
             8\r\n{\"jsonrp\r\n1c\r\nc\":\"2.0\",\"id\":2,\"result\":{}}\r\n0\r\n\r\n",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n\
             {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"closed\":1}}",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"closed\":1}}",
        ),
        (
            "HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n\
             HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 36\r\n\r\n\
             {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}",
        ),
    ];
    for (answer, want) in cases {
        let addr = raw_upstream(answer).await;
        {
            let proxy = Proxy::start(config(&format!("http://{addr}/mcp"))).await;
            let got = post_and_read(&proxy, &call(2, "echo")).await;
            assert_eq!(got.status, 200, "{answer:?}");
            assert_eq!(got.body, want, "{answer:?}");
        }
    }
}

#[tokio::test]
async fn an_upstream_that_hangs_up_is_a_jsonrpc_502() {
    let upstream = MockUpstream::start(|_| Reply::Hangup).await;
    let mut seen = Vec::new();
    {
        let proxy = Proxy::start(config(&upstream.url())).await;
        seen.push(post_and_read(&proxy, &call(9, "echo")).await);
    }
    assert_eq!(seen[0].status, 502);
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["id"], 9, "a JSON-RPC error for the request's id");
    assert!(body["error"]["code"].is_i64());
}

#[tokio::test]
async fn a_refused_upstream_fails_over_to_the_next() {
    let (_held, refused) = refused_addr();
    let upstream = MockUpstream::start(|req| {
        Reply::json(json!({"jsonrpc":"2.0","id":req.json()["id"].clone(),"result":{}}))
    })
    .await;
    let mut config = config(&format!("http://{refused}/mcp"));
    let mut second = config.upstreams[0].clone();
    second.name = "second".into();
    second.target = shadowcat::config::UpstreamTarget::Url(
        shadowcat::config::UpstreamUrl::parse(&upstream.url()).unwrap(),
    );
    config.upstreams.push(second);
    let proxy = Proxy::start(config).await;
    for id in 1..=4 {
        let got = post_and_read(&proxy, &call(id, "echo")).await;
        assert_eq!(got.status, 200, "request {id}: {}", got.body);
    }
    assert_eq!(upstream.received().len(), 4);
}

/// One raw HTTP/1.1 exchange on `conn`: the answer (lowercased), read until it looks complete
/// (a JSON body's last brace, or a chunked body's last chunk).
async fn raw_exchange(conn: &mut tokio::net::TcpStream, request: &str) -> String {
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"0\r\n\r\n") && !got.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("answer within 5 s")
            .unwrap();
        assert!(n > 0, "the proxy closed the client connection: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).to_lowercase()
}

/// One POST on a new connection to a new proxy in front of `upstream`: the raw answer.
async fn one_raw_post(upstream: std::net::SocketAddr) -> String {
    let proxy = Proxy::start(config(&format!("http://{upstream}/mcp"))).await;
    let mut conn = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    raw_exchange(&mut conn, &raw_post(proxy.addr, "")).await
}

fn raw_post(addr: std::net::SocketAddr, extra: &str) -> String {
    let body = call(2, "echo").to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Regression (review of the upstream exchange): a response the upstream ended by closing went
/// to the client close-delimited, so every such answer cost the client its connection.
#[tokio::test]
async fn a_close_delimited_answer_reaches_the_client_chunked_on_a_kept_connection() {
    let addr = raw_upstream(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n\
         {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}",
    )
    .await;
    {
        let proxy = Proxy::start(config(&format!("http://{addr}/mcp"))).await;
        let mut conn = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        for round in 0..2 {
            let answer = raw_exchange(&mut conn, &raw_post(proxy.addr, "")).await;
            assert!(answer.starts_with("http/1.1 200"), "{round}: {answer}");
            assert!(answer.contains("transfer-encoding: chunked"), "{answer}");
            assert!(!answer.contains("connection: close"), "{answer}");
        }
    }
}

/// Regression (review of the upstream exchange): a client that left while the upstream was
/// still working went unnoticed until the answer (or the response deadline), so the upstream
/// could not stop the work and the request counted as in flight.
#[tokio::test]
async fn a_client_that_leaves_before_the_answer_closes_the_upstream_request() {
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            // Read the request, never answer, report when the proxy closes.
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = closed_tx.send(());
        });
        let proxy = Proxy::start(config(&format!("http://{addr}/mcp"))).await;
        let mut conn = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        conn.write_all(raw_post(proxy.addr, "").as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(conn);
        tokio::time::timeout(Duration::from_secs(5), closed_rx)
            .await
            .unwrap_or_else(|_| panic!("upstream request still open 5 s after"))
            .unwrap();
    }
}

/// Regression (review of the upstream exchange): a client's bad `Connection` header was answered
/// as an upstream failure (502, counted against the upstream) instead of the client's (400).
#[tokio::test]
async fn a_connection_header_naming_host_is_the_clients_error() {
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":2,"result":{}}))).await;
    {
        let proxy = Proxy::start(config(&upstream.url())).await;
        let mut conn = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let answer = raw_exchange(&mut conn, &raw_post(proxy.addr, "connection: host\r\n")).await;
        assert!(answer.starts_with("http/1.1 400"), "{answer}");
        let metrics = proxy.metrics().await;
        assert!(
            !metrics.contains("shadowcat_upstream_errors_total{"),
            "not the upstream's fault: {metrics}"
        );
    }
    assert!(upstream.received().is_empty(), "never sent upstream");
}

/// Regression (found reviewing the upstream exchange): Pingora's loop runs `response_filter` on
/// a 103 head too, which took the place held for an `initialize`'s session, so the final
/// answer's session id never reached the client.
#[tokio::test]
async fn an_informational_head_before_an_initialize_answer_keeps_its_session() {
    let addr = raw_upstream(
        "HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n\
         HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: up-9\r\n\
         content-length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
    )
    .await;
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}});
    {
        let proxy = Proxy::start(config(&format!("http://{addr}/mcp"))).await;
        let (seen, issued) = post_in(&proxy, &init, None).await;
        assert_eq!(seen.status, 200, "{}", seen.body);
        let issued = issued.unwrap_or_else(|| panic!("no session id"));
        assert_ne!(issued, "up-9");
    }
}

#[tokio::test]
async fn get_streams_and_delete_pass_through() {
    let upstream = MockUpstream::start(|req| match req.method.as_str() {
        "GET" => Reply::sse(
            &["data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n"],
            Duration::from_millis(5),
            true,
        ),
        "DELETE" => Reply::status(200, ""),
        _ => Reply::Full {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("mcp-session-id".into(), "up-g".into()),
            ],
            body: json!({"jsonrpc":"2.0","id":1,"result":{}})
                .to_string()
                .into_bytes(),
        },
    })
    .await;
    let mut seen = Vec::new();
    {
        let proxy = Proxy::start(config(&upstream.url())).await;
        let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}});
        let (_, issued) = post_in(&proxy, &init, None).await;
        let id = issued.expect("session id");
        let mut stream = client()
            .get(proxy.url())
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &id)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
            .await
            .unwrap();
        let status = stream.status().as_u16();
        let (text, _) = read_events(&mut stream, 2).await;
        // The proxy numbers the events of a session stream: the ids differ per proxy only in
        // their stream part, so compare the payloads.
        let payloads: Vec<_> = text.lines().filter(|l| l.starts_with("data:")).collect();
        let payloads = payloads.join("|");
        drop(stream);
        let deleted = client()
            .delete(proxy.url())
            .header("mcp-session-id", &id)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let after = post_in(&proxy, &call(3, "echo"), Some(&id)).await.0.status;
        seen.push((status, payloads, deleted, after));
    }
    assert_eq!(seen[0].0, 200);
    assert_eq!(seen[0].1, "data: {\"n\":1}|data: {\"n\":2}");
    assert_eq!(seen[0].2, 200, "DELETE passes to the upstream");
    assert_eq!(seen[0].3, 404, "the session is gone after DELETE");
    let deletes = upstream
        .received()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 1, "the DELETE goes upstream");
}

/// Regression (review): once interim heads skipped `response_filter`, a 103 carrying the
/// upstream's own session id reached the client.
#[tokio::test]
async fn an_interim_head_never_carries_the_upstream_session_id() {
    let addr = raw_upstream(
        "HTTP/1.1 103 Early Hints\r\nmcp-session-id: up-secret\r\n\r\n\
         HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         content-length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}",
    )
    .await;
    {
        let answer = one_raw_post(addr).await;
        assert!(answer.contains("200 ok"), "{answer}");
        assert!(!answer.contains("up-secret"), "{answer}");
    }
}

/// Regression: the upstream exchange dropped interim heads, which a proxy forwards when it did
/// not ask for them (RFC 9110, 15.2).
#[tokio::test]
async fn interim_heads_reach_the_client() {
    let addr = raw_upstream(
        "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n\
         HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         content-length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}",
    )
    .await;
    {
        let answer = one_raw_post(addr).await;
        let hints = answer.find("103 early hints");
        let ok = answer.find("200 ok");
        assert!(hints.is_some() && hints < ok, "{answer}");
        assert!(answer.contains("link: </a.css>; rel=preload"), "{answer}");
        assert!(answer.ends_with("\"result\":{}}"), "{answer}");
    }
}
