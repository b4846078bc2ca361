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

/// The verdict on a request's `Content-Type` values: exactly one, `application/json`, in UTF-8.
/// An upstream decodes the body by the charset it names (the TypeScript SDK and Express
/// decode `utf-7`, `shift_jis`, ... through iconv), where the judge reads UTF-8: a body in
/// another charset can name one tool to the judge and another to the upstream.
pub fn content_type_refusal<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Option<Refusal> {
    let refusal = Refusal {
        status: 415,
        code: ErrorCode::ParseError,
        message:
            "Unsupported Media Type: a body must be one Content-Type application/json in UTF-8",
    };
    let (Some(value), None) = (values.next(), values.next()) else {
        return Some(refusal);
    };
    let Ok(text) = std::str::from_utf8(value) else {
        return Some(refusal);
    };
    let mut parts = text.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Some(refusal);
    }
    let utf8_only = parts.map(str::trim).filter(|p| !p.is_empty()).all(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            let v = v.trim().trim_matches('"');
            k.trim().eq_ignore_ascii_case("charset")
                && (v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8"))
        })
    });
    (!utf8_only).then_some(refusal)
}

/// The verdict on MCP 2026-07-28 `Mcp-Method` / `Mcp-Name` (when the request says that
/// version): each at most once, readable, and saying what the body says. An upstream that
/// routes by the header would otherwise run what the judge never saw. Absent headers are the
/// upstream's to refuse.
pub fn mcp_header_refusal<'a>(
    methods: impl Iterator<Item = &'a [u8]>,
    names: impl Iterator<Item = &'a [u8]>,
    body: &[u8],
) -> Option<Refusal> {
    let refusal = Refusal {
        status: 400,
        code: ErrorCode::HeaderMismatch,
        message:
            "Mcp-Method or Mcp-Name is repeated, unreadable or does not match the request body",
    };
    let (Ok(method), Ok(name)) = (one_value(methods), one_value(names)) else {
        return Some(refusal);
    };
    match (method, name) {
        (None, None) => None,
        (None, Some(_)) => Some(refusal),
        (Some(m), name) => (!super::headers::body_agrees(body, &(m, name))).then_some(refusal),
    }
}

/// The one readable value of a header (visible ASCII, `=?base64?...?=` decoded), or none;
/// `Err` when it is repeated or unreadable.
fn one_value<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<Option<String>, ()> {
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    let text = std::str::from_utf8(value).map_err(|_| ())?;
    if !text
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return Err(());
    }
    Ok(Some(super::headers::decode_value(text.trim())))
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

    /// Review finding: `charset=utf-7` let `"+AGQ-anger"` read as `danger` upstream.
    #[test]
    fn regression_only_utf8_json_is_judged() {
        let refuse = |v: &[&str]| content_type_refusal(v.iter().map(|s| s.as_bytes())).is_some();
        assert!(!refuse(&["application/json"]));
        assert!(!refuse(&["Application/JSON; charset=UTF-8"]));
        assert!(!refuse(&["application/json;charset=\"utf8\""]));
        assert!(refuse(&[]));
        assert!(refuse(&["application/json; charset=utf-7"]));
        assert!(refuse(&["application/json; charset=shift_jis"]));
        assert!(refuse(&["application/json; boundary=x"]));
        assert!(refuse(&["text/plain"]));
        assert!(refuse(&["application/json", "application/json"]));
    }

    #[test]
    fn mcp_headers_agree_with_the_body_or_are_refused() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        let check = |m: &[&str], n: &[&str]| {
            mcp_header_refusal(
                m.iter().map(|s| s.as_bytes()),
                n.iter().map(|s| s.as_bytes()),
                body,
            )
            .map(|r| r.code.code())
        };
        assert_eq!(check(&[], &[]), None);
        assert_eq!(check(&["tools/call"], &["echo"]), None);
        assert_eq!(check(&["tools/call"], &[]), None);
        assert_eq!(check(&["tools/call"], &["=?base64?ZWNobw==?="]), None);
        assert_eq!(check(&["tools/call"], &["danger"]), Some(-32020));
        assert_eq!(check(&["ping"], &[]), Some(-32020));
        assert_eq!(check(&[], &["echo"]), Some(-32020));
        assert_eq!(
            check(&["tools/call", "tools/call"], &["echo"]),
            Some(-32020)
        );
        assert_eq!(check(&["tools/call"], &["echo", "echo"]), Some(-32020));
        assert_eq!(check(&["tools/call\u{7f}"], &["echo"]), Some(-32020));
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
