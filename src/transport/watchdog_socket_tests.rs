//! Real loopback sockets under tokio's paused clock: timers fire at their exact deadlines as
//! soon as every task waits, so minutes of upstream silence take microseconds.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::transport::upstream_conn::WatchdogConnector;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::{Error, ErrorType};

const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
const REQUEST: &[u8] = b"GET /mcp HTTP/1.1\r\nhost: x\r\n\r\n";
const KEEPALIVE_CHUNK: &[u8] = b"d\r\n: keepalive\n\n\r\n";

const SEC: Duration = Duration::from_secs(1);

fn policy(request: u64, idle_stream: u64, keepalive: Option<u64>) -> ConnPolicy {
    ConnPolicy {
        connect: SEC,
        request: SEC * request as u32,
        idle_stream: SEC * idle_stream as u32,
        keepalive: keepalive.map(|k| SEC * k as u32),
    }
}

/// A server that reads the request, writes `reply`, then stays silent until the client leaves.
async fn server(reply: Vec<u8>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        s.write_all(&reply).await.unwrap();
        while s.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    addr
}

/// Connects, sends the request and reads the whole `reply` back unchanged.
async fn exchange(reply: &[u8], policy: ConnPolicy) -> WatchdogSocket {
    let addr = server(reply.to_vec()).await;
    let mut s = WatchdogSocket::new(TcpStream::connect(addr).await.unwrap(), policy);
    s.write_all(REQUEST).await.unwrap();
    let mut got = Vec::new();
    while got.len() < reply.len() {
        got.extend(read_some(&mut s).await.unwrap());
    }
    assert_eq!(got, reply, "upstream bytes pass unchanged");
    s
}

async fn read_some(s: &mut WatchdogSocket) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(SEC * 86_400, s.read(&mut buf))
        .await
        .expect("a day is enough")?;
    buf.truncate(n);
    Ok(buf)
}

fn timeout_of(e: &io::Error) -> Option<UpstreamTimeout> {
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    e.get_ref()
        .and_then(|i| i.downcast_ref::<UpstreamTimeout>())
        .copied()
}

#[track_caller]
fn assert_near(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed < expected + Duration::from_millis(10),
        "{elapsed:?}, expected {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn silent_sse_gets_keepalives_then_the_idle_limit() {
    let reply = [SSE_HEAD, b"9\r\ndata: a\n\n\r\n"].concat();
    let mut s = exchange(&reply, policy(300, 60, Some(15))).await;
    let last_byte = Instant::now();
    for n in 1..=3 {
        assert_eq!(read_some(&mut s).await.unwrap(), KEEPALIVE_CHUNK);
        assert_near(last_byte.elapsed(), SEC * 15 * n);
    }
    // Keep-alives do not count as upstream traffic: the 4th would be due just after 60 s.
    let err = read_some(&mut s).await.unwrap_err();
    assert_eq!(timeout_of(&err), Some(UpstreamTimeout::IdleStream));
    assert_near(last_byte.elapsed(), SEC * 60);
}

#[tokio::test(start_paused = true)]
async fn close_delimited_sse_gets_bare_comments() {
    let reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: a\n\n";
    let mut s = exchange(reply, policy(300, 60, Some(15))).await;
    assert_eq!(read_some(&mut s).await.unwrap(), b": keepalive\n\n");
}

#[tokio::test(start_paused = true)]
async fn missing_response_head_times_out() {
    let addr = server(Vec::new()).await;
    let mut s = WatchdogSocket::new(
        TcpStream::connect(addr).await.unwrap(),
        policy(300, 60, Some(15)),
    );
    s.write_all(REQUEST).await.unwrap();
    let written = Instant::now();
    let err = read_some(&mut s).await.unwrap_err();
    assert_eq!(timeout_of(&err), Some(UpstreamTimeout::ResponseHeader));
    assert_near(written.elapsed(), SEC * 300);
}

#[tokio::test(start_paused = true)]
async fn the_head_deadline_runs_from_the_last_request_byte() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        while s.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let mut s = WatchdogSocket::new(
        TcpStream::connect(addr).await.unwrap(),
        policy(10, 60, None),
    );
    s.write_all(b"POST /mcp HTTP/1.1\r\ncontent-length: 4\r\n\r\n")
        .await
        .unwrap();
    for part in [b"{}", b"  "] {
        tokio::time::sleep(SEC * 8).await;
        s.write_all(part).await.unwrap();
    }
    let written = Instant::now();
    let err = read_some(&mut s).await.unwrap_err();
    assert_eq!(timeout_of(&err), Some(UpstreamTimeout::ResponseHeader));
    assert_near(written.elapsed(), SEC * 10);
}

#[tokio::test(start_paused = true)]
async fn stalled_event_gets_no_keepalive() {
    let reply = [SSE_HEAD, b"9\r\ndata: hal\r\n"].concat();
    let mut s = exchange(&reply, policy(300, 60, Some(15))).await;
    let last_byte = Instant::now();
    let err = read_some(&mut s)
        .await
        .expect_err("only the idle limit ends the wait");
    assert_eq!(timeout_of(&err), Some(UpstreamTimeout::IdleStream));
    assert_near(last_byte.elapsed(), SEC * 60);
}

#[tokio::test(start_paused = true)]
async fn a_small_read_buffer_gets_no_keepalive() {
    let reply = [SSE_HEAD, b"9\r\ndata: a\n\n\r\n"].concat();
    let mut s = exchange(&reply, policy(300, 60, Some(15))).await;
    let mut small = [0u8; 8];
    let err = s.read(&mut small).await.unwrap_err();
    assert_eq!(timeout_of(&err), Some(UpstreamTimeout::IdleStream));
}

#[tokio::test(start_paused = true)]
async fn json_responses_get_nothing_injected() {
    let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    let mut s = exchange(reply, policy(300, 60, Some(15))).await;
    // Idle between responses: no timer is armed, so the read just waits.
    let mut buf = [0u8; 64];
    let waited = tokio::time::timeout(SEC * 7200, s.read(&mut buf)).await;
    assert!(waited.is_err(), "nothing injected, no error while idle");
}

#[tokio::test(start_paused = true)]
async fn a_zero_keepalive_period_is_off() {
    let reply = [SSE_HEAD, b"9\r\ndata: hal\r\n"].concat();
    let mut s = exchange(
        &reply,
        ConnPolicy {
            keepalive: Some(Duration::ZERO),
            ..policy(300, 60, None)
        },
    )
    .await;
    let err = read_some(&mut s).await.unwrap_err();
    assert_eq!(timeout_of(&err), Some(UpstreamTimeout::IdleStream));
}

#[tokio::test]
async fn the_connector_yields_a_working_pingora_stream() {
    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
    let addr = server(reply.to_vec()).await;
    let connector = WatchdogConnector::new(policy(300, 60, Some(15)));
    let mut stream = connector.connect(&SocketAddr::Inet(addr)).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    stream.flush().await.unwrap();
    let mut got = vec![0u8; reply.len()];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, reply);
}

#[tokio::test]
async fn refused_connections_are_reported_like_pingora_does() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let connector = WatchdogConnector::new(policy(300, 60, Some(15)));
    let err = connector
        .connect(&SocketAddr::Inet(addr))
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectRefused);
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
    let direct = Error::because(ErrorType::ReadError, "x", UpstreamTimeout::ResponseHeader);
    assert_eq!(
        UpstreamTimeout::from_pingora_error(&direct),
        Some(UpstreamTimeout::ResponseHeader)
    );
    let other = Error::because(
        ErrorType::ReadError,
        "x",
        io::Error::from(io::ErrorKind::TimedOut),
    );
    assert_eq!(UpstreamTimeout::from_pingora_error(&other), None);
}

/// The upstream end of one connection, and the proxy's socket on it.
async fn pair() -> (TcpStream, WatchdogSocket) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    let socket = WatchdogSocket::new(client.unwrap(), policy(300, 60, None));
    (accepted.unwrap().0, socket)
}

/// Regression (two segments per POST): the head waits for the body's first bytes and both
/// arrive in one read; a loopback send is in the peer's queue when the call returns, so
/// "nothing yet" after the flush is exact.
#[tokio::test]
async fn a_post_head_goes_out_with_its_body() {
    let (upstream, mut s) = pair().await;
    let head = POST_HEAD;
    s.write_all(head).await.unwrap();
    s.flush().await.unwrap();
    let mut buf = [0u8; 256];
    assert!(upstream.try_read(&mut buf).is_err(), "the head waited");
    s.write_all(b"{}").await.unwrap();
    s.flush().await.unwrap();
    upstream.readable().await.unwrap();
    let n = upstream.try_read(&mut buf).unwrap();
    assert_eq!(&buf[..n], [head, b"{}"].concat());
}

#[tokio::test]
async fn a_head_without_a_body_goes_out_at_once() {
    let (upstream, mut s) = pair().await;
    s.write_all(REQUEST).await.unwrap();
    s.flush().await.unwrap();
    let mut buf = [0u8; 256];
    let n = upstream.try_read(&mut buf).expect("sent at the write");
    assert_eq!(&buf[..n], REQUEST);
}

const POST_HEAD: &[u8] = b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n";

/// Regression (review): a socket dropped with its head held (or half sent) went back to the
/// pool as clean, so the next request's bytes would have ended the old one.
#[tokio::test]
async fn a_socket_dropped_with_its_head_held_is_not_pooled() {
    let (_upstream, s) = pair().await;
    let pool = Arc::new(IdlePool::new(SEC * 4, 8));
    let mut s = s.returning_to(pool.clone());
    s.write_all(POST_HEAD).await.unwrap();
    drop(s);
    assert!(pool.take().is_none());
}

/// Regression (review): a held head whose body never comes still gets the response deadline.
#[tokio::test(start_paused = true)]
async fn a_held_head_without_its_body_times_out() {
    let (_upstream, mut s) = pair().await;
    s.write_all(POST_HEAD).await.unwrap();
    let held = Instant::now();
    let err = read_some(&mut s).await.unwrap_err();
    assert_eq!(timeout_of(&err), Some(UpstreamTimeout::ResponseHeader));
    assert_near(held.elapsed(), SEC * 300);
}
