//! JSON-RPC error bodies for answers the proxy writes itself.
//!
//! When the client speaks JSON-RPC, every proxy-made error is a JSON-RPC error object, carrying
//! the request's `id` when the request was a parseable single request (`null` otherwise), so an
//! SDK can match it to the call that failed instead of timing out.

use bytes::Bytes;
use serde_json::value::RawValue;

/// Error codes the proxy uses. JSON-RPC reserves -32768..-32000; the server-error range
/// -32000..-32099 carries the proxy's own conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InternalError,
    /// The upstream could not be reached, or failed before it answered (HTTP 502).
    UpstreamUnavailable,
    /// The upstream did not answer within the deadline (HTTP 504).
    UpstreamTimeout,
    /// The request body is larger than `limits.max_body` (HTTP 413).
    RequestTooLarge,
    /// Not the MCP endpoint, or a method the endpoint does not take (HTTP 404/405).
    NotFound,
    /// Unknown, expired or ended session (HTTP 404); the SDKs' "Session not found" code.
    SessionNotFound,
    /// No room for another session (HTTP 503).
    Overloaded,
    /// `Origin` or `Host` not allowed (HTTP 403); -32000 as the SDKs' own DNS-rebinding
    /// protection answers.
    Forbidden,
    /// Over a rate limit (HTTP 429).
    RateLimited,
    /// Missing, invalid or insufficient bearer token (HTTP 401/403).
    Unauthorized,
    /// MCP 2026-07-28: `Mcp-Method`/`Mcp-Name` disagree with the body (HTTP 400).
    HeaderMismatch,
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        match self {
            Self::ParseError => -32700,
            Self::InvalidRequest => -32600,
            Self::MethodNotFound => -32601,
            Self::InternalError => -32603,
            Self::UpstreamUnavailable => -32002,
            Self::UpstreamTimeout => -32003,
            Self::RequestTooLarge => -32004,
            Self::NotFound => -32005,
            Self::SessionNotFound => -32001,
            Self::Overloaded => -32006,
            Self::Forbidden => -32000,
            Self::RateLimited => -32008,
            Self::Unauthorized => -32009,
            Self::HeaderMismatch => -32020,
        }
    }
}

/// `{"jsonrpc":"2.0","id":<id or null>,"error":{"code":..,"message":..}}`; the id is echoed
/// byte for byte.
pub fn error_body(id: Option<&RawValue>, code: ErrorCode, message: &str) -> Bytes {
    let id = id.map_or("null", RawValue::get);
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".to_owned());
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{},"message":{message}}}}}"#,
        code.code()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_the_id_and_escapes_the_message() {
        let id: Box<RawValue> = serde_json::from_str(r#""req-\"1""#).unwrap();
        let body = error_body(Some(&id), ErrorCode::UpstreamUnavailable, "no \"route\"");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "req-\"1");
        assert_eq!(v["error"]["code"], -32002);
        assert_eq!(v["error"]["message"], "no \"route\"");
        let body = error_body(None, ErrorCode::ParseError, "x");
        assert!(body.starts_with(br#"{"jsonrpc":"2.0","id":null,"#));
    }
}
