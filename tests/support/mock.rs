//! A scriptable mock MCP upstream on raw tokio TCP (HTTP/1.1 keep-alive), so tests control
//! framing and timing exactly and can see when the proxy closes a connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    /// Every header line as sent, in order (`headers` keeps one value per name).
    pub lines: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Every value of a header, one per line as sent.
    pub fn header_lines(&self, name: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What the mock answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response with `Content-Length`.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// An SSE response: each chunk is written after its delay; then the stream ends, or stays
    /// open (silent) when `hold` is set.
    Sse {
        chunks: Vec<(Duration, String)>,
        hold: bool,
    },
    /// [`Reply::Sse`] with extra response headers (a `cache-control` of its own replaces the
    /// default `no-cache`).
    SseWith {
        headers: Vec<(String, String)>,
        chunks: Vec<(Duration, String)>,
        hold: bool,
    },
    /// An SSE response whose chunks are written (after their delays) and then the connection
    /// is cut: no last chunk, as when the upstream crashes.
    SseCut {
        headers: Vec<(String, String)>,
        chunks: Vec<(Duration, String)>,
    },
    /// Wait, then answer.
    After(Duration, Box<Reply>),
    /// Close the connection without answering.
    Hangup,
}

impl Reply {
    pub fn json(body: serde_json::Value) -> Self {
        Self::Full {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn status(status: u16, body: &str) -> Self {
        Self::Full {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// SSE events (given as full event text, e.g. "data: x\n\n"), `gap` apart.
    pub fn sse(events: &[&str], gap: Duration, hold: bool) -> Self {
        Self::Sse {
            chunks: events.iter().map(|e| (gap, (*e).to_owned())).collect(),
            hold,
        }
    }
}

/// Something that happened on the mock, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// SSE chunk `index` was written at this instant.
    Sent(usize, Instant),
    /// The proxy closed an SSE connection while the mock still streamed or held it.
    PeerClosed,
}

type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// A running mock upstream.
pub struct MockUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    events: mpsc::UnboundedReceiver<Event>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
    acceptor: tokio::task::JoinHandle<()>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl MockUpstream {
    pub async fn start(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (tx, events) = mpsc::unbounded_channel();
        let handler: Handler = Arc::new(handler);
        let rec = received.clone();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = stopped.clone();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let conn = serve(
                    stream,
                    handler.clone(),
                    rec.clone(),
                    tx.clone(),
                    stop.clone(),
                );
                tokio::spawn(conn);
            }
        });
        Self {
            addr,
            received,
            events,
            stopped,
            acceptor,
            accepted,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The upstream dies: no new connections, and open ones close at their next request.
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.acceptor.abort();
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The next mock event, or panics after `within`.
    pub async fn next_event(&mut self, within: Duration) -> Event {
        tokio::time::timeout(within, self.events.recv())
            .await
            .expect("no mock event in time")
            .expect("mock gone")
    }

    /// Waits for the proxy to close a connection the mock was streaming on.
    pub async fn wait_peer_closed(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Event::PeerClosed = self.next_event(left).await {
                return;
            }
        }
    }
}

async fn serve(
    mut stream: TcpStream,
    handler: Handler,
    rec: Arc<Mutex<Vec<Received>>>,
    tx: mpsc::UnboundedSender<Event>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        if stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        rec.lock().unwrap().push(req.clone());
        let mut reply = handler(&req);
        while let Reply::After(d, inner) = reply {
            tokio::time::sleep(d).await;
            reply = *inner;
        }
        let keep = match reply {
            Reply::Full {
                status,
                headers,
                body,
            } => {
                let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let mut out = head.into_bytes();
                out.extend_from_slice(&body);
                stream.write_all(&out).await.is_ok()
            }
            Reply::Sse { chunks, hold } => {
                let then = if hold { Then::Hold } else { Then::End };
                stream_sse(&mut stream, &[], chunks, then, &tx).await
            }
            Reply::SseWith {
                headers,
                chunks,
                hold,
            } => {
                let then = if hold { Then::Hold } else { Then::End };
                stream_sse(&mut stream, &headers, chunks, then, &tx).await
            }
            Reply::SseCut { headers, chunks } => {
                stream_sse(&mut stream, &headers, chunks, Then::Cut, &tx).await
            }
            Reply::Hangup => false,
            Reply::After(..) => unreachable!(),
        };
        if !keep {
            return;
        }
    }
}

/// How an SSE response ends after its chunks.
#[derive(PartialEq)]
enum Then {
    End,
    Hold,
    Cut,
}

async fn stream_sse(
    stream: &mut TcpStream,
    headers: &[(String, String)],
    chunks: Vec<(Duration, String)>,
    then: Then,
    tx: &mpsc::UnboundedSender<Event>,
) -> bool {
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n",
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("cache-control"))
    {
        head.push_str("cache-control: no-cache\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if stream.write_all(head.as_bytes()).await.is_err() {
        let _ = tx.send(Event::PeerClosed);
        return false;
    }
    let mut probe = [0u8; 64];
    for (i, (delay, chunk)) in chunks.into_iter().enumerate() {
        // Wait, but notice at once if the proxy closes the connection meanwhile.
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            n = stream.read(&mut probe) => {
                if matches!(n, Ok(0) | Err(_)) { let _ = tx.send(Event::PeerClosed); return false; }
            }
        }
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        if stream.write_all(framed.as_bytes()).await.is_err() {
            let _ = tx.send(Event::PeerClosed);
            return false;
        }
        let _ = tx.send(Event::Sent(i, Instant::now()));
    }
    if then == Then::Cut {
        let _ = stream.shutdown().await;
        return false;
    }
    if then == Then::Hold {
        // Silent until the proxy goes away.
        loop {
            match stream.read(&mut probe).await {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Event::PeerClosed);
                    return false;
                }
                Ok(_) => {}
            }
        }
    }
    stream.write_all(b"0\r\n\r\n").await.is_ok()
}

/// Reads one request (Content-Length or chunked body). `None` on EOF or garbage.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        read_more(stream, buf).await?;
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf[..head_end]).ok()?;
    let method = req.method?.to_owned();
    let path = req.path?.to_owned();
    let lines: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let headers: HashMap<String, String> = lines.iter().cloned().collect();
    buf.drain(..head_end);
    let body = if let Some(len) = headers.get("content-length") {
        let len: usize = len.trim().parse().ok()?;
        while buf.len() < len {
            read_more(stream, buf).await?;
        }
        buf.drain(..len).collect()
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                read_more(stream, buf).await?;
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                read_more(stream, buf).await?;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break body;
            }
        }
    } else {
        Vec::new()
    };
    Some(Received {
        method,
        path,
        headers,
        lines,
        body,
    })
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut tmp = [0u8; 16 * 1024];
    match stream.read(&mut tmp).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Some(())
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
