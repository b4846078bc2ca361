//! The real `shadowcat` binary as a child process, on a loopback port chosen here.
//!
//! A port found free is free only when it is found: another test (this suite runs many at
//! once, each binding `127.0.0.1:0`) can take it before the child binds it. The child then
//! exits at start (address in use), and a test that only waited for the port to accept would
//! be talking to someone else's server. So the child is watched while it starts: one that
//! exits is started again on a new port, and the port counts as the child's only once it
//! accepts and the child is still running.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Starts at most this many times (each on a new port).
const ATTEMPTS: usize = 5;

/// A free loopback port, at the moment of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `shadowcat`; killed when dropped (if the test has not ended it).
pub struct ProxyProcess {
    pub child: Child,
    /// The port the proxy listens on (the one `command` was given).
    pub port: u16,
}

impl ProxyProcess {
    /// `command(port)` builds the command for a proxy listening on `127.0.0.1:port` (other
    /// ports it needs, such as an admin listener, it may take from [`free_port`]: a child
    /// that loses one of them exits too, and is started again).
    pub async fn start(mut command: impl FnMut(u16) -> Command) -> ProxyProcess {
        let mut exits = Vec::new();
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let mut child = command(port).spawn().expect("starting shadowcat");
            match wait_listening(&mut child, port).await {
                Ok(()) => return ProxyProcess { child, port },
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    exits.push(why);
                }
            }
        }
        panic!("shadowcat did not start in {ATTEMPTS} attempts: {exits:?}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) with `kill`.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -{signal} failed");
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Until `port` accepts with `child` still running after it (10 s at most).
async fn wait_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited at start on port {port}: {status}"));
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            // A child that lost the port exits within moments of its start.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return match child.try_wait().map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(status) => Err(format!(
                    "port {port} answered, but the child exited: {status}"
                )),
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("port {port} never accepted in 10 s"))
}

/// The first start is given a port another socket holds (as when a parallel test took it):
/// the child exits at start, and is started again on a port of its own.
#[tokio::test]
async fn a_child_that_lost_its_port_is_started_again() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut attempts = 0;
    let proxy = ProxyProcess::start(|port| {
        attempts += 1;
        let port = if attempts == 1 { taken_port } else { port };
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowcat"));
        command
            .args(["reverse", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--admin", "off", "--upstream", "http://127.0.0.1:9/mcp"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    })
    .await;
    assert_eq!(attempts, 2, "the first child could not listen");
    assert_ne!(proxy.port, taken_port);
    drop(taken);
}
