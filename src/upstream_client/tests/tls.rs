//! TLS upstreams: trust (CA file, system roots, skip-verify), names, expiry, client
//! certificates, ALPN, and start-up errors.

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::*;

/// A server config for the pair; `client_ca`: require client certificates chained to it.
fn server_tls(pair: &(PathBuf, PathBuf), client_ca: Option<&PathBuf>) -> ServerConfig {
    let chain = CertificateDer::pem_file_iter(&pair.0)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pair.1).unwrap();
    let provider = crate::tls::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = crate::tls::load_roots(ca).unwrap();
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .unwrap(),
            )
        }
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A leaf for `names` that expired in 2020.
fn expired_leaf(dir: &CertDir, names: &[&str], ca: &Issuer<'_, KeyPair>) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let cert = params.signed_by(&key, ca).unwrap();
    let (c, k) = (dir.path("expired.crt"), dir.path("expired.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// A client certificate (chain and key files) with common name `cn`.
fn client_pair(dir: &CertDir, cn: &str, ca: &Issuer<'_, KeyPair>) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, ca).unwrap();
    let (c, k) = (dir.path("client.crt"), dir.path("client.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// A CA, a server for `names` under it, and the CA's file.
struct Pki {
    dir: CertDir,
    ca: Issuer<'static, KeyPair>,
    ca_file: PathBuf,
}

fn pki(tag: &str) -> Pki {
    let dir = CertDir::new(tag);
    let ca = dir.ca("ca");
    let ca_file = dir.path("ca.crt");
    Pki { dir, ca, ca_file }
}

async fn tls_server(p: &Pki, names: &[&str]) -> SocketAddr {
    serve(Some(server_tls(&p.dir.leaf("server", names, &p.ca), None))).await
}

fn tls_settings(p: &Pki, server_name: &str) -> ClientSettings {
    let mut s = settings(true, server_name);
    s.tls.ca_file = Some(p.ca_file.clone());
    s
}

#[tokio::test]
async fn tls_good_chain_via_ca_file() {
    let p = pki("good");
    let addr = tls_server(&p, &["localhost", "127.0.0.1"]).await;
    let client = UpstreamClient::new(&tls_settings(&p, "127.0.0.1")).unwrap();
    // Auto offers h2 by ALPN; the server takes it.
    let (v, _) = fetch(&client, "https", addr).await.unwrap();
    assert_eq!(v, http::Version::HTTP_2);
    // A DNS name as the server name, the URL still an IP.
    let client = UpstreamClient::new(&tls_settings(&p, "localhost")).unwrap();
    assert!(fetch(&client, "https", addr).await.is_ok());
}

#[tokio::test]
async fn tls_http2_modes_pick_the_version() {
    let p = pki("alpn");
    let addr = tls_server(&p, &["localhost"]).await;
    for (mode, want) in [
        (Http2Mode::Never, http::Version::HTTP_11),
        (Http2Mode::Always, http::Version::HTTP_2),
        (Http2Mode::Auto, http::Version::HTTP_2),
    ] {
        let mut s = tls_settings(&p, "localhost");
        s.http2 = mode;
        let client = UpstreamClient::new(&s).unwrap();
        let (v, _) = fetch(&client, "https", addr).await.unwrap();
        assert_eq!(v, want, "{mode:?}");
    }
}

#[tokio::test]
async fn tls_system_roots_do_not_trust_a_test_ca() {
    let p = pki("sysroots");
    let addr = tls_server(&p, &["localhost"]).await;
    let client = match UpstreamClient::new(&settings(true, "localhost")) {
        Ok(c) => c,
        // A machine without system roots: the client says so at start, which is the point.
        Err(e) => return assert!(e.contains("no system CA certificates"), "{e}"),
    };
    let e = fetch(&client, "https", addr).await.unwrap_err();
    assert_eq!(e.kind(), "tls_unknown_ca", "{e}");
    assert!(e.is_tls() && e.is_connect());
    assert_eq!(e.message(), "upstream TLS: certificate not trusted");
}

#[tokio::test]
async fn tls_expired_leaf() {
    let p = pki("expired");
    let pair = expired_leaf(&p.dir, &["localhost"], &p.ca);
    let addr = serve(Some(server_tls(&pair, None))).await;
    let client = UpstreamClient::new(&tls_settings(&p, "localhost")).unwrap();
    let e = fetch(&client, "https", addr).await.unwrap_err();
    assert_eq!(e.kind(), "tls_expired", "{e}");
}

#[tokio::test]
async fn tls_name_mismatch_and_the_server_name_override() {
    let p = pki("names");
    let addr = tls_server(&p, &["mcp.internal"]).await;
    let client = UpstreamClient::new(&tls_settings(&p, "127.0.0.1")).unwrap();
    let e = fetch(&client, "https", addr).await.unwrap_err();
    assert_eq!(e.kind(), "tls_name_mismatch", "{e}");
    assert_eq!(
        e.message(),
        "upstream TLS: certificate not valid for name \"127.0.0.1\""
    );
    // `tls.server_name: mcp.internal` with the same URL.
    let client = UpstreamClient::new(&tls_settings(&p, "mcp.internal")).unwrap();
    assert!(fetch(&client, "https", addr).await.is_ok());
}

#[tokio::test]
async fn tls_insecure_skip_verify_accepts_a_self_signed_cert() {
    let dir = CertDir::new("insecure");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["elsewhere".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pair = (dir.path("self.crt"), dir.path("self.key"));
    std::fs::write(&pair.0, cert.pem()).unwrap();
    std::fs::write(&pair.1, key.serialize_pem()).unwrap();
    let addr = serve(Some(server_tls(&pair, None))).await;
    let mut s = settings(true, "127.0.0.1");
    s.tls.insecure_skip_verify = true;
    let client = UpstreamClient::new(&s).unwrap();
    assert!(fetch(&client, "https", addr).await.is_ok());
}

/// TLS 1.3: the client's handshake ends before the server has judged its certificate, so the
/// server's `certificate_required` alert arrives on the first read, after the request was
/// written. On h1 the `rustls::Error` is in the chain; on h2 only its text (see `h2_alert`).
#[tokio::test]
async fn tls_client_certificates() {
    let p = pki("mtls");
    let client_ca = p.dir.ca("client-ca");
    let pair = p.dir.leaf("server", &["localhost"], &p.ca);
    let addr = serve(Some(server_tls(&pair, Some(&p.dir.path("client-ca.crt"))))).await;

    // Without a certificate the server refuses the connection, over h1 and h2 alike.
    for mode in [Http2Mode::Never, Http2Mode::Always] {
        let mut s = tls_settings(&p, "localhost");
        s.http2 = mode;
        let client = UpstreamClient::new(&s).unwrap();
        let e = fetch(&client, "https", addr).await.unwrap_err();
        assert_eq!(e.kind(), "tls_client_cert", "{mode:?}: {e}");
        assert!(e.is_tls() && e.is_connect());
        assert_eq!(
            e.message(),
            "upstream TLS: client certificate refused or missing"
        );
    }

    // With one from the CA it trusts: 200.
    let (cert, key) = client_pair(&p.dir, "proxy", &client_ca);
    let mut s = tls_settings(&p, "localhost");
    s.tls.cert_file = Some(cert);
    s.tls.key_file = Some(key);
    let client = UpstreamClient::new(&s).unwrap();
    assert!(fetch(&client, "https", addr).await.is_ok());
}

#[test]
fn start_up_errors_name_the_problem() {
    let p = pki("startup");
    let mut s = tls_settings(&p, "localhost");
    s.tls.ca_file = Some(p.dir.path("missing.crt"));
    let e = UpstreamClient::new(&s).unwrap_err();
    assert!(
        e.contains("missing.crt") && e.contains("cannot read"),
        "{e}"
    );

    // A client certificate with another pair's key.
    let (cert, _) = p.dir.leaf("a", &["a"], &p.ca);
    let (_, key) = p.dir.leaf("b", &["b"], &p.ca);
    let mut s = tls_settings(&p, "localhost");
    s.tls.cert_file = Some(cert);
    s.tls.key_file = Some(key);
    let e = UpstreamClient::new(&s).unwrap_err();
    assert!(e.contains("does not match"), "{e}");

    let e = UpstreamClient::new(&tls_settings(&p, "not a name")).unwrap_err();
    assert!(e.contains("not a DNS name or IP address"), "{e}");
}
