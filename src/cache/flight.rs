//! One upstream fetch per key at a time. The first miss leads (holds a [`FlightGuard`] until
//! its response was stored or found uncacheable); concurrent misses on the key wait for the
//! guard to go, then look again. A waiter that still misses (the result was not cacheable)
//! goes upstream itself, without leading: the next wave is not serialised behind it.
//!
//! A leader older than the flights' `max_age` no longer holds the key (an upstream that never
//! answers must not stall the key for as long as its stream lives): the next miss leads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Key;

/// The fetches in flight, by key.
#[derive(Debug)]
pub struct Flights {
    leaders: Mutex<Leaders>,
    max_age: Duration,
}

#[derive(Debug, Default)]
struct Leaders {
    by_key: HashMap<Key, Leader>,
    next: u64,
}

#[derive(Debug)]
struct Leader {
    id: u64,
    since: Instant,
    done: watch::Receiver<()>,
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
    /// Flights whose leaders hold their key for at most `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self {
            leaders: Mutex::default(),
            max_age,
        }
    }

    pub fn join(self: &Arc<Self>, key: &Key) -> Join {
        let mut leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = leaders.by_key.get(key) {
            if l.since.elapsed() < self.max_age {
                return Join::Wait(l.done.clone());
            }
        }
        let (tx, rx) = watch::channel(());
        leaders.next += 1;
        let id = leaders.next;
        let leader = Leader {
            id,
            since: Instant::now(),
            done: rx,
        };
        leaders.by_key.insert(key.clone(), leader);
        Join::Lead(FlightGuard {
            flights: self.clone(),
            key: key.clone(),
            id,
            _done: tx,
        })
    }

    /// Keys being fetched now.
    pub fn len(&self) -> usize {
        self.leaders.lock().map_or(0, |l| l.by_key.len())
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
    id: u64,
    _done: watch::Sender<()>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut leaders = self
            .flights
            .leaders
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A leader that aged out was replaced: the key is its successor's now.
        if leaders
            .by_key
            .get(&self.key)
            .is_some_and(|l| l.id == self.id)
        {
            leaders.by_key.remove(&self.key);
        }
        // `_done` drops after this: waiters wake once the key is free to lead again.
    }
}
