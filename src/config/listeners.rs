//! Validated listener settings: where the proxy listens, and TLS for the listeners that have it.
//! The certificate files themselves are read (and checked) by `crate::tls`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One address for MCP clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    /// `None`: plain HTTP/1.1 and h2c.
    pub tls: Option<TlsConfig>,
}

impl Listener {
    /// A listener without TLS (what `listen:` and `--bind` give).
    pub fn plain(addr: SocketAddr) -> Self {
        Self { addr, tls: None }
    }
}

/// TLS termination on a listener: HTTP/1.1 and h2 by ALPN, TLS 1.2 and 1.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Served when the client's SNI matches no `certificates` entry (or it sends none).
    pub default: Option<CertPair>,
    /// Pairs chosen by the SNI name; the first entry naming it wins.
    pub certificates: Vec<SniCert>,
    /// CA bundle that client certificates must chain to (mTLS).
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// A handshake not complete this long after accept is abandoned.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// One default pair, nothing else (what `--tls-cert`/`--tls-key` give).
    pub fn pair(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            default: Some(CertPair {
                cert_file: cert_file.into(),
                key_file: key_file.into(),
            }),
            certificates: Vec::new(),
            client_ca_file: None,
            client_auth: ClientAuth::Off,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Every file the TLS settings read, in a fixed order (reloads watch them).
    pub fn files(&self) -> Vec<PathBuf> {
        let pairs = self
            .default
            .iter()
            .chain(self.certificates.iter().map(|c| &c.pair));
        pairs
            .flat_map(|p| [p.cert_file.clone(), p.key_file.clone()])
            .chain(self.client_ca_file.clone())
            .collect()
    }
}

/// Default `listeners[].tls.handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A PEM certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A pair served for the SNI names listed (`*.example.com` matches one label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCert {
    /// Lowercase DNS names, possibly `*.` wildcards.
    pub names: Vec<String>,
    pub pair: CertPair,
}

/// Whether clients present certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// None asked for.
    Off,
    /// Asked for; a client without one is served, one with a bad one is refused.
    Optional,
    /// A client without a certificate from `client_ca_file` is refused.
    Required,
}

/// `security.hsts`: the `Strict-Transport-Security` value for responses over TLS.
pub fn hsts_value(max_age: Duration, include_subdomains: bool, preload: bool) -> String {
    let mut value = format!("max-age={}", max_age.as_secs());
    if include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if preload {
        value.push_str("; preload");
    }
    value
}
