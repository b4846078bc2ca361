//! `shadowcat-otlp-sink`: a collector that accepts everything, for load tests with tracing on.
//! OTLP/HTTP: every `POST /v1/traces` body is read whole and answered 200 with an empty
//! `ExportTraceServiceResponse` (zero protobuf bytes: every field default, no partial
//! success), so the proxy's exporter never fails or waits. Every 5 s it prints the exports
//! and bytes received so far (the log says spans arrived at all).
//!
//! Usage: shadowcat-otlp-sink 127.0.0.1:PORT

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

static EXPORTS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

async fn export(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let traces = req.method() == hyper::Method::POST && req.uri().path() == "/v1/traces";
    let len = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().len() as u64,
        Err(_) => 0,
    };
    let status = if traces {
        EXPORTS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(len, Ordering::Relaxed);
        200
    } else {
        404
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4318".into());
    let listener = TcpListener::bind(&addr).await.expect("bind");
    tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            println!(
                "exports {} bytes {}",
                EXPORTS.load(Ordering::Relaxed),
                BYTES.load(Ordering::Relaxed)
            );
        }
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(export))
                .await;
        });
    }
}
