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
//! No Pingora here.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Number of shards per map (a power of two). At a million sessions a write clones a shard of
/// about 120 entries; the shard arrays take 128 KiB and all start on one shared empty map.
const SHARDS: usize = 8192;

/// Random bytes in a minted session id: 256 bits, 43 base64url characters (visible ASCII).
const ID_BYTES: usize = 32;
const ID_CHARS: usize = 43;

/// Who created a session: a SHA-256 of the `Authorization` header value it was created with.
pub type Principal = [u8; 32];

/// The principal for a request's `Authorization` header (`None` without one).
pub fn principal_of(authorization: Option<&[u8]>) -> Option<Principal> {
    authorization.map(|v| Sha256::digest(v).into())
}

/// The principal for a verified client certificate's identity. The NUL bytes keep it apart
/// from every `Authorization` value (a header value cannot hold one), so no header can
/// claim a certificate's sessions.
pub fn principal_of_certificate(identity: &str) -> Principal {
    let mut h = Sha256::new();
    h.update(b"\0x509\0");
    h.update(identity.as_bytes());
    h.finalize().into()
}

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
    pub created: Instant,
    /// Milliseconds since the table's origin.
    last_seen: AtomicU64,
    /// Requests of this session in flight (its open SSE streams among them).
    active: AtomicUsize,
    /// Its SSE streams, with their replay buffers (allocates nothing until a stream opens).
    pub streams: super::streams::StreamHub,
}

impl Session {
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
    /// The operating system's random source failed.
    NoRandomness,
}

/// A downstream id, decoded: the 32 random bytes themselves. Keys live inline in the map (no
/// pointer to chase when comparing) and hash to their own bytes: every stored key is CSPRNG
/// output, so no input can make them collide, and a lookup costs no hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key([u8; ID_BYTES]);

impl Key {
    fn parse(id: &str) -> Option<Key> {
        let mut out = [0u8; ID_BYTES];
        (id.len() == ID_CHARS
            && base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode_slice(id, &mut out)
                .ok()?
                == ID_BYTES)
            .then_some(Key(out))
    }

    fn shard(&self) -> usize {
        usize::from(u16::from_le_bytes([self.0[0], self.0[1]])) & (SHARDS - 1)
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Bytes 8..16: independent of the shard bits (0..2).
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[8..16]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

/// Passes a [`Key`]'s own random bits through as its hash.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Key`; fold anything else in rather than drop it.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Forward = HashMap<Key, Arc<Session>, BuildHasherDefault<KeyHasher>>;
type Reverse = HashMap<(usize, Arc<str>), Key>;

/// One shard of a map. Not cache-line padded: reads dominate, and a compact array of shard
/// pointers stays in cache, which matters more than writers to neighbouring shards meeting.
#[derive(Debug)]
struct Shard<M>(ArcSwap<M>);

fn shards<M: Default>() -> Box<[Shard<M>]> {
    let empty = Arc::new(M::default());
    (0..SHARDS)
        .map(|_| Shard(ArcSwap::new(empty.clone())))
        .collect()
}

/// The session table. See the module docs.
#[derive(Debug)]
pub struct SessionTable {
    forward: Box<[Shard<Forward>]>,
    reverse: Box<[Shard<Reverse>]>,
    hasher: RandomState,
    len: AtomicUsize,
    per_upstream: Box<[AtomicUsize]>,
    max: usize,
    origin: Instant,
}

// === impl SessionTable ===

impl SessionTable {
    /// A table for at most `max` sessions over `upstreams` upstreams.
    pub fn new(max: usize, upstreams: usize) -> Self {
        Self {
            forward: shards(),
            reverse: shards(),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
            per_upstream: (0..upstreams).map(|_| AtomicUsize::new(0)).collect(),
            max,
            origin: Instant::now(),
        }
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

    /// Holds a place for one session, so a full table is known before any upstream is asked.
    pub fn reserve(self: &Arc<Self>) -> Result<Reservation, InsertError> {
        if self.len.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(InsertError::Full);
        }
        Ok(Reservation {
            table: self.clone(),
            live: true,
        })
    }

    /// Reserves and creates in one step.
    pub fn insert(
        self: &Arc<Self>,
        upstream: usize,
        upstream_id: &str,
        principal: Option<Principal>,
    ) -> Result<Arc<Session>, InsertError> {
        Ok(self.reserve()?.commit(upstream, upstream_id, principal)?.0)
    }

    /// Fills a reserved place. Returns the new session, and the session it evicted when the
    /// upstream reused an upstream id that was still mapped (an upstream that restarted and
    /// counts ids from the start again): the old mapping is stale, the new one wins.
    fn commit(
        &self,
        upstream: usize,
        upstream_id: &str,
        principal: Option<Principal>,
    ) -> Result<(Arc<Session>, Option<Arc<Session>>), InsertError> {
        let evicted = self
            .downstream_id(upstream, upstream_id)
            .and_then(|old| self.remove(&old));
        let session = loop {
            let mut bytes = [0u8; ID_BYTES];
            getrandom::fill(&mut bytes).map_err(|_| InsertError::NoRandomness)?;
            let key = Key(bytes);
            let id: Arc<str> = encode_id(&bytes).into();
            let session = Arc::new(Session {
                id: id.clone(),
                upstream,
                upstream_id: upstream_id.into(),
                principal,
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
                break session;
            }
        };
        let down = Key::parse(&session.id).ok_or(InsertError::NoRandomness)?;
        let key = (upstream, session.upstream_id.clone());
        self.reverse[self.reverse_shard(&key)].0.rcu(|map| {
            let mut map = Reverse::clone(map);
            map.insert(key.clone(), down);
            map
        });
        if let Some(n) = self.per_upstream.get(upstream) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        Ok((session, evicted))
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
        let key = (session.upstream, session.upstream_id.clone());
        self.reverse[self.reverse_shard(&key)].0.rcu(|map| {
            let mut map = Reverse::clone(map);
            map.remove(&key);
            map
        });
        self.len.fetch_sub(1, Ordering::AcqRel);
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

/// A place in the table held for a session being created; released on drop unless committed.
#[derive(Debug)]
pub struct Reservation {
    table: Arc<SessionTable>,
    live: bool,
}

impl Reservation {
    /// Creates the session (see [`SessionTable::commit`] for the evicted one).
    pub fn commit(
        mut self,
        upstream: usize,
        upstream_id: &str,
        principal: Option<Principal>,
    ) -> Result<(Arc<Session>, Option<Arc<Session>>), InsertError> {
        let result = self.table.commit(upstream, upstream_id, principal);
        // On success the place is the session's; on failure Drop gives it back.
        self.live = result.is_err();
        result
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.live {
            self.table.len.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A fresh downstream session id: 256 bits from the OS CSPRNG, base64url without padding.
pub fn mint_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(encode_id(&bytes))
}

fn encode_id(bytes: &[u8; ID_BYTES]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
