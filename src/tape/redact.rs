//! What a tape must never hold: credentials in headers, and configured fields of messages.
//! Applied by the writer thread before a line is written, so nothing unredacted reaches disk.
//!
//! * Headers: only the ones that matter are kept at all ([`RECORDED`]); `Authorization`,
//!   `Proxy-Authorization`, `Cookie`, `Set-Cookie` and every configured header name are kept
//!   as `[redacted]` (the tape shows they were sent, never their value).
//! * Messages: each configured JSON pointer (RFC 6901, `*` matching any key or index) is
//!   applied to every JSON-RPC message (each member of a batch); a value found there becomes
//!   `"[redacted]"`. A message no pointer touches is written as it was sent, byte for byte.

use serde_json::value::RawValue;
use serde_json::Value;

use super::format::Headers;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Headers kept with their values.
pub const RECORDED: [&str; 7] = [
    "mcp-session-id",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "content-type",
    "accept",
];

/// Headers kept as `[redacted]`, always.
pub const CREDENTIALS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// The configured redactions (`recording.redact`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redaction {
    /// Lower-case header names, kept as `[redacted]`.
    pub headers: Vec<String>,
    /// JSON pointers, split into unescaped segments.
    pub pointers: Vec<Vec<String>>,
}

/// A `redact` entry that is neither a header name nor a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither a JSON pointer (\"/params/arguments/password\") nor a header name")]
pub struct BadEntry(pub String);

// === impl Redaction ===

impl Redaction {
    /// Parses `redact` entries: `/a/b` is a JSON pointer, anything else a header name.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, BadEntry> {
        let mut out = Self::default();
        for entry in entries {
            if let Some(path) = entry.strip_prefix('/') {
                let segments = path
                    .split('/')
                    .map(|s| s.replace("~1", "/").replace("~0", "~"))
                    .collect();
                out.pointers.push(segments);
            } else if http::HeaderName::from_bytes(entry.as_bytes()).is_ok() {
                out.headers.push(entry.to_ascii_lowercase());
            } else {
                return Err(BadEntry(entry.to_owned()));
            }
        }
        Ok(out)
    }

    /// The headers a tape keeps, from `(name, value)` pairs (names in any case).
    pub fn headers<'a>(&self, all: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Headers {
        let mut out = Headers::new();
        let is = |list: &[&str], name: &str| list.iter().any(|h| h.eq_ignore_ascii_case(name));
        for (name, value) in all {
            // Most headers are dropped here, before anything is allocated for them.
            let value = if is(&CREDENTIALS, name)
                || self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
            {
                REDACTED.to_owned()
            } else if is(&RECORDED, name) {
                String::from_utf8_lossy(value).into_owned()
            } else {
                continue;
            };
            out.entry(name.to_ascii_lowercase())
                .and_modify(|v| {
                    if value != REDACTED {
                        v.push_str(", ");
                        v.push_str(&value);
                    }
                })
                .or_insert(value);
        }
        out
    }

    /// A body (or SSE data) for a line: JSON as a message, redacted; anything else as text.
    pub fn message(&self, raw: &[u8]) -> (Option<Box<RawValue>>, Option<String>) {
        let Ok(text) = std::str::from_utf8(raw) else {
            return (None, Some(String::from_utf8_lossy(raw).into_owned()));
        };
        if text.trim().is_empty() {
            // Kept as it was: an SSE priming event's empty data stays empty data.
            return (None, Some(text.to_owned()));
        }
        if self.pointers.is_empty() {
            return match serde_json::from_str::<Box<RawValue>>(text.trim()) {
                Ok(raw) => (Some(raw), None),
                Err(_) => (None, Some(text.to_owned())),
            };
        }
        let Ok(mut value) = serde_json::from_str::<Value>(text) else {
            return (None, Some(text.to_owned()));
        };
        let mut hit = false;
        match &mut value {
            Value::Array(batch) => {
                for message in batch {
                    hit |= self.apply(message);
                }
            }
            message => hit |= self.apply(message),
        }
        if !hit {
            if let Ok(raw) = serde_json::from_str::<Box<RawValue>>(text.trim()) {
                return (Some(raw), None);
            }
        }
        match serde_json::value::to_raw_value(&value) {
            Ok(raw) => (Some(raw), None),
            // Unreachable for a parsed value; the message is left out rather than kept whole.
            Err(_) => (None, Some(REDACTED.to_owned())),
        }
    }

    /// Applies every pointer to one message; `true` when something was redacted.
    fn apply(&self, message: &mut Value) -> bool {
        let mut hit = false;
        for pointer in &self.pointers {
            hit |= redact_at(message, pointer);
        }
        hit
    }
}

fn redact_at(value: &mut Value, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        *value = Value::String(REDACTED.to_owned());
        return true;
    };
    match value {
        Value::Object(map) if first == "*" => {
            let mut hit = false;
            for v in map.values_mut() {
                hit |= redact_at(v, rest);
            }
            hit
        }
        Value::Object(map) => map.get_mut(first).is_some_and(|v| redact_at(v, rest)),
        Value::Array(items) if first == "*" => {
            let mut hit = false;
            for v in items {
                hit |= redact_at(v, rest);
            }
            hit
        }
        Value::Array(items) => first
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get_mut(i))
            .is_some_and(|v| redact_at(v, rest)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_configured_headers_are_redacted_others_dropped() {
        let r = Redaction::parse(["X-Api-Key", "/params/arguments/password"]).unwrap();
        let h = r.headers([
            ("Authorization", &b"Bearer sekrit"[..]),
            ("cookie", b"a=b"),
            ("x-api-key", b"k"),
            ("Mcp-Session-Id", b"abc"),
            ("user-agent", b"curl"),
        ]);
        assert_eq!(h["authorization"], REDACTED);
        assert_eq!(h["cookie"], REDACTED);
        assert_eq!(h["x-api-key"], REDACTED);
        assert_eq!(h["mcp-session-id"], "abc");
        assert!(!h.contains_key("user-agent"));
        assert!(Redaction::parse(["bad header"]).is_err());
    }

    #[test]
    fn pointers_redact_each_message_and_leave_untouched_ones_byte_for_byte() {
        let r = Redaction::parse(["/params/arguments/password", "/params/items/*/token"]).unwrap();
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"login","arguments":{"user":"u","password":"hunter2"}}}"#;
        let (m, text) = r.message(body);
        let m = m.unwrap();
        assert!(text.is_none());
        assert!(!m.get().contains("hunter2"), "{}", m.get());
        assert!(m.get().contains(REDACTED));

        let batch = br#"[{"params":{"items":[{"token":"t1"},{"token":"t2"}]}},{"params":{"arguments":{"password":"p"}}}]"#;
        let m = r.message(batch).0.unwrap();
        for secret in ["t1", "t2", "\"p\""] {
            assert!(!m.get().contains(secret), "{secret}: {}", m.get());
        }

        let plain = br#"{"jsonrpc":"2.0",  "id":2,"result":{}}"#;
        assert_eq!(
            r.message(plain).0.unwrap().get(),
            std::str::from_utf8(plain).unwrap()
        );
        assert_eq!(r.message(b"not json").1.as_deref(), Some("not json"));
        assert!(r.message(b"").0.is_none());
    }
}
