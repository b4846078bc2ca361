//! One child of a shared pool: initialized by the proxy itself, then serving the requests of
//! many clients at once, with every id rewritten so that nothing collides and every message
//! reaches the client it belongs to.
//!
//! * **Requests** get the child's own id, a number this child never used before; the client's
//!   id is kept beside it and put back on the response. A progress token becomes `"p<n>"`
//!   (`n` the request's child id), so two clients' equal tokens stay apart.
//! * **Responses** go to the stream of the request with that child id; progress
//!   notifications to the stream of the request their token names.
//! * **Other notifications and server-to-client requests** go to the oldest request in flight
//!   on this child when every request in flight has one owner (one session, or one sessionless
//!   request); with none in flight a notification goes to every session's GET stream
//!   ([`Clients::broadcast`]). With requests of several owners in flight nobody can tell whose
//!   it is: a notification is dropped (never shown to a client it may not belong to), a
//!   server request is answered with a JSON-RPC error.
//! * **Server requests** reach a session with a bridge-wide id `"s<n>"`; its response, POSTed by
//!   that session only, goes back to this child with the child's own id
//!   ([`ServerRequests`]).
//!   A sessionless (2026-07-28) client cannot answer one (it never POSTs responses), so the
//!   child gets an error at once.
//! * A client that leaves a request's stream (in 2026-07-28 that cancels it) makes the bridge
//!   send `notifications/cancelled` for it ([`SharedChild::abandon`]).
//! * One reader serves the child's stdout, and it waits while the stream a message is bound
//!   for is full (64 events): a client that does not read slows the child's other clients
//!   rather than make the proxy buffer without bound.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::clients::{ClientSession, Clients};
use super::lines::{sse_event, Kind, Message};
use super::rewrite::{self, CANCELLED_ID, NOTIFICATION_TOKEN, REQUEST_TOKEN};
use super::server_requests::ServerRequests;
use super::session::{ExitReason, StreamTx};

/// The protocol revision the proxy asks a shared child for (the newest with `initialize`).
pub(super) const CHILD_PROTOCOL: &str = "2025-11-25";

/// Whose request it is.
#[derive(Clone)]
pub(super) struct Owner {
    pub key: u64,
    /// The session, when the request came in one (it may answer server requests).
    pub session: Option<Arc<ClientSession>>,
}

enum Target {
    Stream(StreamTx),
    /// The proxy's own `initialize`.
    Init(oneshot::Sender<Bytes>),
}

struct Pending {
    /// The client's id (JSON text).
    id: String,
    /// The client's progress token (JSON text).
    token: Option<String>,
    target: Target,
    owner: Option<Owner>,
    /// A sessionless client's request: its answer is made a 2026-07-28 result (`Some`:
    /// whether the method's result is cacheable).
    modern: Option<bool>,
}

/// What the child answered to the proxy's `initialize`.
#[derive(Debug, Clone)]
pub(super) struct InitInfo {
    /// The revision the child chose.
    pub version: String,
    /// The whole `result`.
    pub result: Value,
}

/// Why the proxy's `initialize` failed.
#[derive(Debug)]
pub(super) enum InitError {
    Timeout,
    Exited,
    Refused(String),
}

/// Called once when the child has ended: its pid, why, and how long it lived.
pub(super) type OnEnd = Box<dyn FnOnce(i32, ExitReason, Duration) + Send>;

pub(super) struct SharedChild {
    pub pid: i32,
    started: Instant,
    /// When the last request was sent (for the idle sweep).
    last_used: Mutex<Instant>,
    stdin: mpsc::Sender<Bytes>,
    clients: Arc<Clients>,
    requests: Arc<ServerRequests>,
    next_id: AtomicU64,
    routes: Mutex<Routes>,
    stop: Mutex<Option<oneshot::Sender<ExitReason>>>,
    init: OnceLock<InitInfo>,
    on_end: Mutex<Option<OnEnd>>,
}

#[derive(Default)]
struct Routes {
    closed: bool,
    /// By the child's id: requests waiting for their response, oldest first.
    pending: BTreeMap<u64, Pending>,
}

// === impl SharedChild ===

impl SharedChild {
    pub(super) fn new(
        pid: i32,
        stdin: mpsc::Sender<Bytes>,
        stop: oneshot::Sender<ExitReason>,
        clients: Arc<Clients>,
        requests: Arc<ServerRequests>,
        on_end: OnEnd,
    ) -> Self {
        Self {
            pid,
            started: Instant::now(),
            last_used: Mutex::new(Instant::now()),
            stdin,
            clients,
            requests,
            next_id: AtomicU64::new(1),
            routes: Mutex::default(),
            stop: Mutex::new(Some(stop)),
            init: OnceLock::new(),
            on_end: Mutex::new(Some(on_end)),
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests waiting for their response.
    pub(super) fn in_flight(&self) -> usize {
        self.routes().pending.len()
    }

    /// No request since `since`, and none in flight.
    pub(super) fn idle_since(&self, since: Instant) -> bool {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) < since && self.in_flight() == 0
    }

    pub(super) fn is_open(&self) -> bool {
        !self.routes().closed
    }

    pub(super) fn init_info(&self) -> Option<&InitInfo> {
        self.init.get()
    }

    /// Asks the supervisor to end the child (the first reason given wins).
    pub(super) fn stop(&self, reason: ExitReason) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(reason);
        }
    }

    async fn write(&self, line: Bytes) -> bool {
        self.stdin.send(line).await.is_ok()
    }

    /// The proxy's own handshake: `initialize`, then `notifications/initialized`.
    pub(super) async fn initialize(&self, timeout: Duration) -> Result<(), InitError> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = self.routes();
            if routes.closed {
                return Err(InitError::Exited);
            }
            let pending = Pending {
                id: n.to_string(),
                token: None,
                target: Target::Init(tx),
                owner: None,
                modern: None,
            };
            routes.pending.insert(n, pending);
        }
        let request = json!({"jsonrpc": "2.0", "id": n, "method": "initialize", "params": {
            "protocolVersion": CHILD_PROTOCOL,
            "capabilities": {"sampling": {}, "elicitation": {}},
            "clientInfo": {"name": "shadowcat", "version": env!("CARGO_PKG_VERSION")},
        }});
        if !self.write(Bytes::from(request.to_string())).await {
            return Err(InitError::Exited);
        }
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(InitError::Exited),
            Err(_) => return Err(InitError::Timeout),
        };
        let mut answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let Some(result) = answer.get_mut("result").map(Value::take) else {
            let why = answer["error"]["message"].as_str().unwrap_or("no result");
            return Err(InitError::Refused(why.to_owned()));
        };
        let version = result["protocolVersion"]
            .as_str()
            .unwrap_or(CHILD_PROTOCOL)
            .to_owned();
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        if !self.write(Bytes::from_static(initialized.as_bytes())).await {
            return Err(InitError::Exited);
        }
        let _ = self.init.set(InitInfo { version, result });
        Ok(())
    }

    /// Sends a client's requests, each under a new child id, their answers bound for `tx`.
    /// The child ids, for [`Self::abandon`]; `None` when the child is gone.
    pub(super) async fn send(
        &self,
        requests: &[(Bytes, Message)],
        tx: &StreamTx,
        owner: &Owner,
    ) -> Option<Vec<u64>> {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut lines = Vec::with_capacity(requests.len());
        let mut ids = Vec::with_capacity(requests.len());
        {
            let mut routes = self.routes();
            if routes.closed {
                return None;
            }
            for (line, msg) in requests {
                let n = self.next_id.fetch_add(1, Ordering::Relaxed);
                let mut out = rewrite::with_id(line, &n.to_string())?;
                let token = msg.progress_token.clone().filter(|_| {
                    match rewrite::set(&out, REQUEST_TOKEN, &format!("\"p{n}\"")) {
                        Some(with_token) => {
                            out = with_token;
                            true
                        }
                        None => false,
                    }
                });
                let pending = Pending {
                    id: msg.id.clone().unwrap_or_else(|| "null".into()),
                    token,
                    target: Target::Stream(tx.clone()),
                    owner: Some(owner.clone()),
                    modern: owner.session.is_none().then(|| {
                        let method = msg.method.as_deref().unwrap_or_default();
                        rewrite::CACHEABLE.contains(&method)
                    }),
                };
                routes.pending.insert(n, pending);
                lines.push(out);
                ids.push(n);
            }
        }
        for line in lines {
            if !self.write(line).await {
                return None;
            }
        }
        Some(ids)
    }

    /// The client left these requests' stream: those still waiting are forgotten, and the
    /// child is told they are cancelled.
    pub(super) fn abandon(&self, ids: &[u64]) {
        let gone: Vec<u64> = {
            let mut routes = self.routes();
            ids.iter()
                .copied()
                .filter(|n| routes.pending.remove(n).is_some())
                .collect()
        };
        for n in gone {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": n, "reason": "the client left"}});
            let _ = self.stdin.try_send(Bytes::from(note.to_string()));
        }
    }

    /// A client's `notifications/cancelled` for its request `id`: passed on with the child's
    /// id, and the request's stream ended. `false` when it names no request of `owner` here.
    pub(super) async fn cancel(&self, owner: u64, line: &Bytes, id: &str) -> bool {
        let found = {
            let mut routes = self.routes();
            let n = routes.pending.iter().find_map(|(n, p)| {
                let mine = p.owner.as_ref().is_some_and(|o| o.key == owner);
                (mine && p.id == id).then_some(*n)
            });
            n.inspect(|n| {
                routes.pending.remove(n);
            })
        };
        let Some(n) = found else {
            return false;
        };
        match rewrite::set(line, CANCELLED_ID, &n.to_string()) {
            Some(line) => self.write(line).await,
            None => false,
        }
    }

    /// A client notification for the server as a whole (`roots/list_changed`, ...).
    pub(super) async fn notify(&self, line: Bytes) {
        self.write(line).await;
    }

    /// Sends one message from the child to where it belongs (see the module doc).
    pub(super) async fn deliver(self: &Arc<Self>, line: &Bytes, msg: &Message) {
        match msg.kind {
            Kind::Response => self.deliver_response(line, msg).await,
            Kind::Notification if msg.method.as_deref() == Some("notifications/progress") => {
                self.deliver_progress(line, msg).await
            }
            Kind::Notification | Kind::Request => self.deliver_related(line, msg).await,
        }
    }

    async fn deliver_response(&self, line: &Bytes, msg: &Message) {
        let n = msg.id.as_deref().and_then(|id| id.parse::<u64>().ok());
        let pending = n.and_then(|n| self.routes().pending.remove(&n));
        match pending {
            Some(Pending {
                target: Target::Init(tx),
                ..
            }) => {
                let _ = tx.send(line.clone());
            }
            Some(Pending {
                id,
                target: Target::Stream(tx),
                modern,
                ..
            }) => {
                let out = rewrite::with_id(line, &id);
                let out = match modern {
                    Some(cacheable) => out.and_then(|l| rewrite::as_2026(&l, cacheable)),
                    None => out,
                };
                if let Some(out) = out {
                    let _ = tx.send(sse_event(&out)).await;
                }
            }
            None => {
                tracing::debug!(pid = self.pid, id = ?msg.id, "stdio: response to no request in flight; dropped");
            }
        }
    }

    async fn deliver_progress(self: &Arc<Self>, line: &Bytes, msg: &Message) {
        let n = msg.progress_token.as_deref().and_then(|t| {
            t.strip_prefix("\"p")?
                .strip_suffix('"')?
                .parse::<u64>()
                .ok()
        });
        let target = n.and_then(|n| {
            let routes = self.routes();
            match routes.pending.get(&n) {
                Some(Pending {
                    token: Some(token),
                    target: Target::Stream(tx),
                    ..
                }) => Some((token.clone(), tx.clone())),
                _ => None,
            }
        });
        match target {
            Some((token, tx)) => {
                if let Some(out) = rewrite::set(line, NOTIFICATION_TOKEN, &token) {
                    let _ = tx.send(sse_event(&out)).await;
                }
            }
            None => self.deliver_related(line, msg).await,
        }
    }

    /// A notification or server request: to the one owner of what is in flight, if there is
    /// one; with nothing in flight, a notification goes to every session's GET stream.
    async fn deliver_related(self: &Arc<Self>, line: &Bytes, msg: &Message) {
        enum To {
            Request(StreamTx, Owner),
            Nobody,
            Several,
        }
        let to = {
            let routes = self.routes();
            let mut streams = routes.pending.values().filter_map(|p| match &p.target {
                Target::Stream(tx) => Some((tx, p.owner.as_ref()?)),
                Target::Init(_) => None,
            });
            match streams.next() {
                None => To::Nobody,
                Some((tx, owner)) => {
                    let mut rest = routes.pending.values().filter_map(|p| p.owner.as_ref());
                    match rest.all(|o| o.key == owner.key) {
                        true => To::Request(tx.clone(), owner.clone()),
                        false => To::Several,
                    }
                }
            }
        };
        let why = match (to, msg.kind) {
            (To::Request(tx, _), Kind::Notification) => {
                let _ = tx.send(sse_event(line)).await;
                return;
            }
            (To::Request(tx, owner), _) => match owner.session {
                Some(session) => {
                    let child_id = msg.id.clone().unwrap_or_default();
                    match self
                        .requests
                        .add(self.pid, &self.stdin, child_id, session.key)
                    {
                        Some(public) => {
                            if let Some(out) = rewrite::with_id(line, &public) {
                                let _ = tx.send(sse_event(&out)).await;
                            }
                            return;
                        }
                        None => "too many server requests wait for their clients' answers",
                    }
                }
                None => "a sessionless (2026-07-28) client cannot answer server requests",
            },
            (To::Nobody, Kind::Notification) => {
                self.clients.broadcast(&sse_event(line));
                return;
            }
            (To::Nobody, _) => "no client request is in flight to relate it to",
            (To::Several, Kind::Notification) => {
                tracing::debug!(pid = self.pid, method = ?msg.method, "stdio: notification while several clients' requests run on a shared child; dropped");
                return;
            }
            (To::Several, _) => "several clients' requests are in flight on this shared server",
        };
        let id: Value = msg
            .id
            .as_deref()
            .and_then(|id| serde_json::from_str(id).ok())
            .unwrap_or(Value::Null);
        let refusal = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603,
            "message": format!("shadowcat: server request not delivered: {why}")}});
        self.write(Bytes::from(refusal.to_string())).await;
    }

    /// The child is gone: every request still waiting gets a JSON-RPC error, and every
    /// stream ends.
    pub(super) async fn close(&self, why: &str) {
        let pending = {
            let mut routes = self.routes();
            routes.closed = true;
            std::mem::take(&mut routes.pending)
        };
        self.requests.forget(self.pid);
        for (_, p) in pending {
            if let Target::Stream(tx) = p.target {
                let id: Value = serde_json::from_str(&p.id).unwrap_or(Value::Null);
                let body =
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": why}});
                let _ = tx.send(sse_event(body.to_string().as_bytes())).await;
            }
        }
    }

    /// The supervisor's last word: tells the pool.
    pub(super) fn ended(&self, reason: ExitReason) {
        let on_end = self.on_end.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(on_end) = on_end {
            on_end(self.pid, reason, self.started.elapsed());
        }
    }
}
