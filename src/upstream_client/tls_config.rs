//! The rustls client config for an `https://` upstream: whom to trust (the system's roots, or
//! only `tls.ca_file`, or anyone with `insecure_skip_verify`), and the client certificate for
//! mTLS upstreams. ring is the crypto provider (the one in the tree; no aws-lc).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::TlsSettings;

impl TlsSettings {
    /// Reads the files and builds the config (ALPN left empty: the client sets it). Errors
    /// name the file and the problem.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let provider = crate::tls::provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider.clone())))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let (certified, _) =
                    crate::tls::load_pair(cert, key, &provider).map_err(|e| e.to_string())?;
                Ok(builder.with_client_cert_resolver(Arc::new(ClientCert(certified))))
            }
            (None, None) => Ok(builder.with_no_client_auth()),
            _ => Err("tls.cert_file and tls.key_file go together".into()),
        }
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, String> {
        match &self.ca_file {
            Some(file) => {
                let roots = crate::tls::load_roots(file).map_err(|e| e.to_string())?;
                if roots.is_empty() {
                    return Err(format!("{}: no CA certificate found", file.display()));
                }
                Ok(roots)
            }
            None => system_roots(),
        }
    }
}

/// Records that a server asked for a client certificate (a TLS `CertificateRequest`), then
/// answers as `inner` would. Lets the client tell a refused certificate from a plain reset when
/// the server's alert is lost (see `UpstreamClient::send`).
#[derive(Debug)]
pub(super) struct AskRecorder {
    pub inner: Arc<dyn ResolvesClientCert>,
    pub asked: Arc<std::sync::atomic::AtomicBool>,
}

impl ResolvesClientCert for AskRecorder {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, std::sync::atomic::Ordering::Relaxed);
        self.inner.resolve(root_hint_subjects, sigschemes)
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

/// The system's trusted roots, read once per process.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or(String::new(), |e| format!(" ({e})"));
                return Err(format!(
                    "no system CA certificates found{why}: install them, or set tls.ca_file"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// The name a certificate must be valid for: a DNS name, or an IP address (brackets allowed).
pub(super) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned())
        .map_err(|_| format!("TLS server name {name:?} is not a DNS name or IP address"))
}

/// `insecure_skip_verify`: any certificate chain, any name. Handshake signatures are still
/// checked, so the peer must hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The one client certificate, offered whenever a server asks (whatever CAs it hints at: the
/// server is the judge).
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
