//! An upstream on hyper's server: HTTP/1.1 and HTTP/2 (h2c by prior knowledge, or h2 by ALPN
//! over TLS), optionally TLS with a test certificate and a required client certificate. It
//! answers JSON-RPC requests with what it saw (HTTP version, trace headers), and streams SSE
//! for `tools/call` of `stream` (events with ids, then held open) so tests can see a client's
//! disconnect reach it as a closed connection or an HTTP/2 stream reset; `stream_dies` sends
//! two events and then fails its body (the connection dies under the stream), and a `GET`
//! with `Last-Event-ID: up-N` resumes after event N and then answers the call.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// TLS for the upstream: its certificate and key, ALPN protocols, and whether a client
/// certificate signed by `client_ca` is required.
pub struct UpstreamTls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub alpn: &'a [&'a [u8]],
    pub client_ca: Option<&'a Path>,
}

/// A running upstream; stops with the test's runtime.
pub struct HttpUpstream {
    pub addr: SocketAddr,
    tls: bool,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// SSE streams whose body the server dropped before it ended (the client went away).
    pub cancelled: Arc<AtomicUsize>,
    /// SSE streams opened.
    pub streams: Arc<AtomicUsize>,
}

impl HttpUpstream {
    pub async fn start(tls: Option<UpstreamTls<'_>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tls.as_ref().map(acceptor);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cancelled = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(AtomicUsize::new(0));
        let state = (seen.clone(), cancelled.clone(), streams.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(req, state).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            // A refused handshake (no client certificate, say) ends here.
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            tls: tls.is_some(),
            seen,
            cancelled,
            streams,
        }
    }

    /// The MCP endpoint as `name` (`127.0.0.1`, or a name the certificate holds, which must
    /// resolve to loopback: `localhost`).
    pub fn url_as(&self, name: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{name}:{}/mcp", self.addr.port())
    }

    pub fn url(&self) -> String {
        self.url_as("127.0.0.1")
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

type State = (Arc<Mutex<Vec<Seen>>>, Arc<AtomicUsize>, Arc<AtomicUsize>);
type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn answer(req: http::Request<hyper::body::Incoming>, state: State) -> http::Response<Body> {
    let (seen, cancelled, streams) = state;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        version: parts.version,
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let msg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let tool = msg["params"]["name"].as_str().unwrap_or_default();
    let sse_call = msg["method"] == "tools/call" && tool.starts_with("stream");
    let dies = tool == "stream_dies";
    let resuming = parts.method == http::Method::GET;
    if !sse_call && !resuming {
        let result = serde_json::json!({
            "jsonrpc": "2.0",
            "id": msg["id"],
            "result": {
                "version": format!("{:?}", parts.version),
                "traceparent": header("traceparent"),
                "tracestate": header("tracestate"),
            }
        });
        let full = Full::new(Bytes::from(result.to_string())).map_err(|e| match e {});
        let mut resp = http::Response::new(full.boxed());
        resp.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        if msg["method"] == "initialize" {
            resp.headers_mut()
                .insert("mcp-session-id", "upstream-session-1".parse().unwrap());
        }
        return resp;
    }
    streams.fetch_add(1, Ordering::Relaxed);
    // Events `up-1`, `up-2`, then (a POST stream) held open; a resumption (GET with
    // `Last-Event-ID`) continues from the id it names and then answers the call.
    let from: u32 = header("last-event-id")
        .and_then(|id| id.strip_prefix("up-")?.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let guard = Cancelled(cancelled, true);
    tokio::spawn(async move {
        for n in from + 1..=from + 2 {
            let event = format!(
                "id: up-{n}\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progress\":{n}}}}}\n\n"
            );
            if tx.send(Ok(Bytes::from(event))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if resuming {
            let done = "id: up-9\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n";
            let _ = tx.send(Ok(Bytes::from_static(done.as_bytes()))).await;
            return;
        }
        if dies {
            // Half an event, then the connection fails under the stream.
            let _ = tx
                .send(Ok(Bytes::from_static(b"id: up-3\ndata: {\"half")))
                .await;
            let _ = tx.send(Err(std::io::Error::other("upstream died"))).await;
            return;
        }
        // Held: the body ends only when the client goes away.
        tx.closed().await;
    });
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, mut guard)| async move {
        match rx.recv().await {
            Some(item) => Some((item.map(Frame::data), (rx, guard))),
            None => {
                guard.disarm();
                None
            }
        }
    });
    let mut resp = http::Response::new(StreamBody::new(stream).boxed());
    resp.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    resp
}

/// Counts a stream dropped before its end.
struct Cancelled(Arc<AtomicUsize>, bool);

impl Cancelled {
    /// The stream ended: not a cancellation.
    fn disarm(&mut self) {
        self.1 = false;
    }
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if self.1 {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn acceptor(tls: &UpstreamTls<'_>) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(tls.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(tls.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).unwrap();
    config.alpn_protocols = tls.alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
