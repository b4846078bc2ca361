//! Certificates made at test time (rcgen; RSA keys by `openssl genpkey`, which ring cannot
//! generate), and HTTPS clients that trust them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use shadowcat::config::{Config, Listener, TlsConfig};

/// A CA: its certificate (PEM) and the issuer that signs leaves.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Key algorithms a served certificate may use.
#[derive(Debug, Clone, Copy)]
pub enum Alg {
    Ecdsa,
    Ed25519,
    Rsa,
}

/// A directory of PEM files, removed on drop.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("shadowcat-it-tls-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new CA named `name`; its certificate is written to `{name}.crt`.
    pub fn ca(&self, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        std::fs::write(self.path(&format!("{name}.crt")), &pem).unwrap();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server pair for `names`, written to `{file}.crt` / `{file}.key`.
    pub fn server(&self, file: &str, names: &[&str], ca: &Ca) -> (PathBuf, PathBuf) {
        self.server_with(file, names, ca, Alg::Ecdsa)
    }

    pub fn server_with(&self, file: &str, names: &[&str], ca: &Ca, alg: Alg) -> (PathBuf, PathBuf) {
        let key = match alg {
            Alg::Ecdsa => KeyPair::generate().unwrap(),
            Alg::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
            Alg::Rsa => {
                let out = std::process::Command::new("openssl")
                    .args([
                        "genpkey",
                        "-algorithm",
                        "RSA",
                        "-pkeyopt",
                        "rsa_keygen_bits:2048",
                    ])
                    .output()
                    .expect("openssl (for an RSA key)");
                assert!(out.status.success());
                let pem = String::from_utf8(out.stdout).unwrap();
                KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap()
            }
        };
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca.issuer)
            .unwrap();
        self.write(file, &cert.pem(), &key.serialize_pem())
    }

    /// A server pair for `names` whose validity ended in 2021.
    pub fn server_expired(&self, file: &str, names: &[&str], ca: &Ca) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        self.write(file, &cert.pem(), &key.serialize_pem())
    }

    /// A client certificate and its key as two files (`{file}.crt`, `{file}.key`), as the
    /// proxy's `upstreams[].tls.cert_file` / `key_file` read them.
    pub fn client_files(&self, file: &str, cn: &str, ca: &Ca) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        self.write(file, &cert.pem(), &key.serialize_pem())
    }

    /// A client certificate with common name `cn`: its PEM (certificate and key together, as
    /// reqwest's `Identity` reads it).
    pub fn client(&self, cn: &str, ca: &Ca) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem())
    }

    fn write(&self, file: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (
            self.path(&format!("{file}.crt")),
            self.path(&format!("{file}.key")),
        );
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `config_for(upstream)` whose one listener terminates TLS with `tls`.
pub fn tls_config_for(upstream_url: &str, tls: TlsConfig) -> Config {
    let mut config = super::config_for(upstream_url);
    config.listeners = vec![Listener {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: Some(tls),
    }];
    config
}

/// An HTTPS client that trusts `ca` only; `identity` is a client certificate PEM.
pub fn https_client(ca: &Ca, identity: Option<&str>) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b
}

/// `https://{name}:{port}/mcp`, with `name` resolving to `addr` in the client.
pub fn https_url(name: &str, addr: SocketAddr) -> String {
    format!("https://{name}:{}/mcp", addr.port())
}

/// A POSTed `ping` through `client`: the status, or the error text when the request failed
/// (a refused handshake).
pub async fn ping(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    let body = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    match client
        .post(url)
        .header("accept", super::ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(format!("{e:?}")),
    }
}
