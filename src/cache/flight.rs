//! One upstream fetch per key at a time. The first miss leads (holds a [`FlightGuard`] until
//! its response was stored or found uncacheable); concurrent misses on the key wait for the
//! guard to go, then look again. A waiter that still misses (the result was not cacheable)
//! goes upstream itself, without leading: the next wave is not serialised behind it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::Key;

/// The fetches in flight, by key.
#[derive(Debug, Default)]
pub struct Flights {
    leaders: Mutex<HashMap<Key, watch::Receiver<()>>>,
}

/// The outcome of joining a key's flight.
#[derive(Debug)]
pub enum Join {
    /// Nobody fetches this key: this request does, and holds the guard meanwhile.
    Lead(FlightGuard),
    /// Another request fetches it: wait for [`Join::wait`]'s end, then look again.
    Wait(watch::Receiver<()>),
}

impl Flights {
    pub fn join(self: &Arc<Self>, key: &Key) -> Join {
        let mut leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = leaders.get(key) {
            return Join::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        leaders.insert(key.clone(), rx);
        Join::Lead(FlightGuard {
            flights: self.clone(),
            key: key.clone(),
            _done: tx,
        })
    }

    /// Keys being fetched now.
    pub fn len(&self) -> usize {
        self.leaders.lock().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Join {
    /// Waits until the leader's guard is dropped (the channel closes).
    pub async fn wait(rx: &mut watch::Receiver<()>) {
        while rx.changed().await.is_ok() {}
    }
}

/// Held by the request that fetches a key; dropping it wakes the waiters.
#[derive(Debug)]
pub struct FlightGuard {
    flights: Arc<Flights>,
    key: Key,
    _done: watch::Sender<()>,
}

impl FlightGuard {
    pub fn key(&self) -> &Key {
        &self.key
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut leaders = self
            .flights
            .leaders
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        leaders.remove(&self.key);
        // `_done` drops after this: waiters wake once the key is free to lead again.
    }
}
