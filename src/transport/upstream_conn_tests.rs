use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

fn policy(request_ms: u64, idle_ms: u64, keepalive_ms: Option<u64>) -> ConnPolicy {
    ConnPolicy {
        connect: Duration::from_secs(1),
        request: Duration::from_millis(request_ms),
        idle_stream: Duration::from_millis(idle_ms),
        keepalive: keepalive_ms.map(Duration::from_millis),
    }
}

/// A server that reads the request, writes `reply`, then stays silent until the client leaves.
async fn server(reply: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        s.write_all(reply).await.unwrap();
        let _ = s.read(&mut buf).await;
    });
    addr
}

async fn socket(addr: std::net::SocketAddr, policy: ConnPolicy) -> WatchdogSocket {
    let mut s = WatchdogSocket::new(TcpStream::connect(addr).await.unwrap(), policy);
    s.write_all(b"GET /mcp HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    s
}

async fn read_some(s: &mut WatchdogSocket) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("read in time")?;
    buf.truncate(n);
    Ok(buf)
}

#[tokio::test]
async fn silent_sse_gets_keepalives_then_the_idle_limit() {
    static REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\n";
    let addr = server(REPLY).await;
    let mut s = socket(addr, policy(5000, 700, Some(100))).await;
    let mut got = Vec::new();
    while got.len() < REPLY.len() {
        got.extend(read_some(&mut s).await.unwrap());
    }
    assert_eq!(got, REPLY, "upstream bytes pass unchanged");
    let mut keepalives = 0;
    let err = loop {
        match read_some(&mut s).await {
            Ok(b) => {
                assert_eq!(b, b"d\r\n: keepalive\n\n\r\n");
                keepalives += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(
        keepalives >= 3,
        "{keepalives} keep-alives before the idle limit"
    );
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    let inner = err
        .get_ref()
        .and_then(|i| i.downcast_ref::<UpstreamTimeout>());
    assert_eq!(inner, Some(&UpstreamTimeout::IdleStream));
}

#[tokio::test]
async fn missing_response_head_times_out() {
    let addr = server(b"").await;
    let mut s = socket(addr, policy(150, 10_000, Some(50))).await;
    let err = read_some(&mut s).await.unwrap_err();
    let inner = err
        .get_ref()
        .and_then(|i| i.downcast_ref::<UpstreamTimeout>());
    assert_eq!(inner, Some(&UpstreamTimeout::ResponseHeader));
}

#[tokio::test]
async fn stalled_event_gets_no_keepalive() {
    static REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: hal\r\n";
    let addr = server(REPLY).await;
    let mut s = socket(addr, policy(5000, 400, Some(50))).await;
    let mut got = Vec::new();
    while got.len() < REPLY.len() {
        got.extend(read_some(&mut s).await.unwrap());
    }
    let err = read_some(&mut s)
        .await
        .expect_err("only the idle limit ends the wait");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

#[tokio::test]
async fn json_responses_get_nothing_injected() {
    static REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
    let addr = server(REPLY).await;
    let mut s = socket(addr, policy(100, 100, Some(20))).await;
    let mut got = Vec::new();
    while got.len() < REPLY.len() {
        got.extend(read_some(&mut s).await.unwrap());
    }
    assert_eq!(got, REPLY);
    // Idle between responses: no timer is armed, so the read just waits.
    let mut buf = [0u8; 16];
    let waited = tokio::time::timeout(Duration::from_millis(400), s.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "nothing injected, no error on an idle connection"
    );
}

#[test]
fn finds_the_timeout_in_a_pingora_error() {
    let io = UpstreamTimeout::IdleStream.into_io();
    let e = Error::because(ErrorType::ReadError, "reading body", io);
    assert_eq!(
        UpstreamTimeout::from_pingora_error(&e),
        Some(UpstreamTimeout::IdleStream)
    );
    let wrapped = Error::because(ErrorType::ReadError, "outer", e);
    assert_eq!(
        UpstreamTimeout::from_pingora_error(&wrapped),
        Some(UpstreamTimeout::IdleStream)
    );
    let other = Error::explain(ErrorType::ReadError, "x");
    assert_eq!(UpstreamTimeout::from_pingora_error(&other), None);
    let _ = SSE_HEAD;
}
