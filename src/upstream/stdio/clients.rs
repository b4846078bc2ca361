//! The clients of a shared pool: the sessions a `mode: shared` upstream gives out (no child of
//! their own: a GET stream, a bounded backlog, an idle clock), and the keys that tell one
//! request's owner from another's.
//!
//! A sessionless (2026-07-28) request is its own owner: nothing else may ever receive what
//! belongs to it. A session is one owner for all its requests.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::time::Instant;

use super::session::{StreamTx, BACKLOG};

/// One session of a shared upstream.
pub(super) struct ClientSession {
    pub id: String,
    /// Its owner key.
    pub key: u64,
    streams: Mutex<Streams>,
    last_used: Mutex<Instant>,
}

#[derive(Default)]
struct Streams {
    get: Option<StreamTx>,
    backlog: VecDeque<Bytes>,
}

/// Why a GET stream was not opened.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct StreamOpen;

// === impl ClientSession ===

impl ClientSession {
    fn streams(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_since(&self, since: Instant) -> bool {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) < since
    }

    /// Opens the GET stream: what waited in the backlog, then what follows on `tx`.
    pub(super) fn open_get(&self, tx: StreamTx) -> Result<Vec<Bytes>, StreamOpen> {
        let mut streams = self.streams();
        if streams.get.as_ref().is_some_and(|g| !g.is_closed()) {
            return Err(StreamOpen);
        }
        streams.get = Some(tx);
        Ok(streams.backlog.drain(..).collect())
    }

    /// Queues `event` for the GET stream without waiting: a client that does not read its
    /// stream loses the oldest events past the backlog, and never slows the shared child.
    fn push(&self, event: Bytes) {
        let mut streams = self.streams();
        let event = match streams.get.as_ref().filter(|g| !g.is_closed()) {
            Some(get) => match get.try_send(event) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => event,
        };
        if streams.backlog.len() == BACKLOG {
            streams.backlog.pop_front();
            tracing::debug!(session = %self.id, "stdio: GET backlog full; the oldest message was dropped");
        }
        streams.backlog.push_back(event);
    }
}

/// Every session of one shared upstream, and the owner keys.
#[derive(Default)]
pub(super) struct Clients {
    sessions: Mutex<HashMap<String, Arc<ClientSession>>>,
    next_key: AtomicU64,
}

// === impl Clients ===

impl Clients {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ClientSession>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A key no other owner has or will have.
    pub(super) fn new_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn open(&self, id: String) -> Arc<ClientSession> {
        let session = Arc::new(ClientSession {
            id: id.clone(),
            key: self.new_key(),
            streams: Mutex::default(),
            last_used: Mutex::new(Instant::now()),
        });
        self.table().insert(id, session.clone());
        session
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<ClientSession>> {
        self.table().get(id).cloned()
    }

    /// Ends a session; its GET stream ends with it.
    pub(super) fn remove(&self, id: &str) -> bool {
        self.table().remove(id).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().len()
    }

    /// A server message that belongs to no request, to every session's GET stream.
    pub(super) fn broadcast(&self, event: &Bytes) {
        let sessions: Vec<Arc<ClientSession>> = self.table().values().cloned().collect();
        for session in sessions {
            session.push(event.clone());
        }
    }

    /// Ends the sessions unused since `since`; how many.
    pub(super) fn sweep(&self, since: Instant) -> usize {
        let mut table = self.table();
        let before = table.len();
        table.retain(|_, s| !s.idle_since(since));
        before - table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn broadcasts_reach_open_streams_and_wait_in_a_bounded_backlog() {
        let clients = Clients::default();
        let a = clients.open("a".into());
        let b = clients.open("b".into());
        assert_ne!(a.key, b.key);
        let (tx, mut rx) = mpsc::channel(4);
        assert!(a.open_get(tx.clone()).unwrap().is_empty());
        assert_eq!(a.open_get(tx), Err(StreamOpen));
        for n in 0..(BACKLOG + 3) {
            clients.broadcast(&Bytes::from(n.to_string()));
        }
        assert_eq!(rx.recv().await.unwrap(), "0");
        let (tx, _rx) = mpsc::channel(1);
        let held = b.open_get(tx).unwrap();
        assert_eq!(held.len(), BACKLOG);
        assert_eq!(held[0], "3", "the oldest were dropped");
        assert!(clients.remove("a"));
        assert!(clients.get("a").is_none());
        assert_eq!(clients.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_are_swept() {
        let clients = Clients::default();
        let old = clients.open("old".into());
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        clients.open("new".into());
        assert_eq!(
            clients.sweep(Instant::now() - std::time::Duration::from_secs(5)),
            1
        );
        assert!(clients.get(&old.id).is_none());
        assert!(clients.get("new").is_some());
    }
}
