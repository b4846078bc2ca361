//! Which certificate a handshake gets, by the client's SNI name.
//!
//! Exact names first, then a `*.` wildcard for the name's parent (one label, as RFC 6125
//! matches), then the default pair. A name nothing matches, with no default pair, gets no
//! certificate: rustls then refuses the handshake with an alert.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A fixed set of certificates; a reload builds a new one.
#[derive(Debug, Default)]
pub struct SniResolver {
    default: Option<Arc<CertifiedKey>>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

// === impl SniResolver ===

impl SniResolver {
    pub fn new(default: Option<Arc<CertifiedKey>>) -> Self {
        Self {
            default,
            ..Self::default()
        }
    }

    /// Serves `key` for `name` (lowercase; `*.` for a wildcard). The first entry for a name
    /// wins, as the config lists them.
    pub fn add(&mut self, name: &str, key: Arc<CertifiedKey>) {
        let map = match name.strip_prefix("*.") {
            Some(parent) => self.wildcard.entry(parent.to_owned()),
            None => self.exact.entry(name.to_owned()),
        };
        map.or_insert(key);
    }

    /// The certificate for an SNI name (`None`: the client sent none).
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let named = sni.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.exact.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        named.or(self.default.as_ref()).cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::sign::SigningKey;

    fn key(tag: u8) -> Arc<CertifiedKey> {
        let pair = rcgen::KeyPair::generate().unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(pair.serialize_der()).unwrap();
        let signer: Arc<dyn SigningKey> = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(der)
            .unwrap();
        let cert = rustls_pki_types::CertificateDer::from(vec![tag]);
        Arc::new(CertifiedKey::new(vec![cert], signer))
    }

    fn tag(k: Option<Arc<CertifiedKey>>) -> Option<u8> {
        k.map(|k| k.cert[0].as_ref()[0])
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let mut r = SniResolver::new(Some(key(0)));
        r.add("a.test", key(1));
        r.add("*.b.test", key(2));
        r.add("a.test", key(9));
        assert_eq!(tag(r.lookup(Some("a.test"))), Some(1), "first entry wins");
        assert_eq!(tag(r.lookup(Some("A.Test."))), Some(1), "case and root dot");
        assert_eq!(tag(r.lookup(Some("x.b.test"))), Some(2));
        assert_eq!(tag(r.lookup(Some("y.x.b.test"))), Some(0), "one label only");
        assert_eq!(tag(r.lookup(Some("b.test"))), Some(0));
        assert_eq!(tag(r.lookup(None)), Some(0));
    }

    #[test]
    fn without_a_default_an_unknown_name_gets_nothing() {
        let mut r = SniResolver::new(None);
        r.add("a.test", key(1));
        assert_eq!(tag(r.lookup(Some("other.test"))), None);
        assert_eq!(tag(r.lookup(None)), None);
    }
}
