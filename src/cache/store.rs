//! The bounded store: entries weighted by their bytes, evicted by `quick_cache` (sharded,
//! S3-FIFO) past `cache.max_bytes`. Freshness is checked on every lookup against tokio's
//! clock; a stale entry is removed then, and otherwise ages out by eviction.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::request::Request;
use super::Scope;

/// A cached result's identity. `principal` is set for `private` results only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub upstream: Arc<str>,
    pub method: &'static str,
    pub params: Box<str>,
    pub version: &'static str,
    pub principal: Option<[u8; 32]>,
}

impl Key {
    /// The key of `request` for one scope: the public entry, or this principal's own.
    pub fn new(
        upstream: Arc<str>,
        request: &Request,
        version: &'static str,
        principal: Option<[u8; 32]>,
    ) -> Self {
        Self {
            upstream,
            method: request.method,
            params: request.params.clone(),
            version,
            principal,
        }
    }
}

/// One stored result.
#[derive(Debug)]
pub struct Entry {
    result: Bytes,
    /// Where `ttlMs`'s value sits in `result` (results fresh by a configured rule have none).
    ttl_range: Option<Range<usize>>,
    stored: Instant,
    ttl: Duration,
    /// `params.uri` of a `resources/read`.
    pub uri: Option<Box<str>>,
    pub scope: Scope,
}

impl Entry {
    pub fn new(
        result: Bytes,
        ttl_range: Option<Range<usize>>,
        ttl: Duration,
        scope: Scope,
        uri: Option<Box<str>>,
    ) -> Self {
        Self {
            result,
            ttl_range,
            stored: Instant::now(),
            ttl,
            uri,
            scope,
        }
    }

    /// Freshness left; `None` once less than a millisecond is (`ttlMs` counts whole ones).
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        let left = self
            .ttl
            .checked_sub(now.saturating_duration_since(self.stored))?;
        (left >= Duration::from_millis(1)).then_some(left)
    }

    /// The answer to a request with `id` (raw JSON text): the stored result, byte for byte,
    /// with `ttlMs` lowered to the freshness left. `None` when stale.
    pub fn reply(&self, id: &str, now: Instant) -> Option<Bytes> {
        let left = self.remaining(now)?;
        let mut out = BytesMut::with_capacity(self.result.len() + id.len() + 40);
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b",\"result\":");
        match &self.ttl_range {
            Some(r) => {
                out.extend_from_slice(&self.result[..r.start]);
                let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
                out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
                out.extend_from_slice(&self.result[r.end..]);
            }
            None => out.extend_from_slice(&self.result),
        }
        out.extend_from_slice(b"}");
        Some(out.freeze())
    }

    fn weight(&self) -> u64 {
        (self.result.len() + self.uri.as_ref().map_or(0, |u| u.len())) as u64
    }
}

/// Which entries `POST /cache/purge` drops: all, or those of one upstream and/or method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purge {
    pub upstream: Option<String>,
    pub method: Option<String>,
}

#[derive(Debug, Clone)]
struct ByBytes;

/// Per-entry bookkeeping beyond the bytes (key, map slot), so many tiny entries still count.
const ENTRY_OVERHEAD: u64 = 128;

impl quick_cache::Weighter<Key, Arc<Entry>> for ByBytes {
    fn weight(&self, key: &Key, entry: &Arc<Entry>) -> u64 {
        ENTRY_OVERHEAD + key.params.len() as u64 + key.upstream.len() as u64 + entry.weight()
    }
}

/// The store.
pub struct Store {
    entries: quick_cache::sync::Cache<Key, Arc<Entry>, ByBytes>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("entries", &self.entries.len())
            .field("bytes", &self.entries.weight())
            .finish()
    }
}

impl Store {
    pub fn new(max_bytes: u64) -> Self {
        // A guess at the item count only sizes the tables; a list result is a few KiB.
        let items = usize::try_from(max_bytes / 4096)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            entries: quick_cache::sync::Cache::with_weighter(items, max_bytes, ByBytes),
        }
    }

    /// A fresh entry under `key`; a stale one is dropped.
    pub fn get(&self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        let entry = self.entries.get(key)?;
        if entry.remaining(now).is_some() {
            return Some(entry);
        }
        self.entries.remove_if(key, |e| Arc::ptr_eq(e, &entry));
        None
    }

    pub fn insert(&self, key: Key, entry: Entry) {
        self.entries.insert(key, Arc::new(entry));
    }

    /// Drops the entries of `upstream` for `methods`; only those of `uri` when given.
    pub fn invalidate(&self, upstream: &str, methods: &[&str], uri: Option<&str>) {
        if methods.is_empty() {
            return;
        }
        self.entries.retain(|k, e| {
            let hit = &*k.upstream == upstream
                && methods.contains(&k.method)
                && uri.is_none_or(|u| e.uri.as_deref() == Some(u));
            !hit
        });
    }

    /// Drops what `purge` selects; returns how many entries went.
    pub fn purge(&self, purge: &Purge) -> usize {
        let before = self.entries.len();
        match purge {
            Purge {
                upstream: None,
                method: None,
            } => self.entries.clear(),
            Purge { upstream, method } => self.entries.retain(|k, _| {
                let hit = upstream.as_deref().is_none_or(|u| u == &*k.upstream)
                    && method.as_deref().is_none_or(|m| m == k.method);
                !hit
            }),
        }
        before.saturating_sub(self.entries.len())
    }

    /// Bytes held (the `shadowcat_cache_bytes` gauge).
    pub fn bytes(&self) -> u64 {
        self.entries.weight()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
