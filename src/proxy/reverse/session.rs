//! Proxy-owned MCP sessions: downstream id ↔ (upstream, upstream session id).
//!
//! The proxy mints its own `Mcp-Session-Id` for every session an upstream creates, so clients
//! never see (or guess) an upstream's ids, a session stays pinned to the upstream that made it,
//! and the proxy can answer 404 for a session it knows is gone without asking anyone.
//!
//! Layout: two sharded maps, forward (downstream id → [`Session`]) and reverse ((upstream,
//! upstream id) → downstream id). Each shard is an `ArcSwap<HashMap>`: a read is a lock-free
//! snapshot load, a write clones one shard and swaps it in (`rcu`, so concurrent writers retry
//! rather than lose updates). Many small shards keep that clone cheap as the table grows (see
//! `benches/sessions.rs`). The two maps are not swapped together: inserts write forward before
//! reverse and removals the other way round, so every downstream id found in the reverse map
//! is live in the forward one.
//!
//! `last_seen` is an atomic inside the shared [`Session`], so touching a session on every
//! request never rewrites a shard. Time comes from tokio's clock, so tests can pause it.
//!
//! An upstream id maps to one session at a time (claimed with a check in the same swap, so
//! racing `initialize` answers cannot share one), and is handed over only to a new session of
//! the same identified principal (an upstream that restarted and reuses ids), never to another
//! client's: anonymous clients are not known to be one client. Per-client caps ([`Quota`]) go
//! with the place ([`SessionTable::reserve`]) and come back however the session ends.
//! No Pingora here.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use super::principal::{principal_of, principal_of_certificate, Principal};
pub use super::session_keys::mint_id;
use super::session_keys::{encode_id, shards, Key, KeyHasher, Shard, ID_BYTES, SHARDS};
use super::session_quota::{Cap, ClientNet, Owners, Quota};

/// A session the proxy issued.
#[derive(Debug)]
pub struct Session {
    /// The id the client sees.
    pub id: Arc<str>,
    /// Index of the upstream that owns the session.
    pub upstream: usize,
    /// The upstream's own session id; never sent downstream.
    pub upstream_id: Arc<str>,
    pub principal: Option<Principal>,
    /// The client network the session counts against (`sessions.max_per_ip`), if any.
    pub net: Option<ClientNet>,
    pub created: Instant,
    /// Milliseconds since the table's origin.
    last_seen: AtomicU64,
    /// Requests of this session in flight (its open SSE streams among them).
    active: AtomicUsize,
    /// Its SSE streams, with their replay buffers (allocates nothing until a stream opens).
    pub streams: super::streams::StreamHub,
}

impl Session {
    fn owners(&self) -> Owners {
        Owners {
            principal: self.principal,
            net: self.net,
        }
    }

    /// Counts one more request in flight until the guard drops; returns the count with it.
    pub fn enter(self: &Arc<Self>) -> (ActiveGuard, usize) {
        let now = self.active.fetch_add(1, Ordering::AcqRel) + 1;
        (ActiveGuard(self.clone()), now)
    }
}

/// One request in flight within a session.
#[derive(Debug)]
pub struct ActiveGuard(Arc<Session>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// `sessions.max` reached.
    Full,
    /// The client is at `sessions.max_per_principal` or `sessions.max_per_ip`.
    Capped(Cap),
    /// The upstream id is mapped to a live session of another principal (or of an anonymous
    /// client): it is never handed over.
    Conflict,
    /// The operating system's random source failed.
    NoRandomness,
    /// A sealed id already held in the table (or one that is no id at all).
    Exists,
}

type Forward = HashMap<Key, Arc<Session>, BuildHasherDefault<KeyHasher>>;
type Reverse = HashMap<(usize, Arc<str>), Key>;

/// The session table. See the module docs.
#[derive(Debug)]
pub struct SessionTable {
    forward: Box<[Shard<Forward>]>,
    reverse: Box<[Shard<Reverse>]>,
    hasher: RandomState,
    len: AtomicUsize,
    per_upstream: Box<[AtomicUsize]>,
    max: usize,
    quota: Quota,
    origin: Instant,
}

// === impl SessionTable ===

impl SessionTable {
    /// A table for at most `max` sessions over `upstreams` upstreams, with no per-client cap.
    pub fn new(max: usize, upstreams: usize) -> Self {
        Self {
            forward: shards(),
            reverse: shards(),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
            per_upstream: (0..upstreams).map(|_| AtomicUsize::new(0)).collect(),
            max,
            quota: Quota::new(usize::MAX, usize::MAX),
            origin: Instant::now(),
        }
    }

    /// Caps the sessions of one principal and of one client network.
    pub fn with_caps(mut self, per_principal: usize, per_ip: usize) -> Self {
        self.quota = Quota::new(per_principal, per_ip);
        self
    }

    fn reverse_shard(&self, key: &(usize, Arc<str>)) -> usize {
        // High bits: the maps inside use the same hasher's low bits for their buckets.
        (self.hasher.hash_one(key) >> 32) as usize & (SHARDS - 1)
    }

    fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_millis() as u64
    }

    /// Holds a place for one session of `owners`, so a client at its cap (checked first: the
    /// client is told it is the one to back off) or a full table is known before any upstream
    /// is asked.
    pub fn reserve(self: &Arc<Self>, owners: Owners) -> Result<Reservation, InsertError> {
        self.quota.acquire(&owners).map_err(InsertError::Capped)?;
        if self.len.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.len.fetch_sub(1, Ordering::AcqRel);
            self.quota.release(&owners);
            return Err(InsertError::Full);
        }
        Ok(Reservation {
            table: self.clone(),
            owners,
            live: true,
        })
    }

    /// Reserves and creates in one step (no client network counted).
    pub fn insert(
        self: &Arc<Self>,
        upstream: usize,
        upstream_id: &str,
        principal: Option<Principal>,
    ) -> Result<Arc<Session>, InsertError> {
        let owners = Owners {
            principal,
            net: None,
        };
        Ok(self.reserve(owners)?.commit(upstream, upstream_id, None)?.0)
    }

    /// Takes in a session another replica created, known by its sealed id (opened and checked
    /// by the caller): counted in the table and against its owners, but never refused by a
    /// per-client cap (the session exists already; only a full table refuses it). Two requests
    /// adopting one id at once get the same session.
    pub fn adopt(
        self: &Arc<Self>,
        id: &str,
        upstream: usize,
        upstream_id: &str,
        principal: Option<Principal>,
    ) -> Result<Arc<Session>, InsertError> {
        if let Some(s) = self.get(id) {
            return Ok(s);
        }
        let owners = Owners {
            principal,
            net: None,
        };
        if self.len.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(InsertError::Full);
        }
        self.quota.add(&owners);
        let reservation = Reservation {
            table: self.clone(),
            owners,
            live: true,
        };
        match reservation.commit(upstream, upstream_id, Some(id.into())) {
            Ok((s, _)) => Ok(s),
            Err(InsertError::Exists) => self.get(id).ok_or(InsertError::Exists),
            Err(e) => Err(e),
        }
    }

    /// Sessions counted for `owners`' principal and client network.
    pub fn counts(&self, owners: &Owners) -> (usize, usize) {
        self.quota.counts(owners)
    }

    /// Fills a reserved place. Returns the new session, and the session it evicted: a stale
    /// session of the same identified principal whose upstream id the upstream issued again
    /// (it restarted and counts ids from the start). A live mapping of anyone else is never
    /// taken over: [`InsertError::Conflict`], and that session keeps its mapping.
    fn commit(
        &self,
        upstream: usize,
        upstream_id: &str,
        owners: Owners,
        sealed: Option<Arc<str>>,
    ) -> Result<(Arc<Session>, Option<Arc<Session>>), InsertError> {
        let (down, session) = self.link_forward(upstream, upstream_id, owners, sealed)?;
        let key = (upstream, session.upstream_id.clone());
        let mut evicted = None;
        // Each round maps the id, refuses, or evicts one stale session and tries again.
        for _ in 0..4 {
            let Some(holder) = self.claim_reverse(&key, down) else {
                if let Some(n) = self.per_upstream.get(upstream) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                return Ok((session, evicted));
            };
            match self.forward[holder.shard()].0.load().get(&holder).cloned() {
                // Removed since the claim looked: try again.
                None => {}
                Some(old) if owners.principal.is_some() && old.principal == owners.principal => {
                    evicted = self.remove(&old.id).or(evicted);
                }
                Some(_) => break,
            }
        }
        self.unlink_forward(down);
        Err(InsertError::Conflict)
    }

    /// Maps `key` to `down` unless a live session holds it (then: its key). An entry without a
    /// forward one is a removal in progress (removals go forward first), and is replaced.
    fn claim_reverse(&self, key: &(usize, Arc<str>), down: Key) -> Option<Key> {
        let mut holder = None;
        self.reverse[self.reverse_shard(key)].0.rcu(|map| {
            holder = map
                .get(key)
                .copied()
                .filter(|old| self.forward[old.shard()].0.load().contains_key(old));
            if holder.is_some() {
                return Arc::clone(map);
            }
            let mut map = Reverse::clone(map);
            map.insert(key.clone(), down);
            Arc::new(map)
        });
        holder
    }

    /// Undoes [`Self::link_forward`] for a session that was never mapped (nobody knows its id).
    fn unlink_forward(&self, down: Key) {
        self.forward[down.shard()].0.rcu(|map| {
            let mut map = Forward::clone(map);
            map.remove(&down);
            map
        });
    }

    /// A new session under a fresh downstream id, in the forward map only.
    /// `sealed`: the session's id, sealed by the caller (else a random one is minted here).
    fn link_forward(
        &self,
        upstream: usize,
        upstream_id: &str,
        owners: Owners,
        sealed: Option<Arc<str>>,
    ) -> Result<(Key, Arc<Session>), InsertError> {
        loop {
            let (key, id) = match &sealed {
                Some(id) => (Key::parse(id).ok_or(InsertError::Exists)?, id.clone()),
                None => {
                    let mut bytes = [0u8; ID_BYTES];
                    getrandom::fill(&mut bytes).map_err(|_| InsertError::NoRandomness)?;
                    let id: Arc<str> = encode_id(&bytes).into();
                    (Key(bytes), id)
                }
            };
            let session = Arc::new(Session {
                id: id.clone(),
                upstream,
                upstream_id: upstream_id.into(),
                principal: owners.principal,
                net: owners.net,
                created: Instant::now(),
                last_seen: AtomicU64::new(self.now_ms()),
                active: AtomicUsize::new(0),
                streams: Default::default(),
            });
            // 256 random bits do not collide; the check costs one lookup and makes it certain.
            let shard = &self.forward[key.shard()].0;
            let mut fresh = false;
            shard.rcu(|map| {
                let mut map = Forward::clone(map);
                fresh = !map.contains_key(&key);
                if fresh {
                    map.insert(key, session.clone());
                }
                map
            });
            if fresh {
                return Ok((key, session));
            }
            if sealed.is_some() {
                // A sealed id is the caller's: held already (adopted by a concurrent request).
                return Err(InsertError::Exists);
            }
        }
    }

    /// The session with this downstream id.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let key = Key::parse(id)?;
        self.forward[key.shard()].0.load().get(&key).cloned()
    }

    /// The downstream id of an upstream's session.
    pub fn downstream_id(&self, upstream: usize, upstream_id: &str) -> Option<Arc<str>> {
        let key = (upstream, Arc::<str>::from(upstream_id));
        let down = *self.reverse[self.reverse_shard(&key)].0.load().get(&key)?;
        self.forward[down.shard()]
            .0
            .load()
            .get(&down)
            .map(|s| s.id.clone())
    }

    /// Removes a session; `None` when it was already gone (so each removal is counted once).
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let key = Key::parse(id)?;
        let shard = &self.forward[key.shard()].0;
        if !shard.load().contains_key(&key) {
            return None;
        }
        let mut removed = None;
        shard.rcu(|map| {
            let mut map = Forward::clone(map);
            removed = map.remove(&key);
            map
        });
        let session = removed?;
        let down = key;
        let key = (session.upstream, session.upstream_id.clone());
        // Only this session's entry: the id may be mapped to a newer session already.
        self.reverse[self.reverse_shard(&key)].0.rcu(|map| {
            if map.get(&key) != Some(&down) {
                return Arc::clone(map);
            }
            let mut map = Reverse::clone(map);
            map.remove(&key);
            Arc::new(map)
        });
        self.len.fetch_sub(1, Ordering::AcqRel);
        self.quota.release(&session.owners());
        if let Some(n) = self.per_upstream.get(session.upstream) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
        Some(session)
    }

    /// Marks a session used now.
    pub fn touch(&self, session: &Session) {
        session.last_seen.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long a session has been unused.
    pub fn idle_for(&self, session: &Session) -> Duration {
        let seen = session.last_seen.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(seen))
    }

    /// Removes every session unused for `idle` or longer and returns them.
    pub fn expire_idle(&self, idle: Duration) -> Vec<Arc<Session>> {
        let mut expired = Vec::new();
        for shard in self.forward.iter() {
            let stale: Vec<Arc<str>> = shard
                .0
                .load()
                .values()
                .filter(|s| self.idle_for(s) >= idle)
                .map(|s| s.id.clone())
                .collect();
            expired.extend(stale.iter().filter_map(|id| self.remove(id)));
        }
        expired
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions held by one upstream (for `least_sessions`).
    pub fn sessions_on(&self, upstream: usize) -> usize {
        self.per_upstream
            .get(upstream)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }
}

/// A place in the table (and in its owners' caps) held for a session being created; released
/// on drop unless committed.
#[derive(Debug)]
pub struct Reservation {
    table: Arc<SessionTable>,
    owners: Owners,
    live: bool,
}

impl Reservation {
    /// Creates the session for the reservation's owners (see [`SessionTable::commit`] for the
    /// evicted one and for conflicts).
    /// `sealed`: the id the client gets, sealed by the caller; `None`: a random one.
    pub fn commit(
        mut self,
        upstream: usize,
        upstream_id: &str,
        sealed: Option<Arc<str>>,
    ) -> Result<(Arc<Session>, Option<Arc<Session>>), InsertError> {
        let result = self
            .table
            .commit(upstream, upstream_id, self.owners, sealed);
        // On success the place is the session's; on failure Drop gives it back.
        self.live = result.is_err();
        result
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.live {
            self.table.len.fetch_sub(1, Ordering::AcqRel);
            self.table.quota.release(&self.owners);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
