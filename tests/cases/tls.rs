//! TLS at the edge (issue 16): HTTP/1.1 and h2 by ALPN, certificates by SNI, RSA/ECDSA/Ed25519
//! keys, HSTS, and bad input on a TLS port (closed, counted, the proxy keeps serving).
//! Certificates are made at test time.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use shadowcat::authority::AuthorityPattern;
use shadowcat::config::{CertPair, Listener, SniCert, TlsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::tls::*;
use crate::support::*;

async fn json_upstream() -> MockUpstream {
    MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await
}

fn pair((cert_file, key_file): (std::path::PathBuf, std::path::PathBuf)) -> CertPair {
    CertPair {
        cert_file,
        key_file,
    }
}

/// TLS with only SNI entries (no default pair).
fn sni_only(entries: Vec<(Vec<&str>, CertPair)>) -> TlsConfig {
    let mut tls = TlsConfig::pair("unused", "unused");
    tls.default = None;
    tls.certificates = entries
        .into_iter()
        .map(|(names, pair)| SniCert {
            names: names.into_iter().map(str::to_owned).collect(),
            pair,
        })
        .collect();
    tls
}

/// Any `Host` (the SNI tests use made-up names).
fn any_host(config: &mut shadowcat::config::Config) {
    config
        .security
        .allowed_hosts
        .push(AuthorityPattern::new("*"));
}

fn failures(reason: &str) -> String {
    format!("shadowcat_tls_handshake_failures_total{{reason=\"{reason}\"}}")
}

#[tokio::test]
async fn http1_and_h2_are_negotiated_by_alpn() {
    let upstream = json_upstream().await;
    let certs = Certs::new("alpn");
    let ca = certs.ca("ca");
    let (c, k) = certs.server("srv", &["localhost"], &ca);
    let proxy = Proxy::start(tls_config_for(&upstream.url(), TlsConfig::pair(c, k))).await;
    let url = https_url("localhost", proxy.addr);
    for (client, version) in [
        (https_client(&ca, None), reqwest::Version::HTTP_2),
        (
            https_client(&ca, None).http1_only(),
            reqwest::Version::HTTP_11,
        ),
    ] {
        let client = client.resolve("localhost", proxy.addr).build().unwrap();
        let resp = post(&client, &url, &call(1, "echo")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), version);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["result"], json!({}));
    }
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn curl_http2_negotiates_h2() {
    let upstream = json_upstream().await;
    let certs = Certs::new("curl");
    let ca = certs.ca("ca");
    let (c, k) = certs.server("srv", &["localhost"], &ca);
    let proxy = Proxy::start(tls_config_for(&upstream.url(), TlsConfig::pair(c, k))).await;
    let port = proxy.addr.port();
    let out = tokio::process::Command::new("curl")
        .args([
            "--http2",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(certs.path("ca.crt"))
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args([
            "-H",
            "content-type: application/json",
            "-H",
            &format!("accept: {ACCEPT_BOTH}"),
        ])
        .args(["-d", r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#])
        .arg(format!("https://localhost:{port}/mcp"))
        .output()
        .await
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2 200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn sni_picks_the_certificate_and_an_unknown_name_is_refused() {
    let upstream = json_upstream().await;
    let certs = Certs::new("sni");
    let ca = certs.ca("ca");
    let a = pair(certs.server("a", &["a.test"], &ca));
    let b = pair(certs.server("b", &["*.b.test"], &ca));
    let mut config = tls_config_for(
        &upstream.url(),
        sni_only(vec![(vec!["a.test"], a), (vec!["*.b.test"], b)]),
    );
    any_host(&mut config);
    let proxy = Proxy::start(config).await;
    // The client checks the served certificate against the name it asked for, so a success
    // means the proxy chose the right one.
    for name in ["a.test", "x.b.test"] {
        let client = https_client(&ca, None)
            .resolve(name, proxy.addr)
            .build()
            .unwrap();
        assert_eq!(
            ping(&client, &https_url(name, proxy.addr)).await,
            Ok(200),
            "{name}"
        );
    }
    let client = https_client(&ca, None)
        .resolve("c.test", proxy.addr)
        .build()
        .unwrap();
    let refused = ping(&client, &https_url("c.test", proxy.addr))
        .await
        .unwrap_err();
    assert!(
        refused.contains("UnrecognisedName"),
        "RFC 6066 alert: {refused}"
    );
    assert_eq!(
        proxy.settled(&failures("unknown_sni"), 1.0).await,
        Some(1.0)
    );
}

/// RSA, ECDSA and Ed25519 keys, one per SNI name on one listener.
#[tokio::test]
async fn rsa_ecdsa_and_ed25519_keys_are_served() {
    let upstream = json_upstream().await;
    let certs = Certs::new("algs");
    let ca = certs.ca("ca");
    let algs = [
        ("ecdsa.test", Alg::Ecdsa),
        ("ed.test", Alg::Ed25519),
        ("rsa.test", Alg::Rsa),
    ];
    let entries = algs
        .iter()
        .map(|(name, alg)| {
            (
                vec![*name],
                pair(certs.server_with(name, &[name], &ca, *alg)),
            )
        })
        .collect();
    let mut config = tls_config_for(&upstream.url(), sni_only(entries));
    any_host(&mut config);
    let proxy = Proxy::start(config).await;
    for (name, alg) in algs {
        let client = https_client(&ca, None)
            .resolve(name, proxy.addr)
            .build()
            .unwrap();
        assert_eq!(
            ping(&client, &https_url(name, proxy.addr)).await,
            Ok(200),
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn hsts_is_sent_on_tls_listeners_only() {
    let upstream = json_upstream().await;
    let certs = Certs::new("hsts");
    let ca = certs.ca("ca");
    let (c, k) = certs.server("srv", &["localhost"], &ca);
    let mut config = tls_config_for(&upstream.url(), TlsConfig::pair(c, k));
    config
        .listeners
        .push(Listener::plain("127.0.0.1:0".parse().unwrap()));
    config.security.hsts = Some(http::HeaderValue::from_static("max-age=600"));
    let proxy = Proxy::start(config).await;
    let plain = proxy.listeners[1];
    let tls = https_client(&ca, None)
        .resolve("localhost", proxy.addr)
        .build()
        .unwrap();
    let url = https_url("localhost", proxy.addr);
    let resp = post(&tls, &url, &call(1, "echo")).await;
    assert_eq!(resp.headers()["strict-transport-security"], "max-age=600");
    // The proxy's own answers too.
    let resp = tls.get(url.replace("/mcp", "/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["strict-transport-security"], "max-age=600");
    let resp = post(&client(), &format!("http://{plain}/mcp"), &call(2, "echo")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("strict-transport-security").is_none());
}

/// Writes `bytes` (then stalls) and returns how long the proxy took to close the connection.
async fn closed_after(addr: SocketAddr, bytes: &[u8]) -> Duration {
    let started = tokio::time::Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink))
        .await
        .expect("the proxy closes the connection")
        .ok();
    started.elapsed()
}

#[tokio::test]
async fn plaintext_garbage_and_stalled_handshakes_are_closed_and_counted() {
    let upstream = json_upstream().await;
    let certs = Certs::new("bad");
    let ca = certs.ca("ca");
    let (c, k) = certs.server("srv", &["localhost"], &ca);
    let mut tls = TlsConfig::pair(c, k);
    tls.handshake_timeout = Duration::from_millis(300);
    let proxy = Proxy::start(tls_config_for(&upstream.url(), tls)).await;
    let plaintext = b"POST /mcp HTTP/1.1\r\nHost: localhost\r\ncontent-length: 2\r\n\r\n{}";
    assert!(closed_after(proxy.addr, plaintext).await < Duration::from_secs(1));
    assert!(
        closed_after(proxy.addr, b"\x00\x01\x02garbage\xff\xfe").await < Duration::from_secs(1)
    );
    assert_eq!(proxy.settled(&failures("not_tls"), 2.0).await, Some(2.0));
    // Silent, and a ClientHello record that never completes: both end at the timeout.
    for bytes in [&b""[..], b"\x16\x03\x01\x02\x00\x01"] {
        let took = closed_after(proxy.addr, bytes).await;
        assert!(took >= Duration::from_millis(290), "{took:?}");
    }
    assert_eq!(proxy.settled(&failures("timeout"), 2.0).await, Some(2.0));
    assert_eq!(upstream.connections(), 0, "nothing reached the upstream");
    // And it keeps serving.
    let client = https_client(&ca, None)
        .resolve("localhost", proxy.addr)
        .build()
        .unwrap();
    assert_eq!(
        ping(&client, &https_url("localhost", proxy.addr)).await,
        Ok(200)
    );
}
