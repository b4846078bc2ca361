//! One integration-test binary: mock MCP upstreams and the proxy in-process on 127.0.0.1:0.

mod cases;
mod support;
