//! Reopening an upstream SSE stream whose connection died, below Pingora, so the client's
//! stream goes on as one stream.
//!
//! When the upstream of a claimed SSE body (a session stream the proxy holds) goes away
//! between two chunks and its events carried ids, the socket does not end the body: it
//! reconnects (bounded backoff), sends `GET` with the upstream's `Last-Event-ID` (the request
//! is built by the stream's sink), reads the new response head itself, and hands the new body's
//! chunks on as if the old body went on. Pingora sees one chunked body; the stream's sink
//! drops the half event the dead connection left and numbers what follows after what it has.
//! If the upstream cannot be reopened, the body ends cleanly and the client is told to retry.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Waits before each attempt.
const BACKOFF: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(250),
    Duration::from_secs(1),
];
/// Largest response head read.
const MAX_HEAD: usize = 16 * 1024;

/// A reopened stream: the connection and the body bytes read past its head.
pub type Reopened = (TcpStream, Vec<u8>);

/// Connects and sends `request` until the upstream answers `200 text/event-stream` with a
/// chunked body; an answer that is anything else ends the attempt (the upstream does not
/// resume), a failed connection is retried after the next backoff step.
pub async fn reopen(addr: SocketAddr, request: Vec<u8>, connect: Duration) -> io::Result<Reopened> {
    let mut last = io::Error::other("upstream not reopened");
    for delay in BACKOFF {
        tokio::time::sleep(delay).await;
        let tcp = match tokio::time::timeout(connect, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                last = e;
                continue;
            }
            Err(_) => {
                last = io::ErrorKind::TimedOut.into();
                continue;
            }
        };
        match exchange(tcp, &request).await {
            Ok(Some(reopened)) => return Ok(reopened),
            Ok(None) => {
                return Err(io::Error::other(
                    "upstream answered the resumption otherwise",
                ))
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// One attempt; `Ok(None)` when the upstream answered but not with a resumable stream.
async fn exchange(mut tcp: TcpStream, request: &[u8]) -> io::Result<Option<Reopened>> {
    tcp.set_nodelay(true)?;
    tcp.write_all(request).await?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let end = loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = memmem::find(&head, b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    if !matches!(resp.parse(&head[..end]), Ok(httparse::Status::Complete(_))) {
        return Ok(None);
    }
    let value = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let sse =
        value("content-type").is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let chunked = value("transfer-encoding").is_some_and(|v| v.trim_end().ends_with("chunked"));
    if resp.code != Some(200) || !sse || !chunked {
        return Ok(None);
    }
    Ok(Some((tcp, head[end..].to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn reads_the_new_head_and_keeps_the_body_bytes_after_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).await.unwrap();
            assert!(req[..n].starts_with(b"GET /mcp"));
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata: ")
                .await
                .unwrap();
        });
        let (_tcp, rest) = reopen(
            addr,
            b"GET /mcp HTTP/1.1\r\n\r\n".to_vec(),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(&rest[..], b"6\r\ndata: ");
    }

    #[tokio::test]
    async fn an_upstream_that_answers_otherwise_is_not_retried() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req).await;
            s.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let err = reopen(
            addr,
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("otherwise"), "{err}");
    }
}
