//! The request judge's verdict when policy is on: a body the proxy cannot read exactly as an
//! upstream will is refused, never forwarded undecided.
//!
//! Policy (interceptor rules, `hide_tools`, required scopes, the MCP 2026-07-28 header checks)
//! decides on what [`super::peek`] reads. If the peek fails, there is nothing to decide on,
//! and forwarding would let the upstream (whose parser may be more lenient: a byte-order mark,
//! invalid UTF-8, lone surrogates, `1e400`, deep nesting, `NaN`, UTF-16) run a message no rule
//! saw. So with policy on:
//!
//! * a body that is not strict JSON is refused: 400 with JSON-RPC error -32700;
//! * a body that is JSON but not a JSON-RPC message or batch, or with a member that is neither
//!   a request, a notification nor a response, is refused: 400 with -32600;
//! * a `Content-Encoding` the proxy does not decode (anything but `identity`) is refused: 415.
//!
//! Without policy nothing here runs, and bodies pass as they always did.

use super::peek::{MessageKind, Peek, PeekError};
use super::ErrorCode;

/// Why a body is refused, as the client will read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: ErrorCode,
    pub message: &'static str,
}

/// The verdict on a peeked body: `None` when policy can judge it.
pub fn refusal(peeked: &Result<Peek<'_>, PeekError>) -> Option<Refusal> {
    let parse = |message| Refusal {
        status: 400,
        code: ErrorCode::ParseError,
        message,
    };
    let invalid = |message| Refusal {
        status: 400,
        code: ErrorCode::InvalidRequest,
        message,
    };
    match peeked {
        Ok(p) if p.messages().iter().any(|m| m.kind == MessageKind::Invalid) => Some(invalid(
            "Invalid Request: a message is neither a JSON-RPC request, notification nor response",
        )),
        Ok(_) => None,
        Err(PeekError::Empty) => Some(parse("Parse error: empty body")),
        Err(PeekError::TooDeep) => Some(parse("Parse error: JSON nested deeper than 128 levels")),
        Err(PeekError::NotJson(_)) => Some(parse(
            "Parse error: not strict JSON (UTF-8 without a byte-order mark, no lone surrogates, finite numbers)",
        )),
        Err(PeekError::NotObjectOrArray | PeekError::EmptyBatch) => Some(invalid(
            "Invalid Request: not a JSON-RPC message or a non-empty batch",
        )),
    }
}

/// The verdict on a request's `Content-Encoding` values: the proxy reads bodies as sent, so an
/// encoded one cannot be judged.
pub fn encoding_refusal<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Option<Refusal> {
    let decoded = values.all(|v| {
        v.split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .all(|t| t.is_empty() || t.eq_ignore_ascii_case(b"identity"))
    });
    (!decoded).then_some(Refusal {
        status: 415,
        code: ErrorCode::ParseError,
        message: "Unsupported Media Type: the proxy does not decode a request Content-Encoding",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::peek::peek;

    #[test]
    fn refuses_what_it_cannot_read() {
        let code = |body: &[u8]| refusal(&peek(body)).map(|r| (r.status, r.code.code()));
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), None);
        assert_eq!(
            code(br#"[{"jsonrpc":"2.0","method":"n"},{"id":1,"result":{}}]"#),
            None
        );
        assert_eq!(code(b""), Some((400, -32700)));
        assert_eq!(code(b"\xEF\xBB\xBF{}"), Some((400, -32700)));
        assert_eq!(code(br#"{"a":1e400}"#), Some((400, -32700)));
        assert_eq!(code(b"[]"), Some((400, -32600)));
        assert_eq!(code(b"7"), Some((400, -32600)));
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1}"#), Some((400, -32600)));
        assert_eq!(
            code(br#"[{"method":"ping","id":1},3]"#),
            Some((400, -32600))
        );
        assert_eq!(code(br#"{"method":7,"id":1}"#), Some((400, -32600)));
    }

    #[test]
    fn only_identity_is_decoded() {
        let refuse = |v: &[&str]| encoding_refusal(v.iter().map(|s| s.as_bytes())).is_some();
        assert!(!refuse(&[]));
        assert!(!refuse(&["identity"]));
        assert!(!refuse(&["Identity, identity"]));
        assert!(refuse(&["gzip"]));
        assert!(refuse(&["identity", "br"]));
        assert!(refuse(&["identity, deflate"]));
        assert_eq!(
            encoding_refusal([b"zstd".as_slice()].into_iter())
                .unwrap()
                .status,
            415
        );
    }
}
