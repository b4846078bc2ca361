//! Upstreams that are not HTTP servers.
//!
//! * [`stdio`] — MCP servers run as child processes (newline-delimited JSON-RPC on
//!   stdin/stdout), served to the proxy over Streamable HTTP by an in-process bridge.

pub mod stdio;
