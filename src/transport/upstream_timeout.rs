//! The two deadlines the upstream socket enforces, as an error that travels through Pingora's
//! error chain so the proxy can tell them apart (504 and the right metric label).

use std::io;

use pingora::Error;

/// Why the socket failed a read; travels as the inner error of an `io::Error` (kind
/// `TimedOut`) through Pingora's error chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTimeout {
    ResponseHeader,
    IdleStream,
}

impl std::fmt::Display for UpstreamTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamTimeout::ResponseHeader => "upstream response header deadline passed",
            UpstreamTimeout::IdleStream => "upstream SSE stream idle limit passed",
        })
    }
}

impl std::error::Error for UpstreamTimeout {}

impl UpstreamTimeout {
    /// Finds this crate's timeout in a Pingora error's cause chain.
    pub fn from_pingora_error(e: &Error) -> Option<UpstreamTimeout> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> =
            e.cause.as_deref().map(|c| c as _);
        while let Some(c) = cause {
            if let Some(t) = c.downcast_ref::<UpstreamTimeout>() {
                return Some(*t);
            }
            if let Some(io) = c.downcast_ref::<io::Error>() {
                if let Some(t) = io
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<UpstreamTimeout>())
                {
                    return Some(*t);
                }
            }
            // A Pingora error wrapping another arrives boxed (`Box<Error>` is the cause type).
            if let Some(pe) = c.downcast_ref::<Box<Error>>() {
                return Self::from_pingora_error(pe);
            }
            if let Some(pe) = c.downcast_ref::<Error>() {
                return Self::from_pingora_error(pe);
            }
            cause = c.source();
        }
        None
    }

    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, self)
    }
}
