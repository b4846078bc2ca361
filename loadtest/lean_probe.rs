//! `shadowcat-lean-probe`: what a JSON exchange costs over Pingora's downstream session when
//! the proxy talks to the upstream itself, as a load-test reference.
//!
//! Pingora's downstream side (accept, HTTP/1 parsing, keep-alive, response writing) is kept;
//! Pingora's upstream side (connector, upstream HTTP session, the proxy loop between the two) is
//! replaced by one exchange in `request_filter`: read the body, write head and body in one
//! write on a pooled connection, read a `Content-Length` response, write it downstream. It has
//! no MCP logic and answers anything it cannot follow (a chunked or close-delimited response,
//! a head over 16 KiB) with 502, so it is a reference for the JSON scenarios only: the lower
//! bound of a "direct exchange" path, measured beside the full Pingora proxy path
//! (`shadowcat-bare-pingora`), Shadowcat and nginx (`loadtest/run.sh`).
//!
//! Usage: shadowcat-lean-probe LISTEN_ADDR UPSTREAM_ADDR [THREADS]

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

#[path = "reference.rs"]
mod reference;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MAX_HEAD: usize = 16 * 1024;
const POOL: usize = 256;

struct Lean {
    upstream: SocketAddr,
    idle: Mutex<Vec<TcpStream>>,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// The request head as the upstream gets it: hop-by-hop headers dropped, the length fixed.
fn request_bytes(req: &pingora::http::RequestHeader, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers.iter() {
        use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
        if name == CONNECTION || name == TRANSFER_ENCODING || name == CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

impl Lean {
    async fn connection(&self) -> io::Result<TcpStream> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(tcp) = pooled {
            return Ok(tcp);
        }
        let tcp = TcpStream::connect(self.upstream).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    async fn exchange(&self, session: &mut Session) -> io::Result<(ResponseHeader, Bytes)> {
        let mut body = BytesMut::new();
        while let Some(piece) = session
            .read_request_body()
            .await
            .map_err(io::Error::other)?
        {
            body.extend_from_slice(&piece);
        }
        let request = request_bytes(session.req_header(), &body);
        let mut tcp = self.connection().await?;
        tcp.write_all(&request).await?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            if tcp.read_buf(&mut buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            let head_len = match parsed.parse(&buf).map_err(|_| bad("bad response head"))? {
                httparse::Status::Partial if buf.len() > MAX_HEAD => {
                    return Err(bad("response head too large"))
                }
                httparse::Status::Partial => continue,
                httparse::Status::Complete(n) => n,
            };
            let status = parsed.code.ok_or_else(|| bad("no status"))?;
            let mut resp = ResponseHeader::build(status, Some(parsed.headers.len()))
                .map_err(io::Error::other)?;
            let mut length = None;
            for h in parsed.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    let text = std::str::from_utf8(h.value).map_err(|_| bad("content-length"))?;
                    length = Some(
                        text.trim()
                            .parse::<usize>()
                            .map_err(|_| bad("content-length"))?,
                    );
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(bad("only Content-Length responses are followed"));
                }
                resp.append_header(h.name.to_owned(), h.value)
                    .map_err(io::Error::other)?;
            }
            let length = length.ok_or_else(|| bad("only Content-Length responses are followed"))?;
            while buf.len() < head_len + length {
                if tcp.read_buf(&mut buf).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            let body = buf.split_off(head_len).freeze();
            if body.len() == length {
                if let Ok(mut idle) = self.idle.lock() {
                    if idle.len() < POOL {
                        idle.push(tcp);
                    }
                }
            }
            return Ok((resp, body.slice(..length)));
        }
    }
}

#[async_trait]
impl ProxyHttp for Lean {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        match self.exchange(session).await {
            Ok((resp, body)) => {
                session.write_response_header(Box::new(resp), false).await?;
                session.write_response_body(Some(body), true).await?;
            }
            Err(e) => {
                let text = Bytes::from(format!("lean probe: {e}\n"));
                let mut resp = ResponseHeader::build(502, Some(2))?;
                resp.insert_header("content-type", "text/plain")?;
                resp.insert_header("content-length", text.len())?;
                session.write_response_header(Box::new(resp), false).await?;
                session.write_response_body(Some(text), true).await?;
            }
        }
        Ok(true)
    }

    /// Never reached: every request is answered in `request_filter`.
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    reference::serve("shadowcat-lean-probe", |upstream| Lean {
        upstream,
        idle: Mutex::new(Vec::new()),
    });
}
