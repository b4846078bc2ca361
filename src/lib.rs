//! Shadowcat: an MCP edge proxy on Pingora.
//!
//! * [`proxy::reverse`] — the Pingora `ProxyHttp` service for MCP Streamable HTTP.
//! * [`transport::sse`] — the SSE codec (Pingora-free): incremental memchr framer and encoder.
//! * [`mcp`] — JSON-RPC peek, protocol versions, error bodies (Pingora-free).
//! * [`config`] — YAML config, validated before any port is bound.
//! * [`tls`] — TLS termination settings: certificates by SNI, reload, client certificates.
//! * [`upstream::stdio`] — stdio MCP servers as child processes, behind a Streamable HTTP bridge.
//! * [`upstream_client`] — the HTTP client to upstreams (hyper-util pool, rustls, h1/h2/h2c).
//! * [`sealed_id`] — sealed session ids (AEAD tokens any replica with the keys opens).
//! * [`store`] — the shared store (Redis/Valkey) replicas agree through.
//! * [`server`] — builds and runs the Pingora server; [`admin`] serves metrics and health.

pub mod admin;
pub mod auth;
pub mod authority;
pub mod cache;
pub mod cli;
pub mod config;
pub mod fd_budget;
pub mod file_stamp;
pub mod glob;
pub mod interceptor;
pub mod mcp;
pub mod proxy;
pub mod ratelimit;
pub mod sealed_id;
pub mod server;
pub mod store;

pub mod tape;

pub mod telemetry;
pub mod tls;
pub mod transport;
pub mod upstream;
pub mod upstream_client;
