//! Idle upstream connections kept for reuse by the watchdog connector.
//!
//! Pingora 0.9 can pool only sockets with a real fd (it checks `getpeername` on reuse), so the
//! virtual watchdog sockets it hands back are always dropped. Dropping one that ended cleanly
//! between exchanges puts its `TcpStream` here instead, and the next connect takes it back:
//! the same reuse, one level down. Entries expire after `max_idle` (below the keep-alive timeout
//! of common MCP server runtimes) and are probed before reuse: a socket the upstream closed, or
//! one with unexpected bytes waiting, is discarded.

use std::sync::Mutex;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// A bounded LIFO stack of idle connections (the most recently used is the likeliest alive).
#[derive(Debug)]
pub struct IdlePool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    max_idle: Duration,
    capacity: usize,
}

impl IdlePool {
    pub fn new(max_idle: Duration, capacity: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle,
            capacity,
        }
    }

    /// Keeps a clean connection for later (dropped when the pool is full).
    pub fn put(&self, stream: TcpStream) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.capacity {
                idle.push((stream, Instant::now()));
            }
        }
    }

    /// A live idle connection, if there is one.
    pub fn take(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().ok()?;
        // Oldest first in the Vec: expired ones sit at the front.
        let fresh_from = idle.partition_point(|(_, at)| at.elapsed() >= self.max_idle);
        idle.drain(..fresh_from);
        while let Some((stream, _)) = idle.pop() {
            if is_alive(&stream) {
                return Some(stream);
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An idle HTTP/1.1 connection must have nothing to read: end of stream means the upstream
/// closed it, bytes mean it is out of step.
fn is_alive(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn reuses_live_connections_and_discards_dead_ones() {
        let pool = IdlePool::new(Duration::from_secs(4), 8);
        let (live, _keep) = pair().await;
        let (dead, server) = pair().await;
        drop(server);
        let (noisy, mut talker) = pair().await;
        talker.write_all(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        pool.put(live);
        pool.put(dead);
        pool.put(noisy);
        assert!(pool.take().is_some(), "the live one comes back");
        assert!(
            pool.take().is_none(),
            "closed and out-of-step ones are dropped"
        );
        assert!(pool.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_expire_and_capacity_holds() {
        let pool = IdlePool::new(Duration::from_secs(4), 1);
        let (a, _ka) = pair().await;
        let (b, _kb) = pair().await;
        pool.put(a);
        pool.put(b);
        assert_eq!(pool.len(), 1, "capacity");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(pool.take().is_none(), "expired");
    }
}
