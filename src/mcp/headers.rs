//! MCP header rules that need no HTTP stack: MCP 2026-07-28 `Mcp-Method` / `Mcp-Name`
//! against the body they describe, their `=?base64?...?=` form, and what `Accept` allows.

use base64::Engine;

use super::peek;

/// Do these headers say `Content-Type: text/event-stream` (parameters allowed)?
pub fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..17)
                .is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream"))
        })
}

/// MCP 2026-07-28 header values may be written `=?base64?...?=`.
pub fn decode_value(v: &str) -> String {
    v.strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| v.to_owned())
}

/// Does the body say what `Mcp-Method` / `Mcp-Name` say?
pub fn body_agrees(body: &[u8], (method, name): &(String, Option<String>)) -> bool {
    let Ok(peek::Peek::Single(m)) = peek::peek(body) else {
        return false;
    };
    if m.method.as_deref() != Some(method.as_str()) {
        return false;
    }
    let named = match method.as_str() {
        "tools/call" | "prompts/get" => m.name.as_deref(),
        "resources/read" => m.uri.as_deref(),
        _ => return true,
    };
    name.as_deref().is_none_or(|n| Some(n) == named)
}

/// Does a client with this `Accept` take a JSON response (else only SSE)? No header, `*/*`
/// or `application/json` do; an `Accept` naming only `text/event-stream` does not.
pub fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return true;
    };
    accept.split(',').any(|t| {
        let t = t.split(';').next().unwrap_or("").trim();
        t.eq_ignore_ascii_case("application/json")
            || t == "*/*"
            || t.eq_ignore_ascii_case("application/*")
    }) || !accept.to_ascii_lowercase().contains("text/event-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_and_body_agreement() {
        assert_eq!(decode_value("=?base64?ZWNobw==?="), "echo");
        assert_eq!(decode_value("plain"), "plain");
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        let h = |m: &str, n: Option<&str>| (m.to_owned(), n.map(str::to_owned));
        assert!(body_agrees(body, &h("tools/call", Some("echo"))));
        assert!(body_agrees(body, &h("tools/call", None)));
        assert!(!body_agrees(body, &h("tools/call", Some("delete"))));
        assert!(!body_agrees(body, &h("tools/list", None)));
        assert!(!body_agrees(b"[]", &h("tools/call", None)));
    }

    #[test]
    fn json_unless_the_client_takes_only_sse() {
        assert!(accepts_json(None));
        assert!(accepts_json(Some("application/json, text/event-stream")));
        assert!(accepts_json(Some("*/*")));
        assert!(accepts_json(Some("text/html")));
        assert!(!accepts_json(Some("text/event-stream")));
    }
}
