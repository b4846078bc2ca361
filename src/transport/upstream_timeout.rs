//! The two deadlines the exchange enforces on an upstream (tokio timers in its read loop), as
//! an error that travels through Pingora's error chain so the proxy can tell them apart (504
//! and the right metric label: `proxy::reverse::failure`).

/// Which deadline passed.
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
