//! One MCP session of a `per_session` stdio upstream: its child's stdin, and where each
//! message the child writes goes.
//!
//! Routing (each message on exactly one stream, never two):
//! * a response goes to the POST stream of the request with its id; the stream ends once
//!   every request it carried is answered;
//! * `notifications/progress` goes to the POST stream of the request whose
//!   `_meta.progressToken` it names;
//! * any other notification or server-to-client request goes to the oldest request still
//!   waiting for its response (stdio carries no "related request", and what a server sends
//!   while a request runs is most likely that request's), or, with none waiting, to the GET
//!   stream; without a GET stream it waits for one in a bounded backlog ([`BACKLOG`]).
//!
//! Ids are not rewritten: one child serves one client, whose in-flight request ids are unique
//! (a second request with an id still in flight is refused), and the child's own request ids
//! go to the client and come back unchanged.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::lines::{sse_event, Kind, Message};

/// SSE events bound for one HTTP response.
pub(super) type StreamTx = mpsc::Sender<Bytes>;

/// Messages for the GET stream kept while there is none (the oldest are dropped past it).
pub(super) const BACKLOG: usize = 256;

/// Why a child ended: the `reason` label of `shadowcat_stdio_exits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// The client ended the session (DELETE).
    Deleted,
    /// No request for `sessions.idle_timeout`.
    Idle,
    /// The proxy shut down.
    Shutdown,
    /// `initialize` got no answer within `timeouts.request`, or its client left.
    InitFailed,
    /// The child closed its stdout.
    StdoutClosed,
    /// The child exited by itself with status 0.
    Exited,
    /// The child exited by itself with another status, or was killed by a signal.
    Crashed,
}

// === impl ExitReason ===

impl ExitReason {
    pub const ALL: [ExitReason; 7] = [
        Self::Deleted,
        Self::Idle,
        Self::Shutdown,
        Self::InitFailed,
        Self::StdoutClosed,
        Self::Exited,
        Self::Crashed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Idle => "idle",
            Self::Shutdown => "shutdown",
            Self::InitFailed => "init_failed",
            Self::StdoutClosed => "stdout_closed",
            Self::Exited => "exited",
            Self::Crashed => "crashed",
        }
    }
}

/// Why a request could not be taken.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// The child is gone (the session with it).
    Closed,
    /// A request with this id is still in flight.
    DuplicateId(String),
    /// A GET stream is open already.
    StreamOpen,
}

pub(super) struct Session {
    pub id: String,
    /// The child's pid, which is also its process group.
    pub pid: i32,
    stdin: mpsc::Sender<Bytes>,
    routes: Mutex<Routes>,
    last_used: Mutex<Instant>,
    stop: Mutex<Option<oneshot::Sender<ExitReason>>>,
}

#[derive(Default)]
struct Routes {
    closed: bool,
    /// Requests waiting for their response, oldest first: (id, its POST stream).
    pending: VecDeque<(String, StreamTx)>,
    /// Progress token → request id.
    tokens: HashMap<String, String>,
    get: Option<StreamTx>,
    backlog: VecDeque<Bytes>,
}

// === impl Session ===

impl Session {
    pub(super) fn new(
        id: String,
        pid: i32,
        stdin: mpsc::Sender<Bytes>,
        stop: oneshot::Sender<ExitReason>,
    ) -> Self {
        Self {
            id,
            pid,
            stdin,
            routes: Mutex::default(),
            last_used: Mutex::new(Instant::now()),
            stop: Mutex::new(Some(stop)),
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Unused since `since`, and no request waiting for its response.
    pub(super) fn idle_since(&self, since: Instant) -> bool {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) < since
            && self.routes().pending.is_empty()
    }

    /// Asks the supervisor to end the child (the first reason given wins).
    pub(super) fn stop(&self, reason: ExitReason) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(reason);
        }
    }

    /// Writes one message line to the child's stdin (waits while its pipe is full).
    pub(super) async fn write(&self, line: Bytes) -> Result<(), Refused> {
        self.stdin.send(line).await.map_err(|_| Refused::Closed)
    }

    /// Routes the responses to these requests (id, progress token) to `tx`.
    pub(super) fn expect(
        &self,
        requests: &[(String, Option<String>)],
        tx: &StreamTx,
    ) -> Result<(), Refused> {
        let mut routes = self.routes();
        if routes.closed {
            return Err(Refused::Closed);
        }
        for (i, (id, _)) in requests.iter().enumerate() {
            let twice = requests[..i].iter().any(|(other, _)| other == id);
            if twice || routes.pending.iter().any(|(p, _)| p == id) {
                return Err(Refused::DuplicateId(id.clone()));
            }
        }
        for (id, token) in requests {
            routes.pending.push_back((id.clone(), tx.clone()));
            if let Some(token) = token {
                routes.tokens.insert(token.clone(), id.clone());
            }
        }
        Ok(())
    }

    /// Opens the GET stream: what waited in the backlog, and the channel for what follows.
    pub(super) fn open_get(&self, tx: StreamTx) -> Result<Vec<Bytes>, Refused> {
        let mut routes = self.routes();
        if routes.closed {
            return Err(Refused::Closed);
        }
        if routes.get.as_ref().is_some_and(|g| !g.is_closed()) {
            return Err(Refused::StreamOpen);
        }
        routes.get = Some(tx);
        Ok(routes.backlog.drain(..).collect())
    }

    /// Sends one message from the child to the stream it belongs to (waits while that stream
    /// is full: a child that writes faster than its client reads is slowed, not buffered).
    pub(super) async fn deliver(&self, line: &Bytes, msg: &Message) {
        let event = sse_event(line);
        let target = {
            let mut routes = self.routes();
            match msg.kind {
                Kind::Response => msg.id.as_ref().and_then(|id| routes.answer(id)),
                Kind::Notification | Kind::Request => routes.related(msg),
            }
        };
        match target {
            Some(tx) => {
                if let Err(unsent) = tx.send(event).await {
                    if msg.kind != Kind::Response {
                        self.routes().hold(unsent.0);
                    }
                }
            }
            None if msg.kind == Kind::Response => {
                tracing::debug!(session = %self.id, id = ?msg.id, "stdio: response to no request in flight; dropped");
            }
            None => self.routes().hold(event),
        }
    }

    /// The child is gone: every request still waiting gets a JSON-RPC error, and every stream
    /// ends (their senders are dropped here).
    pub(super) async fn close(&self, why: &str) {
        let (pending, _get) = {
            let mut routes = self.routes();
            routes.closed = true;
            routes.tokens.clear();
            routes.backlog.clear();
            (std::mem::take(&mut routes.pending), routes.get.take())
        };
        for (id, tx) in pending {
            let body = error_line(&id, why);
            let _ = tx.send(sse_event(body.as_bytes())).await;
        }
    }
}

/// A JSON-RPC error response for request `id` (JSON text).
fn error_line(id: &str, message: &str) -> String {
    let id: serde_json::Value = serde_json::from_str(id).unwrap_or(serde_json::Value::Null);
    serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": message}})
        .to_string()
}

// === impl Routes ===

impl Routes {
    /// The stream of request `id`, which is answered now.
    fn answer(&mut self, id: &str) -> Option<StreamTx> {
        let at = self.pending.iter().position(|(p, _)| p == id)?;
        let (_, tx) = self.pending.remove(at)?;
        self.tokens.retain(|_, request| request != id);
        Some(tx)
    }

    /// The stream a notification or server request belongs to (`None`: the backlog).
    fn related(&mut self, msg: &Message) -> Option<StreamTx> {
        let by_token = msg
            .progress_token
            .as_ref()
            .filter(|_| msg.method.as_deref() == Some("notifications/progress"))
            .and_then(|token| self.tokens.get(token))
            .and_then(|id| self.pending.iter().find(|(p, _)| p == id));
        if let Some((_, tx)) = by_token.or(self.pending.front()) {
            return Some(tx.clone());
        }
        self.get.clone().filter(|g| !g.is_closed())
    }

    fn hold(&mut self, event: Bytes) {
        if self.closed {
            return;
        }
        if self.backlog.len() == BACKLOG {
            self.backlog.pop_front();
            tracing::warn!("stdio: no GET stream for server messages; the oldest was dropped");
        }
        self.backlog.push_back(event);
    }
}
