//! The drain signal: set once when shutdown (SIGTERM, or the old process of an upgrade)
//! begins. A session's standalone `GET` stream, and a resumed one, would otherwise hold the
//! process until the grace period ends: they watch this and end at an event boundary with
//! `retry:`, so their clients reconnect (to a peer replica) with `Last-Event-ID`. POST streams
//! and JSON requests do not watch it: they finish. No Pingora here.

use tokio::sync::watch;

/// Whether the process is draining; cheap to clone into a request.
#[derive(Debug)]
pub struct Drain(watch::Sender<bool>);

impl Default for Drain {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl Drain {
    /// Shutdown began: every stream that watches ends (idempotent).
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once draining has begun (at once if it already has).
    pub async fn started(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`: the wait ends only when draining starts.
        let _ = rx.wait_for(|draining| *draining).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn started_waits_for_start_and_then_resolves_at_once() {
        let drain = std::sync::Arc::new(Drain::default());
        assert!(!drain.is_draining());
        let waiting = tokio::time::timeout(Duration::from_millis(50), drain.started()).await;
        assert!(waiting.is_err(), "not draining yet");
        let d = drain.clone();
        let task = tokio::spawn(async move { d.started().await });
        tokio::task::yield_now().await;
        drain.start();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("woken by start")
            .unwrap();
        assert!(drain.is_draining());
        // A stream that starts after draining began ends at once.
        tokio::time::timeout(Duration::from_secs(5), drain.started())
            .await
            .expect("already draining");
        drain.start();
        assert!(drain.is_draining(), "idempotent");
    }
}
