//! In-process harness: mock upstreams and a proxy on 127.0.0.1:0, plus client helpers.

#![allow(dead_code)]

pub mod access_log;
pub mod http_upstream;
pub mod mcp_server;
pub mod mock;
pub mod otlp;
pub mod proxy_process;
pub mod redis_server;
pub mod stdio;
pub mod tls;
pub mod tokens;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use shadowcat::config::{Config, Listener, UpstreamConfig, UpstreamTarget, UpstreamUrl};
use tokio::sync::oneshot;

pub use mock::{Event, MockUpstream, Received, Reply};

pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// A proxy config in front of `upstream_url`, listening on an ephemeral loopback port.
pub fn config_for(upstream_url: &str) -> Config {
    Config {
        listeners: vec![Listener::plain("127.0.0.1:0".parse().unwrap())],
        admin: Some("127.0.0.1:0".parse().unwrap()),
        upstreams: vec![UpstreamConfig {
            name: "mock".into(),
            target: UpstreamTarget::Url(UpstreamUrl::parse(upstream_url).unwrap()),
            weight: 1,
            forward_authorization: false,
            headers: Vec::new(),
            tls: Default::default(),
            http2: Default::default(),
        }],
        ..Config::default()
    }
}

/// A proxy running on its own thread; stopped (fast shutdown) on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    /// Every listener's address (`addr` is the first).
    pub listeners: Vec<SocketAddr>,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct StopWatch(tokio::sync::Mutex<Option<oneshot::Receiver<()>>>);

#[async_trait]
impl ShutdownSignalWatch for StopWatch {
    async fn recv(&self) -> ShutdownSignal {
        if let Some(rx) = self.0.lock().await.take() {
            let _ = rx.await;
        }
        ShutdownSignal::FastShutdown
    }
}

impl Proxy {
    pub async fn start(config: Config) -> Self {
        let built = shadowcat::server::build(config).expect("proxy builds");
        let addr = built.listen;
        let listeners = built.listeners.clone();
        let admin = built.admin.expect("admin listener");
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            built.run(Box::new(StopWatch(tokio::sync::Mutex::new(Some(rx)))))
        });
        // Both listeners: Pingora starts its services one by one, so the admin one can open
        // after the proxy's (seen as a refused /healthz under load).
        for listener in listeners.iter().copied().chain([admin]) {
            for _ in 0..500 {
                if tokio::net::TcpStream::connect(listener).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Self {
            addr,
            listeners,
            admin,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of `series` once it reads `expected` (polled for up to 5 s), else its last
    /// value. For what the proxy records after the response left (the logging phase, a
    /// connection's end), which the client can see before the proxy has recorded it.
    pub async fn settled(&self, series: &str, expected: f64) -> Option<f64> {
        self.settled_when(series, |v| v == expected).await
    }

    /// [`Self::settled`] for a condition on the value. Once it holds, the value is read again
    /// 50 ms later and that one returned, so a count that goes on past it still fails.
    pub async fn settled_when(&self, series: &str, done: impl Fn(f64) -> bool) -> Option<f64> {
        let mut last = None;
        for _ in 0..250 {
            last = sample(&self.metrics().await, series);
            if last.is_some_and(&done) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return sample(&self.metrics().await, series);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        last
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An address where connections are refused for as long as the returned socket lives: bound
/// but never listening, so no other test can take the port meanwhile (a listener bound and
/// dropped leaves the port free for the next test that binds port 0).
pub fn refused_addr() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POSTs a JSON-RPC body the way MCP clients do.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    client
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

pub fn call(id: u64, tool: &str) -> serde_json::Value {
    serde_json::json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{}}})
}

/// Reads an SSE body chunk by chunk until `n` events (blocks with a `data:` line) arrived;
/// returns the text read and the instant each event completed.
pub async fn read_events(
    resp: &mut reqwest::Response,
    n: usize,
) -> (String, Vec<tokio::time::Instant>) {
    let mut text = String::new();
    let mut at = Vec::new();
    while at.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("SSE chunk in time")
            .expect("SSE read")
            .expect("stream ended early");
        text.push_str(&String::from_utf8_lossy(&chunk));
        let complete = text
            .matches("data:")
            .count()
            .min(text.matches("\n\n").count());
        while at.len() < complete {
            at.push(tokio::time::Instant::now());
        }
    }
    (text, at)
}

/// The value of one Prometheus sample line (exact series text), if present.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
