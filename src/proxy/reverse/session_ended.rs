//! Sealed session ids that ended on this replica (DELETE, an upstream 404): a sealed id opens
//! until `sessions.max_age` whatever happened to its session, so the ones that ended are
//! remembered until then and refused (404). The shared store (`store:`) tells every replica;
//! this table is what one replica knows by itself. No Pingora here.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const SHARDS: usize = 16;
/// Every this many ends, expired entries are dropped (amortized; no sweeper needed).
const PRUNE_EVERY: usize = 1024;

/// Ids of one shard, each with the Unix second it would expire.
type Shard = Mutex<HashMap<Box<str>, u64>>;

/// Ended sealed ids, each until the Unix second its token would expire anyway.
#[derive(Debug)]
pub struct EndedIds {
    shards: Box<[Shard]>,
    hasher: RandomState,
    ends: AtomicUsize,
}

impl Default for EndedIds {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            ends: AtomicUsize::new(0),
        }
    }
}

// === impl EndedIds ===

impl EndedIds {
    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, HashMap<Box<str>, u64>> {
        let i = self.hasher.hash_one(id) as usize & (SHARDS - 1);
        self.shards[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `id` ended; it is refused until `until` (Unix seconds), `now` being the time now.
    pub fn end(&self, id: &str, until: u64, now: u64) {
        if self.ends.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune(now);
        }
        self.shard(id).insert(id.into(), until);
    }

    /// Whether `id` ended (and has not expired since).
    pub fn is_ended(&self, id: &str, now: u64) -> bool {
        self.shard(id).get(id).is_some_and(|&until| until > now)
    }

    /// Drops the entries past their expiry.
    pub fn prune(&self, now: u64) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .retain(|_, until| *until > now);
        }
    }

    /// Entries held (tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_until_expiry_then_pruned() {
        let ended = EndedIds::default();
        ended.end("a", 100, 10);
        assert!(ended.is_ended("a", 99));
        assert!(!ended.is_ended("a", 100));
        assert!(!ended.is_ended("b", 10));
        ended.prune(50);
        assert_eq!(ended.len(), 1);
        ended.prune(100);
        assert!(ended.is_empty());
    }

    #[test]
    fn pruned_as_it_goes() {
        let ended = EndedIds::default();
        for i in 0..PRUNE_EVERY as u64 * 2 {
            // Each expires one second after it ended; `now` moves on by one each time.
            ended.end(&i.to_string(), i + 1, i);
        }
        assert!(ended.len() <= PRUNE_EVERY + 1, "{}", ended.len());
    }
}
