//! Per-method routing on the listener: what goes upstream and what the proxy answers itself.
//! Pure decisions over the method and path, so they are tested without a server.

use http::Method;

use crate::mcp::ErrorCode;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A JSON-RPC message (or batch) for the upstream.
    Post,
    /// The standalone SSE stream (or a resumption with `Last-Event-ID`).
    Get,
    /// Session termination.
    Delete,
    /// CORS preflight: the upstream's business (it knows which headers it exposes).
    Options,
    /// Answered by the proxy.
    Reject(Rejection),
}

/// A request the proxy refuses before any upstream contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: ErrorCode,
    pub message: &'static str,
    /// `Allow` header for a 405.
    pub allow: Option<&'static str>,
}

/// The methods the MCP endpoint takes.
pub const ALLOW: &str = "GET, POST, DELETE, OPTIONS";

/// Routes a request by method and path. Only the configured endpoint exists on the listener.
pub fn route(method: &Method, path: &str, endpoint: &str) -> Route {
    if path != endpoint {
        return Route::Reject(Rejection {
            status: 404,
            code: ErrorCode::NotFound,
            message: "not an MCP endpoint",
            allow: None,
        });
    }
    match *method {
        Method::POST => Route::Post,
        Method::GET => Route::Get,
        Method::DELETE => Route::Delete,
        Method::OPTIONS => Route::Options,
        _ => Route::Reject(Rejection {
            status: 405,
            code: ErrorCode::NotFound,
            message: "the MCP endpoint takes GET, POST and DELETE",
            allow: Some(ALLOW),
        }),
    }
}

impl Route {
    /// The `mcp_method` label before the body is read.
    pub fn label(self) -> &'static str {
        match self {
            Route::Post => "unknown",
            Route::Get => "GET",
            Route::Delete => "DELETE",
            Route::Options => "OPTIONS",
            Route::Reject(_) => "rejected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_endpoint_and_rejects_the_rest() {
        assert_eq!(route(&Method::POST, "/mcp", "/mcp"), Route::Post);
        assert_eq!(route(&Method::GET, "/mcp", "/mcp"), Route::Get);
        assert_eq!(route(&Method::DELETE, "/mcp", "/mcp"), Route::Delete);
        assert_eq!(route(&Method::OPTIONS, "/mcp", "/mcp"), Route::Options);
        let Route::Reject(r) = route(&Method::PUT, "/mcp", "/mcp") else {
            panic!()
        };
        assert_eq!((r.status, r.allow), (405, Some(ALLOW)));
        let Route::Reject(r) = route(&Method::POST, "/other", "/mcp") else {
            panic!()
        };
        assert_eq!(r.status, 404);
        let Route::Reject(r) = route(&Method::POST, "/mcp/", "/mcp") else {
            panic!()
        };
        assert_eq!(r.status, 404);
    }
}
