//! The shared pool of a stdio upstream: `pool_size` slots, each holding at most one child the
//! proxy has initialized itself ([`SharedChild`]). It serves every client of a `mode: shared`
//! upstream, and the sessionless (2026-07-28) clients of a `per_session` one.
//!
//! * **Choice.** A request goes to the child with the fewest requests in flight; an empty
//!   slot is started when every child is busy (so the pool grows with the load, up to
//!   `pool_size`, and never past `max_children` children of the upstream in all).
//! * **Restarts.** A child that crashes or exits empties its slot; the slot may start again
//!   after a backoff that doubles with each failure in a row (250 ms up to 30 s; a child that
//!   lived [`STABLE`] resets it). In `mode: shared` the slot is restarted as soon as the
//!   backoff allows; a request that finds every slot waiting gets 503 with `Retry-After`.
//! * A slot's lock is held while its child starts, so concurrent requests wait for the one
//!   start (at most `timeouts.request`) instead of starting several.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::child::{spawn, Sink, SpawnError};
use super::clients::Clients;
use super::server_requests::ServerRequests;
use super::session::ExitReason;
use super::shared::{InitError, OnEnd, SharedChild};
use super::BridgeState;
use crate::config::StdioMode;

/// The first wait before a failed slot starts again; it doubles per failure in a row.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that lived this long before it ended was not failing: the backoff starts over.
pub(super) const STABLE: Duration = Duration::from_secs(10);

/// Why no pool child can take a request.
#[derive(Debug)]
pub(super) enum PoolError {
    /// The upstream has `max_children` children.
    AtCapacity,
    /// The spawn rate limit: the next start is allowed after this.
    RateLimited(Duration),
    /// Every slot waits to restart after failures; the first may in this long.
    Backoff(Duration),
    Spawn(std::io::Error),
    Init(InitError),
}

pub(super) struct Pool {
    slots: Vec<Arc<tokio::sync::Mutex<Slot>>>,
    pub clients: Arc<Clients>,
    pub requests: Arc<ServerRequests>,
}

#[derive(Default)]
struct Slot {
    child: Option<Arc<SharedChild>>,
    /// Failures in a row (crashes, exits, failed starts).
    failures: u32,
    not_before: Option<Instant>,
}

/// The wait after `failures` failures in a row.
pub(super) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
}

// === impl Pool ===

impl Pool {
    pub(super) fn new(size: usize) -> Self {
        Self {
            slots: (0..size.max(1)).map(|_| Arc::default()).collect(),
            clients: Arc::default(),
            requests: Arc::default(),
        }
    }

    /// The children running now (a slot being started is skipped).
    pub(super) fn children(&self) -> Vec<Arc<SharedChild>> {
        self.slots
            .iter()
            .filter_map(|slot| slot.try_lock().ok()?.child.clone())
            .filter(|c| c.is_open())
            .collect()
    }

    /// A child for a request: the least busy, or a new one when all are busy.
    pub(super) async fn child(state: &Arc<BridgeState>) -> Result<Arc<SharedChild>, PoolError> {
        let pool = &state.pool;
        let now = Instant::now();
        let mut best: Option<(usize, usize)> = None;
        let mut wait: Option<Duration> = None;
        for (i, slot) in pool.slots.iter().enumerate() {
            let cost = match slot.try_lock() {
                // Being started: worth waiting for only when nothing else is free.
                Err(_) => usize::MAX - 1,
                Ok(s) => match (&s.child, s.not_before) {
                    (Some(c), _) if c.is_open() => 2 * c.in_flight(),
                    (_, Some(t)) if t > now => {
                        wait = Some(wait.map_or(t - now, |w| w.min(t - now)));
                        continue;
                    }
                    _ => 1,
                },
            };
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, i));
            }
        }
        let Some((_, i)) = best else {
            return Err(PoolError::Backoff(wait.unwrap_or(BACKOFF_FIRST)));
        };
        let mut slot = pool.slots[i].clone().lock_owned().await;
        if let Some(child) = slot.child.as_ref().filter(|c| c.is_open()) {
            return Ok(child.clone());
        }
        // A task of its own: a client that leaves (the proxy's own deadline, say) must not
        // cancel a start halfway, leaving a child no slot knows of.
        let state = state.clone();
        let starting = tokio::spawn(async move { start(&state, i, &mut slot).await });
        match starting.await {
            Ok(started) => started,
            Err(e) => Err(PoolError::Spawn(std::io::Error::other(e.to_string()))),
        }
    }

    /// Starts slot `i` if it is empty and may start (`mode: shared` keeps its pool running).
    pub(super) async fn warm(state: &Arc<BridgeState>, i: usize) {
        let Some(slot) = state.pool.slots.get(i) else {
            return;
        };
        let mut slot = slot.lock().await;
        if slot.child.as_ref().is_some_and(|c| c.is_open()) {
            return;
        }
        if let Err(e) = start(state, i, &mut slot).await {
            tracing::warn!(upstream = %state.settings.name, slot = i, error = ?e, "stdio: shared child not started");
        }
    }

    /// Starts every slot (`mode: shared`, at start-up).
    pub(super) fn warm_all(state: &Arc<BridgeState>) {
        for i in 0..state.pool.slots.len() {
            let state = state.clone();
            tokio::spawn(async move { Pool::warm(&state, i).await });
        }
    }
}

/// Starts a child in slot `i` (whose lock the caller holds), unless it waits out a backoff.
async fn start(
    state: &Arc<BridgeState>,
    i: usize,
    slot: &mut Slot,
) -> Result<Arc<SharedChild>, PoolError> {
    if let Some(t) = slot.not_before {
        let now = Instant::now();
        if t > now {
            return Err(PoolError::Backoff(t - now));
        }
    }
    let weak = Arc::downgrade(state);
    let on_end: OnEnd = Box::new(move |pid, reason, lived| {
        if let Some(state) = weak.upgrade() {
            tokio::spawn(ended(state, i, pid, reason, lived));
        }
    });
    let (clients, requests) = (state.pool.clients.clone(), state.pool.requests.clone());
    let mut made = None;
    let spawned = spawn(state, |pipes| {
        let child = Arc::new(SharedChild::new(
            pipes.pid,
            pipes.stdin,
            pipes.stop,
            clients,
            requests,
            on_end,
        ));
        made = Some(child.clone());
        Sink::Shared(child)
    });
    let failed = |slot: &mut Slot| {
        slot.failures += 1;
        slot.not_before = Some(Instant::now() + backoff(slot.failures));
    };
    let child = match (spawned, made) {
        (Ok(_), Some(child)) => child,
        (Err(SpawnError::AtCapacity), _) => return Err(PoolError::AtCapacity),
        (Err(SpawnError::RateLimited(wait)), _) => return Err(PoolError::RateLimited(wait)),
        (Err(SpawnError::Io(e)), _) => {
            failed(slot);
            return Err(PoolError::Spawn(e));
        }
        (Ok(_), None) => return Err(PoolError::Spawn(std::io::Error::other("no child built"))),
    };
    match child.initialize(state.settings.init_timeout).await {
        Ok(()) if state.closing.load(Ordering::Acquire) => {
            child.stop(ExitReason::Shutdown);
            Err(PoolError::Init(InitError::Exited))
        }
        Ok(()) => {
            tracing::debug!(upstream = %state.settings.name, slot = i, pid = child.pid, "stdio: shared child ready");
            slot.child = Some(child.clone());
            Ok(child)
        }
        Err(e) => {
            child.stop(ExitReason::InitFailed);
            failed(slot);
            tracing::warn!(upstream = %state.settings.name, slot = i, error = ?e, "stdio: shared child did not initialize");
            Err(PoolError::Init(e))
        }
    }
}

/// A slot's child ended: the slot empties; after a failure it waits out its backoff, and in
/// `mode: shared` starts again then. (Boxed: a restart starts a child whose end calls this
/// again, and the compiler cannot see through that loop that the future is `Send`.)
fn ended(
    state: Arc<BridgeState>,
    i: usize,
    pid: i32,
    reason: ExitReason,
    lived: Duration,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(restart_after_end(state, i, pid, reason, lived))
}

async fn restart_after_end(
    state: Arc<BridgeState>,
    i: usize,
    pid: i32,
    reason: ExitReason,
    lived: Duration,
) {
    let Some(slot) = state.pool.slots.get(i) else {
        return;
    };
    let delay = {
        let mut slot = slot.lock().await;
        if slot.child.as_ref().is_none_or(|c| c.pid != pid) {
            return; // A child that never became ready: its start counted the failure.
        }
        slot.child = None;
        let failed = matches!(
            reason,
            ExitReason::Exited | ExitReason::Crashed | ExitReason::StdoutClosed
        );
        if !failed {
            return;
        }
        if lived >= STABLE {
            slot.failures = 0;
        }
        slot.failures += 1;
        let delay = backoff(slot.failures);
        slot.not_before = Some(Instant::now() + delay);
        delay
    };
    let shared = state.settings.upstream.mode == StdioMode::Shared;
    if shared && !state.closing.load(Ordering::Acquire) {
        tracing::info!(upstream = %state.settings.name, slot = i, after = ?delay, "stdio: restarting a shared child");
        tokio::time::sleep(delay).await;
        Pool::warm(&state, i).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(4), Duration::from_secs(2));
        assert_eq!(backoff(9), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
