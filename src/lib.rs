//! Shadowcat: an MCP edge proxy on Pingora.

pub mod transport;
