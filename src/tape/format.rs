//! The tape format, version 1: JSON Lines, UTF-8, one object per line, every line ended by
//! `\n`. The first line is the [`Header`]; every other line is a [`Line`]: one message (or an
//! SSE stream's end) as it crossed the proxy, downstream side (the proxy's session id, the
//! proxy's SSE event ids).
//!
//! ```text
//! {"tape":"shadowcat-tape/1","proxy_version":"0.1.0","protocol_version":"2025-11-25",...}
//! {"dir":"c2s","exchange":1,"t_ms":0,"http":"POST","headers":{...},"message":{...}}
//! {"dir":"s2c","exchange":1,"t_ms":3,"status":200,"headers":{...},"message":{...}}
//! {"dir":"s2c","exchange":2,"t_ms":9,"status":200,"sse":{"n":0,"id":"0-1"},"message":{...}}
//! {"dir":"s2c","exchange":2,"t_ms":9,"status":200,"sse":{"n":1,"end":true}}
//! ```
//!
//! `exchange` pairs a request with its response lines (one HTTP exchange); `t_ms` is the
//! time since the tape started. A JSON response is one line; an SSE response is one line per
//! event (`sse.n` counts them) and a last line with `sse.end`. `message` is the JSON-RPC
//! message as sent (byte for byte unless a redaction changed it); a body that is not JSON is
//! `body` (text) instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The `tape` value of a version-1 header.
pub const FORMAT: &str = "shadowcat-tape/1";

/// The first line of a tape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`FORMAT`].
    pub tape: String,
    pub proxy_version: String,
    /// The MCP protocol version of the first request (from `MCP-Protocol-Version`, or
    /// `2025-03-26` without one, as the spec says to assume).
    pub protocol_version: String,
    /// The upstream's name.
    pub upstream: String,
    /// When the first line was recorded (RFC 3339, UTC).
    pub started: String,
    /// The same, in Unix milliseconds.
    pub started_unix_ms: u64,
    /// SHA-256 of the principal (the token's subject, or the `Authorization` value), hex; the
    /// credential itself is never written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// One MCP session (`true`), or a sessionless client's requests.
    pub session: bool,
    /// 0 for a tape's first file; rotation continues it in part 1, 2, ...
    #[serde(default)]
    pub part: u32,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Client to server: a request, notification or response the client sent.
    #[serde(rename = "c2s")]
    ClientToServer,
    /// Server to client.
    #[serde(rename = "s2c")]
    ServerToClient,
}

/// One message line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub dir: Direction,
    pub exchange: u64,
    pub t_ms: u64,
    /// The request's HTTP method (`c2s` lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// The response's HTTP status (`s2c` lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The headers that matter (lower-case names): `mcp-session-id` (the proxy's id),
    /// `last-event-id`, `mcp-method`, `mcp-name`, `mcp-protocol-version`, `content-type`,
    /// `accept`; `authorization`, `cookie`, `set-cookie` and configured names as `[redacted]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// For SSE responses: which event this is, and its fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<SseMark>,
    /// The JSON-RPC message (or batch) as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Box<RawValue>>,
    /// A body (or SSE data) that is not JSON, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// An SSE event's place and fields (`data` is the line's `message` or `body`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseMark {
    /// The event's index in its response (0, 1, ...); the end line has the next index.
    pub n: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u64>,
    /// The stream ended here (no event on this line).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
}

// === impl Line ===

impl Line {
    /// Is this a request line of its exchange?
    pub fn is_request(&self) -> bool {
        self.dir == Direction::ClientToServer
    }

    /// The message as a JSON value (`None` without one).
    pub fn message_value(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.message.as_ref()?.get()).ok()
    }
}

/// Header values as the tape keeps them: one string per name (repeats joined by `, `).
pub type Headers = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_keep_the_message_bytes() {
        let text = r#"{"dir":"s2c","exchange":2,"t_ms":9,"status":200,"sse":{"n":0,"id":"0-1"},"message":{"jsonrpc":"2.0", "id":1,"result":{}}}"#;
        let line: Line = serde_json::from_str(text).unwrap();
        assert_eq!(line.dir, Direction::ServerToClient);
        assert_eq!(line.sse.as_ref().unwrap().id.as_deref(), Some("0-1"));
        assert_eq!(
            line.message.as_ref().unwrap().get(),
            r#"{"jsonrpc":"2.0", "id":1,"result":{}}"#
        );
        assert_eq!(serde_json::to_string(&line).unwrap(), text);
        assert!(serde_json::from_str::<Line>(r#"{"dir":"up","exchange":1,"t_ms":0}"#).is_err());
        assert!(
            serde_json::from_str::<Line>(r#"{"dir":"c2s","exchange":1,"t_ms":0,"x":1}"#).is_err()
        );
    }
}
