//! Real servers on 127.0.0.1:0 (hyper-util's auto server: HTTP/1.1, h2, h2c), with and
//! without TLS, and certificates made at test time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{CertificateParams, DnType, Issuer, KeyPair};

use super::*;
use crate::tls::testing::CertDir;

mod tls;

/// Answers `200 ok <version>` to everything but `/reset`, until the test ends.
async fn serve(tls: Option<rustls::ServerConfig>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: http::Request<_>| async move {
                    // A failing service: h1 closes the connection, h2 resets the stream.
                    if req.uri().path() == "/reset" {
                        return Err("reset");
                    }
                    let body = format!("ok {:?}", req.version());
                    Ok(http::Response::new(http_body_util::Full::new(Bytes::from(
                        body,
                    ))))
                });
                let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = match acceptor {
                    None => server.serve_connection(TokioIo::new(tcp), service).await,
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(tls) => server.serve_connection(TokioIo::new(tls), service).await,
                        Err(_) => return,
                    },
                };
            });
        }
    });
    addr
}

fn settings(https: bool, server_name: &str) -> ClientSettings {
    ClientSettings {
        scheme_https: https,
        server_name: server_name.into(),
        connect_timeout: Duration::from_secs(5),
        http2: Http2Mode::Auto,
        tls: TlsSettings::default(),
        pool_idle: DEFAULT_POOL_IDLE,
        pool_max_idle: DEFAULT_POOL_MAX_IDLE,
    }
}

fn get(uri: String) -> http::Request<RequestBody> {
    http::Request::get(uri).body(empty_body()).unwrap()
}

/// The status and body of a GET to `/mcp` on `addr`, or the error.
async fn fetch(
    client: &UpstreamClient,
    scheme: &str,
    addr: SocketAddr,
) -> Result<(http::Version, String), UpstreamError> {
    let resp = client
        .send(get(format!("{scheme}://127.0.0.1:{}/mcp", addr.port())))
        .await?;
    assert_eq!(resp.status(), 200);
    let version = resp.version();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok((version, String::from_utf8(body.to_vec()).unwrap()))
}

#[tokio::test]
async fn plain_http1_and_pooled() {
    let addr = serve(None).await;
    let client = UpstreamClient::new(&settings(false, "127.0.0.1")).unwrap();
    for _ in 0..3 {
        let (v, body) = fetch(&client, "http", addr).await.unwrap();
        assert_eq!((v, body.as_str()), (http::Version::HTTP_11, "ok HTTP/1.1"));
    }
    // A POST with a body.
    let req = http::Request::post(format!("http://127.0.0.1:{}/mcp", addr.port()))
        .body(full_body(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(client.send(req).await.unwrap().status(), 200);
}

#[tokio::test]
async fn h2c_prior_knowledge_with_always() {
    let addr = serve(None).await;
    let mut s = settings(false, "127.0.0.1");
    s.http2 = Http2Mode::Always;
    let client = UpstreamClient::new(&s).unwrap();
    let (v, body) = fetch(&client, "http", addr).await.unwrap();
    assert_eq!((v, body.as_str()), (http::Version::HTTP_2, "ok HTTP/2.0"));
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    // Bind, learn the port, close: nothing listens there now.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = UpstreamClient::new(&settings(false, "127.0.0.1")).unwrap();
    let e = fetch(&client, "http", addr).await.unwrap_err();
    assert_eq!(e.kind(), "connect_refused", "{e}");
    assert!(e.is_connect() && !e.is_tls() && !e.is_out_of_resources());
    assert_eq!(e.message(), "upstream refused the connection");
}

#[tokio::test]
async fn a_dropped_request_is_a_reset_on_h1_and_h2() {
    let addr = serve(None).await;
    for mode in [Http2Mode::Never, Http2Mode::Always] {
        let mut s = settings(false, "127.0.0.1");
        s.http2 = mode;
        let client = UpstreamClient::new(&s).unwrap();
        let e = client
            .send(get(format!("http://127.0.0.1:{}/reset", addr.port())))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "reset", "{mode:?}: {e}");
        assert!(!e.is_connect(), "{mode:?}: the request was sent");
        assert_eq!(e.message(), "upstream closed the connection");
        // The client still works afterwards.
        assert!(fetch(&client, "http", addr).await.is_ok());
    }
}

#[tokio::test]
async fn a_response_that_is_not_http_is_a_protocol_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await;
    });
    let client = UpstreamClient::new(&settings(false, "127.0.0.1")).unwrap();
    let e = fetch(&client, "http", addr).await.unwrap_err();
    assert_eq!(e.kind(), "protocol", "{e}");
    assert!(!e.is_connect());
}

#[tokio::test]
async fn a_handshake_that_never_ends_hits_the_connect_timeout() {
    // Accepts TCP and then says nothing: the TLS handshake hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(listener.accept().await.unwrap().0);
        }
    });
    let mut s = settings(true, "localhost");
    s.connect_timeout = Duration::from_millis(200);
    s.tls.insecure_skip_verify = true;
    let client = UpstreamClient::new(&s).unwrap();
    let e = fetch(&client, "https", addr).await.unwrap_err();
    assert_eq!(e.kind(), "connect_timeout", "{e}");
    assert!(e.is_connect());
    held.abort();
}

#[tokio::test]
async fn wrong_scheme_is_refused_before_connecting() {
    let addr = serve(None).await;
    let client = UpstreamClient::new(&settings(false, "127.0.0.1")).unwrap();
    let e = fetch(&client, "https", addr).await.unwrap_err();
    assert!(e.is_connect(), "{e}");
    assert!(
        e.to_string()
            .contains("https URI sent to a client for http:// upstreams"),
        "{e}"
    );
}

#[test]
fn settings_from_config() {
    let text = "upstreams:\n  - url: https://[::1]:8443/mcp\n    http2: never\n  \
                - url: https://10.0.0.7/mcp\n    tls:\n      server_name: mcp.internal\n      \
                insecure_skip_verify: true\n";
    let config = crate::config::from_yaml_str(text).unwrap();
    let s = ClientSettings::from_config(
        &config.upstreams[0],
        config.upstreams[0].url().unwrap(),
        Duration::from_secs(3),
    );
    assert!(s.scheme_https);
    assert_eq!(s.server_name, "::1");
    assert_eq!(s.http2, Http2Mode::Never);
    assert_eq!(s.connect_timeout, Duration::from_secs(3));
    assert_eq!(
        (s.pool_idle, s.pool_max_idle),
        (Duration::from_secs(4), 256)
    );
    let s = ClientSettings::from_config(
        &config.upstreams[1],
        config.upstreams[1].url().unwrap(),
        Duration::from_secs(3),
    );
    assert_eq!(s.server_name, "mcp.internal");
    assert!(s.tls.insecure_skip_verify);
    assert!(UpstreamClient::new(&s).is_ok());
}
