//! Certificate reload without restart (issue 16, item 2): files rotated in place are picked up
//! by new handshakes while open connections and SSE streams carry on; a bad new pair keeps the
//! old one; SIGHUP reloads too (and does not end the process).

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use shadowcat::config::TlsConfig;

use crate::support::proxy_process::{free_port, ProxyProcess};
use crate::support::tls::*;
use crate::support::*;

/// Replaces `path` the way cert-manager and certbot do: a new file renamed over the old.
fn replace(path: &Path, from: &Path) {
    let tmp = path.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn served_under(ca: &Ca, addr: std::net::SocketAddr) -> Result<u16, String> {
    let client = https_client(ca, None)
        .resolve("localhost", addr)
        .build()
        .unwrap();
    ping(&client, &https_url("localhost", addr)).await
}

const RELOAD_OK: &str = "shadowcat_tls_reloads_total{result=\"ok\"}";
const RELOAD_ERROR: &str = "shadowcat_tls_reloads_total{result=\"error\"}";

#[tokio::test]
async fn rotated_files_reach_new_handshakes_while_an_sse_stream_stays_open() {
    let events: Vec<String> = (1..=12).map(|i| format!("data: {i}\n\n")).collect();
    let upstream = MockUpstream::start(move |_| {
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        Reply::sse(&events, Duration::from_millis(250), false)
    })
    .await;
    let certs = Certs::new("rotate");
    let old_ca = certs.ca("old");
    let new_ca = certs.ca("new");
    let (cert, key) = certs.server("srv", &["localhost"], &old_ca);
    let (next_cert, next_key) = certs.server("next", &["localhost"], &new_ca);
    let proxy = Proxy::start(tls_config_for(
        &upstream.url(),
        TlsConfig::pair(&cert, &key),
    ))
    .await;
    let sse = https_client(&old_ca, None)
        .resolve("localhost", proxy.addr)
        .build()
        .unwrap();
    let mut stream = post(&sse, &https_url("localhost", proxy.addr), &call(1, "slow")).await;
    assert_eq!(stream.status(), 200);
    read_events(&mut stream, 2).await;
    assert!(served_under(&new_ca, proxy.addr).await.is_err());

    replace(&key, &next_key);
    replace(&cert, &next_cert);
    let mut rotated = false;
    for _ in 0..50 {
        if served_under(&new_ca, proxy.addr).await == Ok(200) {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "new handshakes get the new pair");
    assert!(served_under(&old_ca, proxy.addr).await.is_err());
    assert!(proxy.settled_when(RELOAD_OK, |v| v >= 1.0).await >= Some(1.0));
    let expiry = "shadowcat_tls_certificate_expiry_seconds{name=\"default\"}";
    assert!(sample(&proxy.metrics().await, expiry).is_some_and(|v| v > 1.0e9));
    // The stream opened under the old pair never noticed.
    let (rest, _) = read_events(&mut stream, 10).await;
    assert!(rest.contains("data: 12"), "{rest}");
}

#[tokio::test]
async fn a_bad_new_pair_keeps_the_old_one() {
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let certs = Certs::new("bad-reload");
    let ca = certs.ca("ca");
    let other = certs.ca("other");
    let (cert, key) = certs.server("srv", &["localhost"], &ca);
    let (_, foreign_key) = certs.server("foreign", &["localhost"], &other);
    let proxy = Proxy::start(tls_config_for(
        &upstream.url(),
        TlsConfig::pair(&cert, &key),
    ))
    .await;
    std::fs::write(certs.path("junk.pem"), "not a certificate").unwrap();
    // Garbage for the certificate, then a key that is not the certificate's.
    let cases = [(&cert, certs.path("junk.pem")), (&key, foreign_key)];
    for (n, (target, bad)) in cases.into_iter().enumerate() {
        let saved = std::fs::read(target).unwrap();
        replace(target, &bad);
        let errors = (n + 1) as f64;
        assert_eq!(
            proxy.settled(RELOAD_ERROR, errors).await,
            Some(errors),
            "case {n}"
        );
        assert_eq!(
            served_under(&ca, proxy.addr).await,
            Ok(200),
            "old pair kept"
        );
        std::fs::write(target, saved).unwrap();
    }
    // Restored files are a good pair again.
    assert!(proxy.settled_when(RELOAD_OK, |v| v >= 1.0).await >= Some(1.0));
    assert_eq!(served_under(&ca, proxy.addr).await, Ok(200));
}

/// The quick-start flags, and SIGHUP: a reload even when no file changed (what an operator
/// who just replaced the files expects), and the process lives on.
#[tokio::test]
async fn sighup_reloads_certificates_given_by_the_quick_start_flags() {
    let upstream =
        MockUpstream::start(|_| Reply::json(json!({"jsonrpc":"2.0","id":1,"result":{}}))).await;
    let certs = Certs::new("hup");
    let ca = certs.ca("ca");
    let (cert, key) = certs.server("srv", &["localhost"], &ca);
    let mut admin = 0;
    let mut proxy = ProxyProcess::start(|port| {
        admin = free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shadowcat"));
        command
            .args(["reverse", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--upstream", &upstream.url()])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    })
    .await;
    let port = proxy.port;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let metrics = format!("http://127.0.0.1:{admin}/metrics");
    let reloads = || async {
        let text = match reqwest::get(&metrics).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        sample(&text, RELOAD_OK)
    };
    let mut up = false;
    for _ in 0..300 {
        if reloads().await == Some(0.0) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "the proxy started");
    assert_eq!(served_under(&ca, addr).await, Ok(200));
    proxy.signal("HUP");
    let mut reloaded = false;
    for _ in 0..100 {
        if reloads().await == Some(1.0) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "SIGHUP reloaded the certificates");
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "SIGHUP did not end the process"
    );
    assert_eq!(served_under(&ca, addr).await, Ok(200));
    drop(proxy);
}
