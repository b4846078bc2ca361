//! TLS termination settings, without Pingora: certificate files → a rustls `ServerConfig`,
//! swapped atomically on reload.
//!
//! Each TLS listener has a [`TlsState`]. A handshake takes the [`Snapshot`] in force when its
//! ClientHello arrives and keeps it to the end, so a reload never changes a handshake in
//! flight; open connections never look at it again. A reload reads and checks every file
//! first ([`Certs::load`]) and swaps only a complete new snapshot in: a bad file keeps the old
//! one. The accept layer (`server::tls`) drives handshakes and reloads.
//!
//! * `certs` — PEM pairs and CA bundles; expiry and identity read from certificates;
//! * `resolver` — the certificate for an SNI name.

mod certs;
mod resolver;
#[cfg(test)]
pub mod testing;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

pub use certs::{identity, LoadError};
pub(crate) use certs::{load_pair, load_roots};
pub use resolver::SniResolver;

use crate::config::{ClientAuth, TlsConfig};
use crate::file_stamp::Stamp;

/// ALPN protocols offered, in the server's order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Sessions kept for resumption per listener (rustls' default size).
const SESSION_CACHE: usize = 256;

/// The ring provider (the one in the dependency tree; it needs only a C compiler).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Every file of a listener's TLS settings, read and checked.
#[derive(Debug)]
pub struct Certs {
    pub resolver: Arc<SniResolver>,
    pub client_roots: Option<Arc<RootCertStore>>,
    /// `(name, notAfter as Unix seconds)` per pair: `default`, or an SNI entry's first name.
    pub expiries: Vec<(String, i64)>,
}

impl Certs {
    pub fn load(tls: &TlsConfig) -> Result<Self, LoadError> {
        let provider = provider();
        let mut expiries = Vec::new();
        let default = match &tls.default {
            Some(p) => {
                let (key, not_after) = certs::load_pair(&p.cert_file, &p.key_file, &provider)?;
                expiries.push(("default".to_owned(), not_after));
                Some(key)
            }
            None => None,
        };
        let mut resolver = SniResolver::new(default);
        for entry in &tls.certificates {
            let p = &entry.pair;
            let (key, not_after) = certs::load_pair(&p.cert_file, &p.key_file, &provider)?;
            for name in &entry.names {
                resolver.add(name, key.clone());
            }
            if let Some(first) = entry.names.first() {
                expiries.push((first.clone(), not_after));
            }
        }
        let client_roots = match (&tls.client_ca_file, tls.client_auth) {
            (Some(file), ClientAuth::Optional | ClientAuth::Required) => {
                Some(certs::load_roots(file)?)
            }
            _ => None,
        };
        Ok(Self {
            resolver: Arc::new(resolver),
            client_roots,
            expiries,
        })
    }
}

/// What handshakes starting now use.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<ServerConfig>,
    /// The config's certificate resolver, to tell an unknown SNI name from other failures.
    pub resolver: Arc<SniResolver>,
    pub expiries: Vec<(String, i64)>,
}

/// A TLS listener's settings and the snapshot in force.
#[derive(Debug)]
pub struct TlsState {
    settings: TlsConfig,
    files: Vec<PathBuf>,
    current: ArcSwap<Snapshot>,
    /// The files as last read, successfully or not (a bad file is reported once).
    stamps: Mutex<Vec<Option<Stamp>>>,
    /// Shared across reloads, so a reload does not end resumable sessions.
    sessions: Arc<dyn StoresServerSessions>,
}

// === impl TlsState ===

impl TlsState {
    pub fn new(settings: TlsConfig) -> Result<Self, LoadError> {
        let files = settings.files();
        let stamps = stamp(&files);
        let sessions: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSION_CACHE);
        let snapshot = build(&settings, Certs::load(&settings)?, &sessions)?;
        Ok(Self {
            settings,
            files,
            current: ArcSwap::from_pointee(snapshot),
            stamps: Mutex::new(stamps),
            sessions,
        })
    }

    pub fn settings(&self) -> &TlsConfig {
        &self.settings
    }

    /// The snapshot for a handshake starting now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// True when a file changed since it was last read (for the watcher's poll).
    pub fn changed(&self) -> bool {
        let now = stamp(&self.files);
        self.stamps.lock().map(|s| *s != now).unwrap_or(false)
    }

    /// Reads every file again and swaps the new snapshot in; on error the old one stays.
    pub fn reload(&self) -> Result<Arc<Snapshot>, LoadError> {
        let stamps = stamp(&self.files);
        let result =
            Certs::load(&self.settings).and_then(|c| build(&self.settings, c, &self.sessions));
        if let Ok(mut s) = self.stamps.lock() {
            *s = stamps;
        }
        let snapshot = Arc::new(result?);
        self.current.store(snapshot.clone());
        Ok(snapshot)
    }
}

fn stamp(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files.iter().map(|f| Stamp::of(f)).collect()
}

/// The rustls config: TLS 1.3 and 1.2 only, ALPN h2 and http/1.1, certificates by SNI, and
/// client certificates checked against the CA when configured.
fn build(
    tls: &TlsConfig,
    certs: Certs,
    sessions: &Arc<dyn StoresServerSessions>,
) -> Result<Snapshot, LoadError> {
    let provider = provider();
    let ca_file = tls.client_ca_file.clone().unwrap_or_default();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| LoadError::new(&ca_file, format!("TLS versions: {e}")))?;
    let builder = match &certs.client_roots {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider);
            let verifier = match tls.client_auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| LoadError::new(&ca_file, format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(certs.resolver.clone());
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.session_storage = sessions.clone();
    Ok(Snapshot {
        config: Arc::new(config),
        resolver: certs.resolver,
        expiries: certs.expiries,
    })
}

/// Verified client certificates of the connections open now, by their address pair.
///
/// Pingora hands the proxy phases no per-connection value an application can set: an HTTP/1
/// session's stream can be downcast, an HTTP/2 stream's cannot (it has only the connection's
/// digest, whose extension slot is crate-private). Both have the connection's two socket
/// addresses, which identify it while it is open, so the accept layer records the identity
/// here for the connection's life and the phases look it up.
#[derive(Debug, Default)]
pub struct PeerIdentities {
    open: Mutex<std::collections::HashMap<(SocketAddr, SocketAddr), Arc<str>>>,
}

/// Keeps a connection's identity recorded until it drops (when the connection ends).
#[derive(Debug)]
pub struct PeerGuard {
    peers: Arc<PeerIdentities>,
    key: (SocketAddr, SocketAddr),
}

impl PeerIdentities {
    /// Records `identity` for the connection `local` ← `peer` until the guard drops.
    pub fn enter(
        self: &Arc<Self>,
        local: SocketAddr,
        peer: SocketAddr,
        identity: Arc<str>,
    ) -> PeerGuard {
        if let Ok(mut open) = self.open.lock() {
            open.insert((local, peer), identity);
        }
        PeerGuard {
            peers: self.clone(),
            key: (local, peer),
        }
    }

    /// The verified client certificate's identity on this connection, if it has one.
    pub fn get(&self, local: SocketAddr, peer: SocketAddr) -> Option<Arc<str>> {
        self.open.lock().ok()?.get(&(local, peer)).cloned()
    }

    pub fn len(&self) -> usize {
        self.open.lock().map_or(0, |o| o.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        if let Ok(mut open) = self.peers.open.lock() {
            open.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CertPair, SniCert};
    use testing::CertDir;

    #[test]
    fn a_reload_swaps_a_good_snapshot_in_and_a_bad_one_never() {
        let dir = CertDir::new("state");
        let ca = dir.ca("ca");
        let (cert, key) = dir.leaf("a", &["a.test"], &ca);
        let (sni_cert, sni_key) = dir.leaf("b", &["b.test"], &ca);
        let mut settings = TlsConfig::pair(&cert, &key);
        settings.certificates.push(SniCert {
            names: vec!["b.test".into()],
            pair: CertPair {
                cert_file: sni_cert,
                key_file: sni_key.clone(),
            },
        });
        let state = TlsState::new(settings).unwrap();
        let first = state.current();
        let names: Vec<_> = first.expiries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["default", "b.test"]);
        assert_eq!(
            first.config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(!state.changed());

        // A key that is not the certificate's: refused, the old snapshot stays.
        std::fs::copy(&sni_key, &key).unwrap();
        assert!(state.changed());
        let e = state.reload().unwrap_err();
        assert_eq!(e.file, key);
        assert!(Arc::ptr_eq(&first, &state.current()));
        assert!(
            !state.changed(),
            "a bad file is reported once, not every second"
        );

        let (fresh_cert, fresh_key) = dir.leaf("a2", &["a.test"], &ca);
        std::fs::copy(&fresh_cert, &cert).unwrap();
        std::fs::copy(&fresh_key, &key).unwrap();
        assert!(state.changed());
        let second = state.reload().unwrap();
        assert!(Arc::ptr_eq(&second, &state.current()));
        assert!(!Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn an_identity_lives_as_long_as_its_connection() {
        let peers = Arc::new(PeerIdentities::default());
        let local: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let a: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:50001".parse().unwrap();
        let guard = peers.enter(local, a, "CN=alice".into());
        assert_eq!(peers.get(local, a).as_deref(), Some("CN=alice"));
        assert_eq!(peers.get(local, b), None);
        drop(guard);
        assert!(peers.is_empty());
    }
}
