//! Every failure classified once: who is at fault, the HTTP status, the JSON-RPC error code
//! and message the client gets, and the `kind` label for metrics.

use pingora::{Error, ErrorSource, ErrorType};

use crate::mcp::ErrorCode;
use crate::transport::upstream_timeout::UpstreamTimeout;
use crate::upstream_client::UpstreamError;

/// Custom error type for an SSE event over `limits.max_sse_event`.
pub const SSE_EVENT_TOO_LARGE: ErrorType = ErrorType::Custom("sse_event_too_large");
/// Custom error type for an SSE event the interceptors let flow early, whose end then needed
/// the rules (a second top-level `method`): the stream ends before the event does.
pub const SSE_EVENT_REFUSED: ErrorType = ErrorType::Custom("sse_event_refused");

/// Custom error type for an upstream that answered `101 Switching Protocols`: MCP has no
/// upgrade, and a tunnel would carry the client past every check.
pub const UPSTREAM_UPGRADE: ErrorType = ErrorType::Custom("upstream_upgrade");

/// Custom error type for an upstream response that carries the upstream session id of another
/// live session (or an `initialize` answer that would hand one to another client): refused,
/// so no client is ever given, or put in, a session that is not its own.
pub const SESSION_CONFLICT: ErrorType = ErrorType::Custom("session_conflict");

/// Custom error type for an `initialize` answer whose session id is too long to seal
/// (`sessions.keys`): the client could not be given a working id, so the answer is refused.
pub const SESSION_UNSEALABLE: ErrorType = ErrorType::Custom("session_unsealable");

/// The error that ends an SSE stream the framer or filter could not go on with.
pub fn sse_error(e: crate::transport::sse::ScanError) -> Box<pingora::Error> {
    let etype = match e {
        crate::transport::sse::ScanError::Refused => SSE_EVENT_REFUSED,
        _ => SSE_EVENT_TOO_LARGE,
    };
    pingora::Error::because(etype, "framing SSE", e)
}

/// A classified failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Status for the client; 0 when nothing can be written (the client is gone).
    pub status: u16,
    pub code: ErrorCode,
    pub message: &'static str,
    /// `kind` label of `shadowcat_upstream_errors_total`, or of the log line.
    pub kind: &'static str,
    pub upstream_fault: bool,
}

impl Failure {
    const fn upstream(
        status: u16,
        code: ErrorCode,
        message: &'static str,
        kind: &'static str,
    ) -> Self {
        Self {
            status,
            code,
            message,
            kind,
            upstream_fault: true,
        }
    }

    const fn downstream(
        status: u16,
        code: ErrorCode,
        message: &'static str,
        kind: &'static str,
    ) -> Self {
        Self {
            status,
            code,
            message,
            kind,
            upstream_fault: false,
        }
    }
}

/// The HTTP client's error as the exchange reports it: the `ErrorType` Pingora's own
/// connectors would give, the client's error kept as the cause (for `classify`).
pub fn upstream_error(e: UpstreamError) -> Box<Error> {
    let etype = match e.kind() {
        "connect_refused" => ErrorType::ConnectRefused,
        "connect_timeout" => ErrorType::ConnectTimedout,
        "connect_error" => ErrorType::ConnectError,
        k if k.starts_with("tls_") => ErrorType::TLSHandshakeFailure,
        "protocol" => ErrorType::InvalidHTTPHeader,
        _ => ErrorType::ReadError,
    };
    Error::because(etype, "upstream", e).into_up()
}

/// The HTTP client's error in `e`'s cause, if that is what failed.
fn client_error(e: &Error) -> Option<&UpstreamError> {
    e.cause.as_deref()?.downcast_ref::<UpstreamError>()
}

/// A timeout of the exchange's (`timeouts.request`, `timeouts.idle_stream`) in `e`'s causes.
pub fn timeout_of(e: &Error) -> Option<UpstreamTimeout> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e.cause.as_deref().map(|c| c as _);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<UpstreamTimeout>() {
            return Some(*t);
        }
        // A Pingora error wrapping another arrives boxed (`Box<Error>` is the cause type).
        if let Some(pe) = c.downcast_ref::<Box<Error>>() {
            return timeout_of(pe);
        }
        cause = c.source();
    }
    None
}

/// What the client is told when the upstream's TLS handshake failed, by `UpstreamError::kind`.
fn tls_message(kind: &str) -> &'static str {
    match kind {
        "tls_unknown_ca" => "upstream TLS: certificate not trusted (unknown issuer)",
        "tls_expired" => "upstream TLS: certificate expired or not yet valid",
        "tls_name_mismatch" => "upstream TLS: certificate not valid for the upstream's name",
        "tls_client_cert" => "upstream TLS: client certificate required or refused",
        _ => "upstream TLS handshake failed",
    }
}

/// The proxy itself ran out of descriptors, socket buffers or memory (`EMFILE`, `ENFILE`,
/// `ENOBUFS`, `ENOMEM`): its own limit, not the upstream's fault.
pub fn out_of_resources(e: &Error) -> bool {
    use rustix::io::Errno;
    if let Some(client) = client_error(e) {
        return client.is_out_of_resources();
    }
    let Some(os) = e
        .root_cause()
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
    else {
        return false;
    };
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|errno| errno.raw_os_error() == os)
}

/// Classifies an error from any phase.
pub fn classify(e: &Error) -> Failure {
    if out_of_resources(e) {
        return Failure {
            status: 503,
            code: ErrorCode::Overloaded,
            message: "proxy at its open-files or memory limit",
            kind: "proxy_resources",
            upstream_fault: false,
        };
    }
    match timeout_of(e) {
        Some(UpstreamTimeout::ResponseHeader) => {
            return Failure::upstream(
                504,
                ErrorCode::UpstreamTimeout,
                "upstream did not answer within timeouts.request",
                "response_timeout",
            )
        }
        Some(UpstreamTimeout::IdleStream) => {
            return Failure::upstream(
                504,
                ErrorCode::UpstreamTimeout,
                "upstream stream was silent for timeouts.idle_stream",
                "idle_stream_timeout",
            )
        }
        None => {}
    }
    const UNREACHABLE: &str = "upstream unreachable";
    if let Some(client) = client_error(e) {
        let kind = client.kind();
        if client.is_tls() {
            return Failure::upstream(502, ErrorCode::UpstreamUnavailable, tls_message(kind), kind);
        }
        if !client.is_connect() {
            return Failure::upstream(
                502,
                ErrorCode::UpstreamUnavailable,
                "upstream failed before answering",
                kind,
            );
        }
        // Connect failures: by their ErrorType, below.
    }
    match e.etype() {
        ErrorType::ConnectRefused => Failure::upstream(
            502,
            ErrorCode::UpstreamUnavailable,
            UNREACHABLE,
            "connect_refused",
        ),
        ErrorType::ConnectTimedout => Failure::upstream(
            502,
            ErrorCode::UpstreamUnavailable,
            UNREACHABLE,
            "connect_timeout",
        ),
        ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::BindError
        | ErrorType::SocketError => Failure::upstream(
            502,
            ErrorCode::UpstreamUnavailable,
            UNREACHABLE,
            "connect_error",
        ),
        ErrorType::HTTPStatus(413) => Failure::downstream(
            413,
            ErrorCode::RequestTooLarge,
            "request body exceeds limits.max_body",
            "request_too_large",
        ),
        ErrorType::HTTPStatus(code) => {
            Failure::downstream(*code, ErrorCode::InternalError, "request failed", "status")
        }
        t if *t == SSE_EVENT_TOO_LARGE => Failure::upstream(
            502,
            ErrorCode::UpstreamUnavailable,
            "upstream SSE event exceeds limits.max_sse_event",
            "sse_event_too_large",
        ),
        t if *t == UPSTREAM_UPGRADE => Failure::upstream(
            502,
            ErrorCode::UpstreamUnavailable,
            "upstream answered 101 Switching Protocols; MCP has no upgrade",
            "upgrade",
        ),
        t if *t == SESSION_CONFLICT => Failure::upstream(
            502,
            ErrorCode::UpstreamUnavailable,
            "Bad Gateway: the upstream answered with another client's session",
            "session_conflict",
        ),
        t if *t == SESSION_UNSEALABLE => Failure::upstream(
            502,
            ErrorCode::UpstreamUnavailable,
            "Bad Gateway: the upstream's session id is too long to seal (sessions.keys)",
            "session_unsealable",
        ),
        t if *t == SSE_EVENT_REFUSED => Failure::upstream(
            502,
            ErrorCode::UpstreamUnavailable,
            "upstream SSE event with an ambiguous method",
            "sse_event_refused",
        ),
        etype => match e.esource() {
            ErrorSource::Upstream => {
                let kind = match etype {
                    ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                        "reset"
                    }
                    ErrorType::ReadTimedout | ErrorType::WriteTimedout => "timeout",
                    ErrorType::InvalidHTTPHeader
                    | ErrorType::H1Error
                    | ErrorType::H2Error
                    | ErrorType::InvalidH2 => "protocol",
                    _ => "other",
                };
                Failure::upstream(
                    502,
                    ErrorCode::UpstreamUnavailable,
                    "upstream failed before answering",
                    kind,
                )
            }
            ErrorSource::Downstream => match etype {
                ErrorType::ReadTimedout => Failure::downstream(
                    408,
                    ErrorCode::InvalidRequest,
                    "request body too slow (limits.body_read_timeout, limits.body_total_timeout)",
                    "body_read_timeout",
                ),
                ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::ConnectionClosed
                | ErrorType::WriteTimedout => Failure::downstream(
                    0,
                    ErrorCode::InternalError,
                    "client went away",
                    "downstream_closed",
                ),
                _ => Failure::downstream(
                    400,
                    ErrorCode::InvalidRequest,
                    "malformed HTTP request",
                    "bad_request",
                ),
            },
            ErrorSource::Internal | ErrorSource::Unset => Failure {
                status: 500,
                code: ErrorCode::InternalError,
                message: "internal proxy error",
                kind: "internal",
                upstream_fault: false,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_fault() {
        let refused = Error::explain(ErrorType::ConnectRefused, "x");
        assert_eq!(classify(&refused).status, 502);
        assert_eq!(classify(&refused).kind, "connect_refused");
        let big = Error::explain(ErrorType::HTTPStatus(413), "x");
        assert_eq!(classify(&big).code, ErrorCode::RequestTooLarge);
        let mut gone = Error::explain(ErrorType::ConnectionClosed, "x");
        gone.esource = ErrorSource::Downstream;
        assert_eq!(classify(&gone).status, 0);
        let mut timeout = Error::because(
            ErrorType::ReadTimedout,
            "reading",
            UpstreamTimeout::ResponseHeader,
        );
        timeout.esource = ErrorSource::Upstream;
        assert_eq!(classify(&timeout).status, 504);
        let sse = Error::explain(SSE_EVENT_TOO_LARGE, "x");
        assert_eq!(classify(&sse).kind, "sse_event_too_large");
        let conflict = classify(&Error::explain(SESSION_CONFLICT, "x"));
        assert_eq!((conflict.status, conflict.kind), (502, "session_conflict"));
        assert!(conflict.upstream_fault);
    }

    /// Regression (load test, 10k streams): a connect that failed with EMFILE was the
    /// upstream's fault, so the upstream was marked down and every request failed for 10 s.
    #[test]
    fn running_out_of_descriptors_is_the_proxys_limit() {
        let emfile = std::io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
        let e = Error::because(ErrorType::ConnectError, "connecting to 127.0.0.1:1", emfile);
        assert!(out_of_resources(&e));
        let f = classify(&e);
        assert_eq!((f.status, f.upstream_fault), (503, false));
        assert_eq!(f.code, ErrorCode::Overloaded);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = Error::because(ErrorType::ConnectRefused, "connecting", refused);
        assert!(!out_of_resources(&e));
        assert!(classify(&e).upstream_fault);
    }
}
