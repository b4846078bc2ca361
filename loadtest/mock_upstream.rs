//! `shadowcat-mock-upstream`: an MCP-shaped upstream for load tests (release-built).
//!
//! POST /mcp answers per request, steered by headers so k6 scripts choose the shape:
//!   x-mock-mode: json | sse        (default json)
//!   tools/list is answered with 20 tools and `ttlMs: 60000`, `cacheScope: public`
//!   x-mock-service-ms: N           service time before answering (default 0)
//!   x-mock-events: N               SSE: progress events before the result (default 3)
//!   x-mock-spacing-ms: N           SSE: gap between events (default 0)
//! `initialize` answers with a fresh `Mcp-Session-Id`; DELETE answers 200; notifications 202.
//! GET /mcp opens a stream sending `{"sent_us":<unix µs>}` every x-mock-spacing-ms (default
//! 1000), so a client can measure per-event delivery delay.
//!
//! Usage: shadowcat-mock-upstream 127.0.0.1:PORT [--threads N] [--tls CERT.pem KEY.pem]
//!        (`--threads`: tokio workers, one per core by default; `--tls`: serve HTTPS,
//!        HTTP/1.1 by ALPN, with rustls, so a proxy's TLS upstream path can be measured)

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

static SESSIONS: AtomicU64 = AtomicU64::new(0);

fn header(req: &Request<Incoming>, name: &str, default: u64) -> u64 {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn full(status: u16, content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// An SSE body produced by a task, one frame per event, flushed as it is sent.
fn sse(
    events: impl FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> tokio::task::JoinHandle<()>,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    events(tx);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let mode_sse = req.headers().get("x-mock-mode").is_some_and(|v| v == "sse");
    let service = Duration::from_millis(header(&req, "x-mock-service-ms", 0));
    let events = header(&req, "x-mock-events", 3);
    let method = req.method().clone();
    match method {
        hyper::Method::GET => {
            let spacing = Duration::from_millis(header(&req, "x-mock-spacing-ms", 1000).max(1));
            Ok(sse(move |tx| {
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(spacing);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        let event = format!("data: {{\"sent_us\":{}}}\n\n", now_us());
                        if tx.send(Bytes::from(event)).await.is_err() {
                            return;
                        }
                    }
                })
            }))
        }
        hyper::Method::DELETE => Ok(full(200, "application/json", String::new())),
        hyper::Method::POST => {
            let spacing = Duration::from_millis(header(&req, "x-mock-spacing-ms", 0));
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let msg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let id = msg.get("id").cloned();
            let Some(id) = id else {
                return Ok(full(202, "application/json", String::new()));
            };
            if !service.is_zero() {
                tokio::time::sleep(service).await;
            }
            if msg["method"] == "initialize" {
                let sid = SESSIONS.fetch_add(1, Ordering::Relaxed);
                let mut resp = full(200, "application/json", serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"mock","version":"1"}}}).to_string());
                if let Ok(v) = format!("mock-{sid}").parse() {
                    resp.headers_mut().insert("mcp-session-id", v);
                }
                return Ok(resp);
            }
            let result = if msg["method"] == "tools/list" {
                tools_list(id)
            } else {
                serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":"ok"}]}}).to_string()
            };
            if !mode_sse {
                return Ok(full(200, "application/json", result));
            }
            Ok(sse(move |tx| {
                tokio::spawn(async move {
                    for i in 1..=events {
                        if !spacing.is_zero() {
                            tokio::time::sleep(spacing).await;
                        }
                        let ev = format!("data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progress\":{i},\"sent_us\":{}}}}}\n\n", now_us());
                        if tx.send(Bytes::from(ev)).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(Bytes::from(format!("data: {result}\n\n"))).await;
                })
            }))
        }
        _ => Ok(full(405, "text/plain", String::new())),
    }
}

/// A tools/list result of 20 tools (about 4 KB), fresh for 60 s for any client (MCP
/// 2026-07-28 `ttlMs`/`cacheScope`): the cache scenario's answer.
fn tools_list(id: serde_json::Value) -> String {
    let tools: Vec<serde_json::Value> = (0..20)
        .map(|i| {
            serde_json::json!({
                "name": format!("tool_{i}"),
                "description": "A tool of the load test's mock upstream, described at some length.",
                "inputSchema": {"type":"object","properties":{"message":{"type":"string"},"count":{"type":"integer"}},"required":["message"]}
            })
        })
        .collect();
    serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"tools":tools,"ttlMs":60000,"cacheScope":"public"}})
        .to_string()
}

/// The command line: `ADDR [--threads N] [--tls CERT.pem KEY.pem]`.
struct Args {
    addr: String,
    threads: Option<usize>,
    tls: Option<(String, String)>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        addr: "127.0.0.1:3901".into(),
        threads: None,
        tls: None,
    };
    let mut positional = false;
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--threads" => {
                let n = it.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0);
                a.threads = Some(n.ok_or("--threads needs a number above 0")?);
            }
            "--tls" => {
                let (cert, key) = (it.next(), it.next());
                a.tls = Some(cert.zip(key).ok_or("--tls needs CERT.pem KEY.pem")?);
            }
            _ if !positional && !arg.starts_with('-') => {
                a.addr = arg;
                positional = true;
            }
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    Ok(a)
}

/// A TLS acceptor for a PEM certificate chain and key (rustls, ring, HTTP/1.1 only).
fn tls_acceptor(cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut conf = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("TLS: {e}"))?;
    conf.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(conf)))
}

fn serve<I>(io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service_fn(handle))
            .await;
    });
}

fn main() {
    let args = args().unwrap_or_else(|e| {
        eprintln!("shadowcat-mock-upstream: {e}");
        std::process::exit(64);
    });
    let tls = args.tls.as_ref().map(|(c, k)| {
        tls_acceptor(c, k).unwrap_or_else(|e| {
            eprintln!("shadowcat-mock-upstream: {e}");
            std::process::exit(66);
        })
    });
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build().unwrap_or_else(|e| {
        eprintln!("shadowcat-mock-upstream: runtime: {e}");
        std::process::exit(70);
    });
    let result: std::io::Result<()> = rt.block_on(async move {
        let listener = TcpListener::bind(&args.addr).await?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!("mock upstream on {scheme}://{}", args.addr);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            match &tls {
                None => serve(stream),
                Some(acceptor) => {
                    let accept = acceptor.accept(stream);
                    tokio::spawn(async move {
                        if let Ok(stream) = accept.await {
                            serve(stream);
                        }
                    });
                }
            }
        }
    });
    if let Err(e) = result {
        eprintln!("shadowcat-mock-upstream: {e}");
        std::process::exit(1);
    }
}
