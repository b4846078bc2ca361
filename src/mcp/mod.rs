//! MCP and JSON-RPC knowledge the proxy needs, with no Pingora in sight: header names,
//! protocol revisions, a borrowed peek at message bodies and JSON-RPC error bodies.

pub mod canonical;
pub mod differential;
pub mod error;
pub mod headers;
pub mod judge;
pub mod peek;
pub mod sniff;
mod strict_json;
pub mod version;

pub use error::{error_body, ErrorCode};
pub use version::ProtocolVersion;

/// `Mcp-Session-Id` (spelled `MCP-Session-Id` in 2025-11-25; header names are case-insensitive).
pub const SESSION_ID: &str = "mcp-session-id";
/// `MCP-Protocol-Version`, sent on every request after initialization (2025-06-18 and later).
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Mcp-Method` (2026-07-28): the JSON-RPC method, so routers need not read the body.
pub const METHOD: &str = "mcp-method";
/// `Mcp-Name` (2026-07-28): the tool, resource or prompt name for the methods that have one.
pub const NAME: &str = "mcp-name";
/// `Last-Event-ID`: a client resuming an SSE stream.
pub const LAST_EVENT_ID: &str = "last-event-id";
