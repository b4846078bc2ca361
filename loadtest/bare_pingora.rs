//! `shadowcat-bare-pingora`: the smallest Pingora reverse proxy, as a load-test reference.
//!
//! It forwards every request to one upstream with Pingora's own connector and keep-alive pool
//! and nothing else: no MCP logic, no sessions, no metrics, no timeouts of its own. Measured
//! side by side with Shadowcat and nginx (`loadtest/run.sh`), it separates what Pingora's
//! HTTP/1 proxy path costs on this machine from what Shadowcat adds on top of it.
//!
//! Usage: shadowcat-bare-pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]
//!        (e.g. 127.0.0.1:8081 127.0.0.1:9000 2; threads default to one per core)

use std::net::SocketAddr;

#[path = "reference.rs"]
mod reference;

use async_trait::async_trait;
use pingora::prelude::*;

/// The same allocator as the `shadowcat` binary, so the comparison is of the proxy paths only.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    reference::serve("shadowcat-bare-pingora", |upstream| Bare { upstream });
}
