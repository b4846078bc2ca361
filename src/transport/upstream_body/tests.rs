//! The body as the exchange reads it, over a real hyper connection to a raw upstream.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Piece, UpstreamBody};

/// An upstream that answers one request with `response` (raw bytes), then closes.
async fn upstream_once(response: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = socket.read(&mut buf).await;
        socket.write_all(response).await.unwrap();
        let _ = socket.shutdown().await;
    });
    addr
}

/// The response body of a GET to `addr`, over hyper's HTTP/1.1 client.
async fn body_from(addr: std::net::SocketAddr) -> hyper::body::Incoming {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::get("/mcp")
        .header("host", "upstream")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    sender.send_request(request).await.unwrap().into_body()
}

/// Regression: `ready` (the read that goes out with the head) used to swallow a failed
/// first read, and `next` then saw a clean end, so a session stream whose upstream died right
/// after its head counted as complete and its client was never told to reconnect.
#[tokio::test]
async fn a_failure_seen_by_ready_is_reported_by_next() {
    let addr = upstream_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await;
    let mut body = UpstreamBody::new(body_from(addr).await, Duration::from_secs(5));
    for _ in 0..200 {
        assert!(body.ready().await.is_none(), "no data was sent");
        if body.failed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(body.failed.is_some(), "the cut body never failed in 2 s");
    assert!(matches!(body.next().await, Piece::Failed(_)));
}

#[tokio::test]
async fn a_whole_body_that_came_with_its_head_is_one_last_piece() {
    let addr = upstream_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 12\r\n\r\ndata: {}\n\n\n\n",
    )
    .await;
    let mut body = UpstreamBody::new(body_from(addr).await, Duration::from_secs(5));
    let mut piece = None;
    for _ in 0..200 {
        piece = body.ready().await;
        if piece.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let piece = piece.expect("the body never came in 2 s");
    assert!(matches!(piece, Piece::Last(ref b) if &b[..] == b"data: {}\n\n\n\n"));
}

#[tokio::test]
async fn a_chunked_read_that_came_with_its_head_is_ready() {
    let addr = upstream_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n8\r\ndata: 1\n\r\n0\r\n\r\n",
    )
    .await;
    let body = body_from(addr).await;
    let mut body = UpstreamBody::new(body, Duration::from_secs(5));
    let piece = body.ready().await;
    assert!(
        matches!(piece, Some(Piece::Data(ref b)) | Some(Piece::Last(ref b)) if &b[..] == b"data: 1\n"),
        "{piece:?}"
    );
}

#[tokio::test]
async fn the_end_that_came_with_the_last_read_is_seen_and_a_read_found_instead_is_kept() {
    let addr = upstream_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n8\r\ndata: 1\n\r\n0\r\n\r\n",
    )
    .await;
    let mut body = UpstreamBody::new(body_from(addr).await, Duration::from_secs(5));
    let mut first = None;
    for _ in 0..200 {
        first = body.ready().await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(first, Some(Piece::Data(_))), "{first:?}");
    let mut ended = false;
    for _ in 0..200 {
        if body.ends_now().await {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ended, "the end never came");

    // Two reads: the second is found by `ends_now`, kept, and given by `next` alone.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = socket.read(&mut buf).await;
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n8\r\ndata: 1\n\r\n")
            .await
            .unwrap();
        let _ = go_rx.await;
        socket.write_all(b"8\r\ndata: 2\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut body = UpstreamBody::new(body_from(addr).await, Duration::from_secs(5));
    assert!(matches!(body.next().await, Piece::Data(ref b) if &b[..] == b"data: 1\n"));
    go_tx.send(()).unwrap();
    let mut held = false;
    for _ in 0..200 {
        assert!(!body.ends_now().await, "the body has not ended");
        if body.held.is_some() {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held, "the second read never came");
    assert!(matches!(body.next().await, Piece::Data(ref b) if &b[..] == b"data: 2\n"));
}
