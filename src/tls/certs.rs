//! PEM files → rustls keys, and the two facts the proxy reads from a certificate: when it
//! expires (a metric) and whose it is (a client certificate's principal).
//!
//! Files are read whole into memory first and parsed from there, so what is checked is what
//! is served, even when the file is being rewritten meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_cert::der::Decode;

/// A certificate or key file that cannot be served, named, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct LoadError {
    pub file: PathBuf,
    pub message: String,
}

impl LoadError {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            message: message.into(),
        }
    }
}

fn read(file: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(file).map_err(|e| LoadError::new(file, format!("cannot read: {e}")))
}

/// A chain and its key, checked to belong together. Returns the key and the leaf's expiry.
pub fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, i64), LoadError> {
    let chain = CertificateDer::pem_slice_iter(&read(cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::new(cert_file, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(LoadError::new(cert_file, "no CERTIFICATE block found"));
    };
    let not_after = not_after(leaf).map_err(|m| LoadError::new(cert_file, m))?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_file)?).map_err(|e| {
        LoadError::new(
            key_file,
            format!("no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| LoadError::new(key_file, format!("unsupported key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    // A key from another pair would fail every handshake: refuse it here instead.
    certified.keys_match().map_err(|e| {
        LoadError::new(
            key_file,
            format!("does not match {}: {e}", cert_file.display()),
        )
    })?;
    Ok((Arc::new(certified), not_after))
}

/// The CA bundle client certificates must chain to.
pub fn load_roots(file: &Path) -> Result<Arc<RootCertStore>, LoadError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(file)?) {
        let cert = cert.map_err(|e| LoadError::new(file, format!("not a PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| LoadError::new(file, format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(LoadError::new(file, "no CERTIFICATE block found"));
    }
    Ok(Arc::new(roots))
}

/// The leaf's `notAfter`, in seconds since the Unix epoch.
pub fn not_after(der: &CertificateDer<'_>) -> Result<i64, String> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let secs = cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs();
    Ok(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Whose certificate this is: its subject (RFC 4514 text), or when the subject is empty its
/// first subject alternative name (DNS name, URI or email address).
pub fn identity(der: &CertificateDer<'_>) -> Option<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    if !tbs.subject.0.is_empty() {
        return Some(tbs.subject.to_string());
    }
    let san = tbs
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)?;
    let names = SubjectAltName::from_der(san.extn_value.as_bytes()).ok()?;
    names.0.iter().find_map(|n| match n {
        GeneralName::DnsName(s) => Some(format!("DNS:{s}")),
        GeneralName::UniformResourceIdentifier(s) => Some(format!("URI:{s}")),
        GeneralName::Rfc822Name(s) => Some(format!("email:{s}")),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shadowcat-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_pair_loads_and_its_expiry_is_read() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["a.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        let c = temp("pair.crt", &cert.pem());
        let k = temp("pair.key", &key.serialize_pem());
        let (_, expiry) = load_pair(&c, &k, &provider()).unwrap();
        assert_eq!(expiry, 1_925_078_400, "2031-01-02T00:00:00Z");
    }

    #[test]
    fn a_key_of_another_pair_or_garbage_is_refused_naming_the_file() {
        let key = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let c = temp("mismatch.crt", &cert.pem());
        let k = temp("mismatch.key", &other.serialize_pem());
        let e = load_pair(&c, &k, &provider()).unwrap_err();
        assert_eq!(e.file, k);
        assert!(e.message.contains("does not match"), "{e}");
        let junk = temp("junk.crt", "hello");
        let e = load_pair(&junk, &k, &provider()).unwrap_err();
        assert_eq!(e.file, junk);
        let missing = e.file.with_file_name("missing.crt");
        let e = load_pair(&missing, &k, &provider()).unwrap_err();
        assert!(e.to_string().starts_with(&missing.display().to_string()));
    }

    #[test]
    fn identity_is_the_subject_or_else_the_first_san() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        let cert = params.self_signed(&key).unwrap();
        let who = identity(cert.der()).unwrap();
        assert!(who.contains("CN=alice") && who.contains("O=Acme"), "{who}");

        let mut params = CertificateParams::new(vec!["bob.test".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .subject_alt_names
            .push(SanType::URI("spiffe://acme/bob".try_into().unwrap()));
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(identity(cert.der()).unwrap(), "DNS:bob.test");
    }
}
