//! TLS at the edge: the accept layer's own handshake, its failures, certificate reloads.
//!
//! Pingora's TLS listener would need its `rustls` feature and has no hook to swap
//! certificates, so the proxy owns the layer above it, as it does for the head deadline:
//! Pingora's listener hands over plain TCP, [`TlsEdge::handshake`] runs the handshake with
//! tokio-rustls (bounded by `handshake_timeout`), and [`TlsConn`] tells Pingora what was
//! negotiated (ALPN `h2` → HTTP/2).
//!
//! The ClientHello is read first (`LazyConfigAcceptor`): the handshake then takes the
//! certificate snapshot in force at that moment and keeps it, so a reload never changes a
//! handshake in flight. Every failure closes the connection (after rustls' alert, when the
//! peer spoke TLS), is counted in `shadowcat_tls_handshake_failures_total{reason}`, and is
//! logged at most once per reason per [`LOG_EVERY`], with how many were not logged.

mod stream;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pingora::protocols::Stream;
use prometheus::{IntCounterVec, IntGaugeVec};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;

pub use stream::TlsConn;

use crate::config::TlsConfig;
use crate::proxy::reverse::Metrics;
use crate::tls::{LoadError, Snapshot, TlsState};

/// At most one log line per failure reason this often: a scanner or a misconfigured client
/// must not flood the log (the counter still counts every one).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// A fatal `unrecognized_name` alert (112) in a plaintext TLS record: the handshake has not
/// reached encryption when the ClientHello names an unknown server.
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112];

/// Why a handshake failed: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Not complete within `handshake_timeout` (a silent or slow client).
    Timeout,
    /// The first bytes were not a TLS ClientHello (plaintext HTTP, garbage).
    NotTls,
    /// No certificate for the SNI name, and no default pair.
    UnknownSni,
    /// A client certificate missing (`required`) or not from `client_ca_file`.
    ClientCert,
    /// The client refused the handshake with an alert (e.g. it does not trust our
    /// certificate).
    ClientAlert,
    /// Any other TLS error (no common version or cipher suite, a bad message).
    Protocol,
    /// The client closed or reset the connection mid-handshake.
    Closed,
}

/// Every `reason` of `shadowcat_tls_handshake_failures_total`, in [`Failure`] order.
pub const FAILURE_REASONS: [&str; 7] = [
    "timeout",
    "not_tls",
    "unknown_sni",
    "client_cert",
    "client_alert",
    "protocol",
    "closed",
];

impl Failure {
    pub fn label(self) -> &'static str {
        FAILURE_REASONS[self as usize]
    }

    /// Classifies an error from reading the ClientHello (`hello`) or from the rest of the
    /// handshake.
    fn of(e: &io::Error, hello: bool) -> Self {
        use rustls::Error as E;
        match e.get_ref().and_then(|i| i.downcast_ref::<E>()) {
            Some(E::InvalidMessage(_) | E::InappropriateMessage { .. }) if hello => Failure::NotTls,
            Some(E::InvalidCertificate(_) | E::NoCertificatesPresented) => Failure::ClientCert,
            Some(E::AlertReceived(_)) => Failure::ClientAlert,
            Some(_) => Failure::Protocol,
            None => match e.kind() {
                io::ErrorKind::InvalidData if hello => Failure::NotTls,
                io::ErrorKind::InvalidData => Failure::Protocol,
                _ => Failure::Closed,
            },
        }
    }
}

/// A TLS listener: its certificates, and the handshake that uses them.
#[derive(Debug)]
pub struct TlsEdge {
    /// The listener's address (for logs).
    pub addr: SocketAddr,
    state: TlsState,
    failures: IntCounterVec,
    reloads: IntCounterVec,
    expiry: IntGaugeVec,
    log: RateLog,
}

// === impl TlsEdge ===

impl TlsEdge {
    /// Loads the certificates (the config check read them already; a file may have changed).
    pub fn new(
        addr: SocketAddr,
        settings: TlsConfig,
        metrics: &Metrics,
    ) -> Result<Self, LoadError> {
        let edge = Self {
            addr,
            state: TlsState::new(settings)?,
            failures: metrics.tls_handshake_failures.clone(),
            reloads: metrics.tls_reloads.clone(),
            expiry: metrics.tls_certificate_expiry.clone(),
            log: RateLog::new(LOG_EVERY),
        };
        edge.record_expiry(&edge.state.current());
        // Every series from the start, so a rate() sees the first failure.
        for reason in FAILURE_REASONS {
            edge.failures.with_label_values(&[reason]);
        }
        for result in ["ok", "error"] {
            edge.reloads.with_label_values(&[result]);
        }
        Ok(edge)
    }

    /// The handshake, within `handshake_timeout`; `None` when it failed (counted, logged).
    pub async fn handshake(&self, stream: Stream) -> Option<TlsConn> {
        let limit = self.state.settings().handshake_timeout;
        let failure = match tokio::time::timeout(limit, self.accept(stream)).await {
            Ok(Ok(conn)) => return Some(conn),
            Ok(Err(failure)) => failure,
            Err(_) => (Failure::Timeout, format!("not complete within {limit:?}")),
        };
        self.failed(failure.0, &failure.1);
        None
    }

    async fn accept(&self, stream: Stream) -> Result<TlsConn, (Failure, String)> {
        let acceptor = rustls::server::Acceptor::default();
        let start = LazyConfigAcceptor::new(acceptor, stream)
            .await
            .map_err(|e| (Failure::of(&e, true), e.to_string()))?;
        let snapshot = self.state.current();
        let sni = start.client_hello().server_name().map(str::to_owned);
        if snapshot.resolver.lookup(sni.as_deref()).is_none() {
            // rustls would answer `access_denied`; RFC 6066 (section 3) names
            // `unrecognized_name` for a server name it has no certificate for.
            let mut io = start.io;
            let _ = io.write_all(&UNRECOGNIZED_NAME).await;
            let _ = io.shutdown().await;
            let sni = sni.unwrap_or_default();
            return Err((
                Failure::UnknownSni,
                format!("no certificate for SNI {sni:?}"),
            ));
        }
        match start.into_stream(snapshot.config.clone()).await {
            Ok(tls) => Ok(TlsConn::new(tls)),
            Err(e) => Err((Failure::of(&e, false), e.to_string())),
        }
    }

    fn failed(&self, failure: Failure, detail: &str) {
        self.failures.with_label_values(&[failure.label()]).inc();
        // A connection closed before or during the handshake is what TCP health checks and
        // port probes do: counted, and logged only at debug.
        if failure == Failure::Closed {
            tracing::debug!(listener = %self.addr, detail, "TLS handshake: client closed");
            return;
        }
        if let Some(unlogged) = self.log.allow(failure as usize) {
            tracing::warn!(
                listener = %self.addr,
                reason = failure.label(),
                detail,
                not_logged_since = unlogged,
                "TLS handshake failed; connection closed"
            );
        }
    }

    /// Whether a certificate file changed since it was last read.
    pub fn changed(&self) -> bool {
        self.state.changed()
    }

    /// Reads the files again; new handshakes get the new pairs. A bad file keeps the old
    /// ones, logged in one line naming it.
    pub fn reload(&self, why: &'static str) {
        match self.state.reload() {
            Ok(snapshot) => {
                self.reloads.with_label_values(&["ok"]).inc();
                self.record_expiry(&snapshot);
                tracing::info!(listener = %self.addr, why, "TLS certificates reloaded");
            }
            Err(e) => {
                self.reloads.with_label_values(&["error"]).inc();
                tracing::error!(
                    listener = %self.addr,
                    file = %e.file.display(),
                    error = %e.message,
                    why,
                    "TLS certificate reload failed; the previous certificates stay in force"
                );
            }
        }
    }

    fn record_expiry(&self, snapshot: &Snapshot) {
        for (name, not_after) in &snapshot.expiries {
            self.expiry.with_label_values(&[name]).set(*not_after);
        }
    }
}

/// One log line per reason per interval; counts the lines it held back.
#[derive(Debug)]
struct RateLog {
    base: Instant,
    every: Duration,
    /// Per reason: milliseconds after `base` of the last line, plus one (0: never).
    last: [AtomicU64; FAILURE_REASONS.len()],
    held: [AtomicU64; FAILURE_REASONS.len()],
}

impl RateLog {
    fn new(every: Duration) -> Self {
        Self {
            base: Instant::now(),
            every,
            last: Default::default(),
            held: Default::default(),
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written now.
    fn allow(&self, reason: usize) -> Option<u64> {
        let now = self.base.elapsed().as_millis() as u64 + 1;
        let last = self.last[reason].load(Ordering::Relaxed);
        let every = self.every.as_millis() as u64;
        if last != 0 && now < last + every
            || self.last[reason]
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.held[reason].fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held[reason].swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_reason_per_interval() {
        let log = RateLog::new(Duration::from_secs(10));
        assert_eq!(log.allow(0), Some(0));
        assert_eq!(log.allow(0), None);
        assert_eq!(log.allow(0), None);
        assert_eq!(log.allow(1), Some(0), "reasons are independent");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(log.allow(0), Some(2), "says how many were held back");
        assert_eq!(log.allow(0), None);
    }

    #[test]
    fn errors_are_classified_by_stage_and_cause() {
        let tls = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let garbage = tls(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(Failure::of(&garbage, true), Failure::NotTls);
        assert_eq!(Failure::of(&garbage, false), Failure::Protocol);
        let no_cert = tls(rustls::Error::NoCertificatesPresented);
        assert_eq!(Failure::of(&no_cert, false), Failure::ClientCert);
        let bad = tls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(Failure::of(&bad, false), Failure::ClientCert);
        let alert = tls(rustls::Error::AlertReceived(
            rustls::AlertDescription::UnknownCA,
        ));
        assert_eq!(Failure::of(&alert, false), Failure::ClientAlert);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(Failure::of(&eof, true), Failure::Closed);
        for (i, f) in [
            Failure::Timeout,
            Failure::NotTls,
            Failure::UnknownSni,
            Failure::ClientCert,
            Failure::ClientAlert,
            Failure::Protocol,
            Failure::Closed,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(f.label(), FAILURE_REASONS[i]);
        }
    }
}
