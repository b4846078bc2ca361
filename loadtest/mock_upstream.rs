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
//! Usage: shadowcat-mock-upstream 127.0.0.1:PORT

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

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3901".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("mock upstream on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
