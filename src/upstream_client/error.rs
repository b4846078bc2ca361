//! What went wrong with an upstream exchange: a metric label ([`UpstreamError::kind`]), whether
//! another upstream may be tried ([`UpstreamError::is_connect`]), and a message for clients.
//!
//! The kind is read from the `source()` chain of hyper-util's error once, when it is made. TLS
//! errors sit deep in it: `legacy::Error` → `io::Error` (hyper-rustls) → `io::Error`
//! (tokio-rustls) → `rustls::Error`, and `io::Error::source()` skips the error it wraps, so the
//! walk also looks through `io::Error::get_ref`.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use rustls::{AlertDescription, CertificateError};

use super::connector::ConnectTimeout;

/// An upstream request that produced no response head.
#[derive(Debug)]
pub struct UpstreamError {
    kind: Kind,
    /// The certificate name checked, for the name-mismatch message.
    server_name: String,
    source: hyper_util::client::legacy::Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ConnectRefused,
    ConnectTimeout,
    ConnectError,
    TlsUnknownCa,
    TlsExpired,
    TlsNameMismatch,
    TlsClientCert,
    TlsHandshake,
    Protocol,
    Reset,
    Other,
}

impl UpstreamError {
    pub(super) fn new(source: hyper_util::client::legacy::Error, server_name: &str) -> Self {
        Self {
            kind: classify(&source),
            server_name: server_name.to_owned(),
            source,
        }
    }

    /// A connection dropped before any answer by a server that had asked for a client
    /// certificate: the certificate was refused (or none was sent), whatever the alert said or
    /// whether it arrived.
    pub(super) fn refused_client_cert(mut self) -> Self {
        if self.kind == Kind::Reset {
            self.kind = Kind::TlsClientCert;
        }
        self
    }

    /// The metric label: `connect_refused`, `connect_timeout`, `connect_error`,
    /// `tls_unknown_ca`, `tls_expired`, `tls_name_mismatch`, `tls_client_cert`,
    /// `tls_handshake`, `protocol`, `reset` or `other`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::ConnectRefused => "connect_refused",
            Kind::ConnectTimeout => "connect_timeout",
            Kind::ConnectError => "connect_error",
            Kind::TlsUnknownCa => "tls_unknown_ca",
            Kind::TlsExpired => "tls_expired",
            Kind::TlsNameMismatch => "tls_name_mismatch",
            Kind::TlsClientCert => "tls_client_cert",
            Kind::TlsHandshake => "tls_handshake",
            Kind::Protocol => "protocol",
            Kind::Reset => "reset",
            Kind::Other => "other",
        }
    }

    /// A TLS failure (any `tls_*` kind).
    pub fn is_tls(&self) -> bool {
        matches!(
            self.kind,
            Kind::TlsUnknownCa
                | Kind::TlsExpired
                | Kind::TlsNameMismatch
                | Kind::TlsClientCert
                | Kind::TlsHandshake
        )
    }

    /// The upstream never got the request: connect and TLS failures. Safe to try another
    /// upstream (if the caller still has the body).
    ///
    /// `tls_client_cert` counts, though with TLS 1.3 it may surface only after the request was
    /// written: the client's handshake ends before the server has judged our certificate, and
    /// the server's alert arrives on the first read. The server's TLS layer dropped the
    /// connection, so no HTTP request was processed there.
    pub fn is_connect(&self) -> bool {
        self.is_tls()
            || matches!(
                self.kind,
                Kind::ConnectRefused | Kind::ConnectTimeout | Kind::ConnectError
            )
            || self.source.is_connect()
    }

    /// The proxy itself is out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM):
    /// not the upstream's fault.
    pub fn is_out_of_resources(&self) -> bool {
        use rustix::io::Errno;
        chain(&self.source)
            .filter_map(|e| e.downcast_ref::<io::Error>())
            .filter_map(Errno::from_io_error)
            .any(|n| {
                matches!(
                    n,
                    Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM
                )
            })
    }

    /// One line for a client (a JSON-RPC error message), without addresses.
    pub fn message(&self) -> String {
        let tls = || chain(&self.source).find_map(|e| e.downcast_ref::<rustls::Error>());
        match self.kind {
            Kind::ConnectRefused => "upstream refused the connection".into(),
            Kind::ConnectTimeout => "upstream connect timed out".into(),
            Kind::ConnectError => "cannot connect to upstream".into(),
            Kind::TlsUnknownCa => "upstream TLS: certificate not trusted".into(),
            Kind::TlsExpired => "upstream TLS: certificate expired or not yet valid".into(),
            Kind::TlsNameMismatch => format!(
                "upstream TLS: certificate not valid for name {:?}",
                self.server_name
            ),
            Kind::TlsClientCert => "upstream TLS: client certificate refused or missing".into(),
            Kind::TlsHandshake => match tls() {
                Some(e) => format!("upstream TLS: {e}"),
                None => "upstream TLS handshake failed".into(),
            },
            Kind::Protocol => "upstream sent an invalid HTTP response".into(),
            Kind::Reset => "upstream closed the connection".into(),
            Kind::Other => "upstream request failed".into(),
        }
    }
}

impl fmt::Display for UpstreamError {
    /// The kind and the whole cause chain, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream {}", self.kind())?;
        let mut last = String::new();
        for e in chain(&self.source) {
            let text = e.to_string();
            // Wrappers often repeat their inner error's text.
            if text != last && !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
        }
        Ok(())
    }
}

impl StdError for UpstreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// `e` and its causes, looking inside `io::Error`s and `h2::Error`s (whose `source()` skips
/// the error they wrap: a TLS alert read on an h2 connection sits in the `h2::Error`'s
/// `io::Error`).
fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let current = next?;
        let inner: Option<&(dyn StdError + 'static)> =
            if let Some(io) = current.downcast_ref::<io::Error>() {
                io.get_ref().map(|e| e as _)
            } else if let Some(h2) = current.downcast_ref::<h2::Error>() {
                h2.get_io().map(|e| e as _)
            } else {
                None
            };
        next = inner.or_else(|| current.source());
        Some(current)
    })
}

fn classify(e: &hyper_util::client::legacy::Error) -> Kind {
    if let Some(tls) = chain(e).find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return classify_tls(tls);
    }
    if let Some(kind) = chain(e).find_map(h2_alert) {
        return kind;
    }
    let io_kind = |k: io::ErrorKind| {
        chain(e)
            .filter_map(|e| e.downcast_ref::<io::Error>())
            .any(|io| io.kind() == k)
    };
    if chain(e).any(|e| e.is::<ConnectTimeout>())
        || (e.is_connect() && io_kind(io::ErrorKind::TimedOut))
    {
        return Kind::ConnectTimeout;
    }
    if io_kind(io::ErrorKind::ConnectionRefused) {
        return Kind::ConnectRefused;
    }
    if e.is_connect() {
        return Kind::ConnectError;
    }
    if let Some(h) = chain(e).find_map(|e| e.downcast_ref::<hyper::Error>()) {
        if h.is_parse() {
            return Kind::Protocol;
        }
        // Closed before a whole response head (a FIN where `reset` would be an RST): the same
        // crash or close, so the same label.
        if h.is_incomplete_message() || h.is_canceled() {
            return Kind::Reset;
        }
    }
    if let Some(h2) = chain(e).find_map(|e| e.downcast_ref::<h2::Error>()) {
        if h2.is_reset() || h2.is_go_away() || h2.is_remote() {
            return Kind::Reset;
        }
        return Kind::Protocol;
    }
    if io_kind(io::ErrorKind::ConnectionReset)
        || io_kind(io::ErrorKind::BrokenPipe)
        || io_kind(io::ErrorKind::ConnectionAborted)
        || io_kind(io::ErrorKind::UnexpectedEof)
    {
        return Kind::Reset;
    }
    Kind::Other
}

/// A TLS alert read on an h2 connection. h2 keeps I/O errors as kind and text only (so they
/// can be cloned to every stream), so the `rustls::Error` is gone and only its text is left:
/// `received fatal alert: CertificateRequired`. A test pins this text, so a rustls upgrade
/// that rewords it fails there rather than turning `tls_client_cert` into `other`.
fn h2_alert(e: &(dyn StdError + 'static)) -> Option<Kind> {
    let io = e.downcast_ref::<io::Error>()?;
    if io.kind() != io::ErrorKind::InvalidData {
        return None;
    }
    let text = io.get_ref()?.to_string();
    let alert = text.strip_prefix("received fatal alert: ")?;
    Some(match alert {
        "CertificateRequired"
        | "BadCertificate"
        | "UnsupportedCertificate"
        | "CertificateRevoked"
        | "CertificateExpired"
        | "CertificateUnknown"
        | "UnknownCA"
        | "AccessDenied" => Kind::TlsClientCert,
        _ => Kind::TlsHandshake,
    })
}

fn classify_tls(e: &rustls::Error) -> Kind {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => Kind::TlsExpired,
            C::NotValidForName | C::NotValidForNameContext { .. } => Kind::TlsNameMismatch,
            C::UnknownIssuer | C::BadSignature | C::BadEncoding => Kind::TlsUnknownCa,
            _ => Kind::TlsHandshake,
        },
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied,
        ) => Kind::TlsClientCert,
        _ => Kind::TlsHandshake,
    }
}
