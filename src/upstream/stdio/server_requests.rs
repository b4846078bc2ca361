//! Server-to-client requests of shared children in flight to sessions, by the id the
//! session sees (`"s<n>"`, unique in the bridge): a response goes back to the child that
//! asked, with the child's own id, and only when the session that was asked sends it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::rewrite;

/// Server requests waiting for a session's answer, per bridge; past it, new ones are refused
/// to the child (a client that never answers cannot grow the table).
const MAX_WAITING: usize = 4096;

#[derive(Default)]
pub(super) struct ServerRequests {
    map: Mutex<HashMap<String, ServerRequest>>,
    next: AtomicU64,
}

struct ServerRequest {
    /// The asking child: its pid and stdin.
    pid: i32,
    stdin: mpsc::Sender<Bytes>,
    /// The child's id for it (JSON text).
    id: String,
    owner: u64,
}

// === impl ServerRequests ===

impl ServerRequests {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, ServerRequest>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request of child `pid` (its id `id`) to session `owner`; the id the
    /// session sees, or `None` when [`MAX_WAITING`] wait already.
    pub(super) fn add(
        &self,
        pid: i32,
        stdin: &mpsc::Sender<Bytes>,
        id: String,
        owner: u64,
    ) -> Option<String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let public = format!("\"s{n}\"");
        let request = ServerRequest {
            pid,
            stdin: stdin.clone(),
            id,
            owner,
        };
        let mut map = self.map();
        if map.len() >= MAX_WAITING {
            return None;
        }
        map.insert(public.clone(), request);
        Some(public)
    }

    /// A client's response to a server request: back to its child with the child's id, when
    /// `owner` is the session it was sent to. `false`: no such request (answered, or not this
    /// session's); the response is dropped.
    pub(super) async fn answer(&self, owner: u64, line: &Bytes, id: &str) -> bool {
        let request = {
            let mut map = self.map();
            match map.get(id) {
                Some(r) if r.owner == owner => map.remove(id),
                _ => None,
            }
        };
        let Some(request) = request else {
            return false;
        };
        match rewrite::with_id(line, &request.id) {
            Some(line) => request.stdin.send(line).await.is_ok(),
            None => false,
        }
    }

    /// Child `pid` is gone: its requests can no longer be answered.
    pub(super) fn forget(&self, pid: i32) {
        self.map().retain(|_, r| r.pid != pid);
    }
}
