//! Pingora's zero-downtime upgrade, as Shadowcat uses it: a new process started with
//! `reverse --upgrade` waits (in Pingora's bootstrap) on `shutdown.upgrade_sock`; SIGQUIT to
//! the old process sends it every listening socket (MCP listeners and the admin listener).
//! Both accept on the same sockets for `OVERLAP`, then the old one stops accepting and
//! drains (`signals.rs`). The kernel's accept queue belongs to the socket, not the process,
//! so no connection is refused in between.

use std::time::Duration;

use super::StartError;
use crate::config::Config;

/// How long the old process keeps accepting after it sent its sockets: Pingora's
/// `CLOSE_TIMEOUT` (5 s, not exported), plus a margin so the drain starts after it stopped.
pub const OVERLAP: Duration = Duration::from_millis(5_200);

/// Seconds the new process waits for the sockets (and the old one tries to send them): one
/// attempt a second. The new process is started first, so SIGQUIT must come within this.
pub const TRANSFER_RETRIES: usize = 30;

/// The sockets are matched by address: a port 0 would name none of the old process's.
pub(super) fn check_fixed_ports(config: &Config) -> Result<(), StartError> {
    let listeners = config.listeners.iter().map(|l| l.addr);
    match listeners.chain(config.admin).find(|a| a.port() == 0) {
        Some(addr) => Err(StartError::Upgrade(format!(
            "{addr}: port 0 cannot take over a running process's socket; give the ports it \
             listens on"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn upgrading_needs_the_fixed_ports_of_the_running_process() {
        let mut config = Config::default();
        config.listeners = vec![crate::config::Listener::plain(SocketAddr::from((
            [127, 0, 0, 1],
            8080,
        )))];
        config.admin = Some(SocketAddr::from(([127, 0, 0, 1], 9090)));
        assert!(check_fixed_ports(&config).is_ok());
        config.admin = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let e = check_fixed_ports(&config).unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:0") && e.contains("port 0"), "{e}");
    }
}
