//! The command line and server of the Pingora reference proxies (`bare_pingora.rs`,
//! `lean_probe.rs`): `NAME LISTEN_ADDR UPSTREAM_ADDR [THREADS]`, threads one per core by default.

use std::net::SocketAddr;

use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

/// Parses the arguments, builds the proxy for the upstream address and serves it forever.
pub fn serve<P>(name: &str, proxy_for: impl FnOnce(SocketAddr) -> P)
where
    P: ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    let usage = format!("usage: {name} LISTEN_ADDR UPSTREAM_ADDR [THREADS]");
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect(&usage);
    let upstream: SocketAddr = args.next().expect(&usage).parse().expect(&usage);
    let threads = args.next().map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        |t| t.parse().expect(&usage),
    );
    let conf = ServerConf {
        threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, proxy_for(upstream));
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
