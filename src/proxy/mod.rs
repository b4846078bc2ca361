//! The proxy services. `reverse` is the MCP Streamable HTTP reverse proxy.

pub mod reverse;

pub use reverse::McpProxy;
