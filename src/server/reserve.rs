//! The addresses the proxy will listen on, checked (and port 0 made concrete) before anything
//! starts: an address in use is a start-up error naming it.

use std::net::{SocketAddr, TcpListener};

use super::StartError;
use crate::config::Config;

/// Checks every listener and the admin address, turning port 0 into a concrete port. Every
/// address is held until all are chosen: released one by one, a port 0 could be given the
/// port just released for another listener, and Pingora would then open the second listener
/// on the first one's socket (two owners of one descriptor: a double close, and one
/// listener's connections served by the other).
pub(super) fn reserve_all(config: &mut Config) -> Result<(), StartError> {
    let mut held = Vec::new();
    for listener in &mut config.listeners {
        let (addr, socket) = reserve(listener.addr, "listen")?;
        listener.addr = addr;
        held.push(socket);
    }
    if let Some(admin) = config.admin {
        let (addr, socket) = reserve(admin, "admin")?;
        config.admin = Some(addr);
        held.push(socket);
    }
    Ok(())
}

/// Fails fast on an address in use; the socket is returned so the caller holds the port.
fn reserve(addr: SocketAddr, what: &'static str) -> Result<(SocketAddr, TcpListener), StartError> {
    match TcpListener::bind(addr) {
        Ok(l) => l
            .local_addr()
            .map(|a| (a, l))
            .map_err(|source| StartError::Bind { what, addr, source }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(StartError::AddrInUse { what, addr })
        }
        Err(source) => Err(StartError::Bind { what, addr, source }),
    }
}
