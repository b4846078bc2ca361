//! One child process: started for a session or a shared pool, its pipes served by three tasks (stdin writer,
//! stdout router, stderr logger), and a supervisor that ends it and its session together.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustix::process::Signal;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::lines::{split, Line, LineReader, Message};
use super::process::{self, signal_group, ProcessGroups, KILL_GRACE};
use super::session::{ExitReason, Session};
use super::shared::SharedChild;
use super::BridgeState;

/// Lines written to the child's stdin that may wait for its pipe.
const STDIN_QUEUE: usize = 64;
/// How long the supervisor waits, after the child exited, for the rest of its stdout.
const STDOUT_DRAIN: Duration = Duration::from_secs(1);
/// Lines of stderr (and skipped stdout lines) logged per child per second; the rest counted.
const LOG_LINES_PER_SECOND: u32 = 20;
/// Longest stderr line logged (longer ones are skipped, and said so).
const MAX_STDERR_LINE: usize = 8 << 10;

/// Why no child was started.
#[derive(Debug)]
pub(super) enum SpawnError {
    /// `max_children` are alive.
    AtCapacity,
    /// `spawn_rate` allows the next start after this.
    RateLimited(Duration),
    Io(std::io::Error),
}

/// What a child's stdout feeds: one session's streams, or a shared pool's clients.
#[derive(Clone)]
pub(super) enum Sink {
    Session(Arc<Session>),
    Shared(Arc<SharedChild>),
}

/// What a sink is built from.
pub(super) struct Pipes {
    pub pid: i32,
    pub stdin: mpsc::Sender<Bytes>,
    pub stop: oneshot::Sender<ExitReason>,
}

// === impl Sink ===

impl Sink {
    fn pid(&self) -> i32 {
        match self {
            Self::Session(s) => s.pid,
            Self::Shared(c) => c.pid,
        }
    }

    fn stop(&self, reason: ExitReason) {
        match self {
            Self::Session(s) => s.stop(reason),
            Self::Shared(c) => c.stop(reason),
        }
    }

    async fn deliver(&self, line: &Bytes, msg: &Message) {
        match self {
            Self::Session(s) => s.deliver(line, msg).await,
            Self::Shared(c) => c.deliver(line, msg).await,
        }
    }

    async fn close(&self, why: &str) {
        match self {
            Self::Session(s) => s.close(why).await,
            Self::Shared(c) => c.close(why).await,
        }
    }
}

/// Starts a child for a new session and registers the session under `id`.
pub(super) fn spawn_session(
    state: &Arc<BridgeState>,
    id: String,
) -> Result<Arc<Session>, SpawnError> {
    let mut made = None;
    spawn(state, |pipes| {
        let session = Arc::new(Session::new(id, pipes.pid, pipes.stdin, pipes.stop));
        made = Some(session.clone());
        Sink::Session(session)
    })?;
    made.ok_or_else(|| SpawnError::Io(std::io::Error::other("no session built")))
}

/// Starts a child (within `max_children` and the spawn rate), its sink built by `make`.
pub(super) fn spawn(
    state: &Arc<BridgeState>,
    make: impl FnOnce(Pipes) -> Sink,
) -> Result<Sink, SpawnError> {
    let max = state.settings.upstream.max_children;
    state
        .live
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .map_err(|_| {
            let name = &state.settings.name;
            state.metrics.spawn_refused(name, "max_children");
            SpawnError::AtCapacity
        })?;
    let allowed = match &state.spawn_rate {
        _ if state.closing.load(Ordering::Acquire) => Err(SpawnError::Io(std::io::Error::other(
            "the proxy is shutting down",
        ))),
        Some(limiter) => limiter.check(&()).map_err(|wait| {
            state
                .metrics
                .spawn_refused(&state.settings.name, "spawn_rate");
            SpawnError::RateLimited(wait)
        }),
        None => Ok(()),
    };
    if let Err(e) = allowed {
        state.live.fetch_sub(1, Ordering::AcqRel);
        return Err(e);
    }
    let mut child = match process::command(&state.settings.upstream).spawn() {
        Ok(child) => child,
        Err(e) => {
            state.live.fetch_sub(1, Ordering::AcqRel);
            return Err(SpawnError::Io(e));
        }
    };
    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (Some(pid), (Some(stdin), Some(stdout), Some(stderr))) = (child.id(), pipes) else {
        state.live.fetch_sub(1, Ordering::AcqRel);
        return Err(SpawnError::Io(std::io::Error::other("child without pipes")));
    };
    let pid = pid as i32;
    let guard = GroupGuard {
        pgid: pid,
        groups: state.groups.clone(),
    };
    state.groups.insert(pid);
    state.metrics.child_started(&state.settings.name);
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    let (stop_tx, stop_rx) = oneshot::channel();
    let sink = Arc::new(make(Pipes {
        pid,
        stdin: stdin_tx,
        stop: stop_tx,
    }));
    let name = state.settings.name.clone();
    tokio::spawn(write_stdin(stdin_rx, stdin));
    let reader = tokio::spawn(read_stdout(
        sink.clone(),
        stdout,
        state.settings.max_line,
        name.clone(),
    ));
    tokio::spawn(log_stderr(stderr, name, pid));
    if let Sink::Session(session) = &*sink {
        state.insert(session.id.clone(), session.clone());
    }
    tokio::spawn(supervise(
        state.clone(),
        sink.clone(),
        child,
        stop_rx,
        reader,
        guard,
    ));
    tracing::debug!(upstream = %state.settings.name, pid, "stdio child started");
    Ok((*sink).clone())
}

/// Ends the child's process group when the supervisor ends, however it ends (a dropped task
/// included): SIGKILL reaches whatever the child started and left behind.
struct GroupGuard {
    pgid: i32,
    groups: ProcessGroups,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.pgid, Signal::KILL);
        self.groups.remove(self.pgid);
    }
}

/// Waits for the child to exit or to be asked to stop; then ends the session with it.
async fn supervise(
    state: Arc<BridgeState>,
    session: Arc<Sink>,
    mut child: Child,
    stop: oneshot::Receiver<ExitReason>,
    reader: tokio::task::JoinHandle<()>,
    guard: GroupGuard,
) {
    let reason = tokio::select! {
        status = child.wait() => match status {
            Ok(s) if s.success() => ExitReason::Exited,
            _ => ExitReason::Crashed,
        },
        Ok(reason) = stop => {
            // A closed stdout is most often a child on its way out: give it a moment.
            let exited = match reason {
                ExitReason::StdoutClosed => {
                    tokio::time::timeout(STDOUT_DRAIN, child.wait()).await.ok()
                }
                _ => None,
            };
            let status = match exited {
                Some(status) => status.ok(),
                None => {
                    signal_group(session.pid(), Signal::TERM);
                    match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                        Ok(status) => status.ok(),
                        Err(_) => {
                            signal_group(session.pid(), Signal::KILL);
                            child.wait().await.ok()
                        }
                    }
                }
            };
            // A child whose stdout closed ends as its exit status says (a crash must not
            // count as a closed stdout, however late its exit is seen); one ended by our
            // signal keeps the reason it was stopped for.
            match (reason, status.and_then(|s| s.code())) {
                (ExitReason::StdoutClosed, Some(0)) => ExitReason::Exited,
                (ExitReason::StdoutClosed, Some(_)) => ExitReason::Crashed,
                _ => reason,
            }
        }
    };
    // What the child wrote before it ended still reaches its streams.
    let _ = tokio::time::timeout(STDOUT_DRAIN, reader).await;
    drop(guard);
    if let Sink::Session(s) = &*session {
        state.remove(&s.id);
    }
    let why = match reason {
        ExitReason::Exited | ExitReason::Crashed | ExitReason::StdoutClosed => {
            "MCP server process exited"
        }
        _ => "MCP server process stopped",
    };
    session.close(why).await;
    state.live.fetch_sub(1, Ordering::AcqRel);
    state.metrics.child_ended(&state.settings.name, reason);
    tracing::info!(upstream = %state.settings.name, pid = session.pid(), reason = reason.label(), "stdio child ended");
    if let Sink::Shared(child) = &*session {
        child.ended(reason);
    }
}

async fn write_stdin(mut lines: mpsc::Receiver<Bytes>, mut stdin: ChildStdin) {
    while let Some(line) = lines.recv().await {
        let written = async {
            stdin.write_all(&line).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        if written.await.is_err() {
            return;
        }
    }
}

/// Routes every JSON-RPC line; other lines are logged (rate-limited) and skipped.
async fn read_stdout(session: Arc<Sink>, stdout: ChildStdout, max: usize, name: String) {
    let mut lines = LineReader::new(BufReader::new(stdout), max);
    let mut limit = LogLimit::default();
    loop {
        match lines.next().await {
            Ok(Some(Line::Text(text))) => match split(&text) {
                Some(messages) => {
                    for (line, msg) in &messages {
                        session.deliver(line, msg).await;
                    }
                }
                None if limit.allow() => {
                    let shown = String::from_utf8_lossy(&text[..text.len().min(200)]);
                    tracing::warn!(upstream = %name, pid = session.pid(), line = %shown, "stdio: stdout line is not JSON-RPC; skipped");
                }
                None => {}
            },
            Ok(Some(Line::TooLong)) => {
                tracing::warn!(upstream = %name, pid = session.pid(), max, "stdio: stdout line longer than limits.max_sse_event; skipped");
            }
            Ok(None) | Err(_) => break,
        }
    }
    session.stop(ExitReason::StdoutClosed);
}

async fn log_stderr(stderr: ChildStderr, name: String, pid: i32) {
    let mut lines = LineReader::new(BufReader::new(stderr), MAX_STDERR_LINE);
    let mut limit = LogLimit::default();
    while let Ok(Some(line)) = lines.next().await {
        if !limit.allow() {
            continue;
        }
        match line {
            Line::Text(text) => {
                tracing::info!(target: "shadowcat::stdio", upstream = %name, pid, line = %String::from_utf8_lossy(&text), "stderr");
            }
            Line::TooLong => {
                tracing::info!(target: "shadowcat::stdio", upstream = %name, pid, "stderr line too long; skipped");
            }
        }
    }
}

/// At most [`LOG_LINES_PER_SECOND`] lines a second; the first line of the next second says
/// how many were not logged.
#[derive(Default)]
struct LogLimit {
    window: Option<Instant>,
    count: u32,
    dropped: u64,
}

impl LogLimit {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self
            .window
            .is_none_or(|w| now.duration_since(w) >= Duration::from_secs(1))
        {
            if self.dropped > 0 {
                tracing::warn!(lines = self.dropped, "stdio: lines not logged (rate limit)");
            }
            self.window = Some(now);
            self.count = 0;
            self.dropped = 0;
        }
        self.count += 1;
        if self.count > LOG_LINES_PER_SECOND {
            self.dropped += 1;
            return false;
        }
        true
    }
}
