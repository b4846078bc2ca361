//! The result cache's taps on one response, kept by the request (`RequestCtx`) or by the
//! session stream that reads the response: a cacheable request's [`Pending`] response, the
//! [`Watch`] that drops entries a stream's notifications make stale, and the [`Catch`] that
//! stores a response a session stream carries. No Pingora here; the phases that set them up
//! are in `cache.rs`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::cache::{self, Cache, Entry, FlightGuard, Key, Request, Scope};
use crate::transport::sse::{Early, Judge, SseScanner, Verdict};

/// A cacheable request on its way upstream.
#[derive(Debug)]
pub struct Pending {
    pub(super) request: Request,
    pub(super) upstream: Arc<str>,
    pub(super) version: &'static str,
    /// Held by the key's leader until its response is stored (or is not cacheable).
    pub(super) _flight: Option<FlightGuard>,
    /// The response body as the upstream sent it, while collected.
    pub(super) body: Option<BytesMut>,
    /// An SSE response, framed to find the response event.
    pub(super) events: Option<SseScanner>,
}

/// One upstream's SSE stream, seen by the cache: its list-changed and resource-updated
/// notifications drop the entries they make stale, whichever stream carries them.
#[derive(Debug, Clone)]
pub struct Watch {
    pub(super) cache: Arc<Cache>,
    pub(super) upstream: Arc<str>,
    pub(super) bytes: prometheus::IntGauge,
}

impl Watch {
    /// An event's data.
    pub fn event(&self, data: &[u8]) {
        if self.cache.on_event(&self.upstream, data) {
            self.bytes.set(self.cache.store.bytes() as i64);
        }
    }
}

/// The response of a cacheable request on a session stream: stored when its event comes
/// (the flight, held here, ends then).
#[derive(Debug)]
pub struct Catch {
    pub(super) cache: Arc<Cache>,
    pub(super) pending: Box<Pending>,
    pub(super) principal: Option<[u8; 32]>,
    pub(super) bytes: prometheus::IntGauge,
}

impl Catch {
    /// An event's data; `true` once the response came (the catch is done).
    pub fn event(&mut self, data: &[u8]) -> bool {
        if !cache::result::is_response(data) {
            return false;
        }
        let p = &self.pending;
        let body = Bytes::copy_from_slice(data);
        store(
            &self.cache,
            &p.request,
            &p.upstream,
            p.version,
            self.principal,
            body,
        );
        self.bytes.set(self.cache.store.bytes() as i64);
        true
    }
}

/// A judge that shows every complete event to the cache first (the filtered SSE path).
pub struct Watching<'a, J> {
    pub inner: &'a mut J,
    pub watch: &'a Watch,
}

impl<J: Judge> Judge for Watching<'_, J> {
    fn early(&mut self, data_prefix: &[u8], complete: bool) -> Early {
        if complete {
            self.watch.event(data_prefix);
        }
        self.inner.early(data_prefix, complete)
    }

    fn judge(&mut self, data: &[u8]) -> Verdict {
        self.watch.event(data);
        self.inner.judge(data)
    }

    fn verify(&mut self, data: &[u8]) -> bool {
        self.watch.event(data);
        self.inner.verify(data)
    }
}

/// Stores a response when its hints (or a rule) admit it.
pub(super) fn store(
    cache: &Cache,
    request: &Request,
    upstream: &Arc<str>,
    version: &'static str,
    principal: Option<[u8; 32]>,
    body: Bytes,
) {
    let Some(parsed) = cache::result::parse(&body) else {
        return;
    };
    let Some((ttl, scope)) =
        cache.admit(&parsed.hints, request.method, upstream, principal.is_some())
    else {
        return;
    };
    let key = Key::new(
        upstream.clone(),
        request,
        version,
        (scope == Scope::Private).then_some(principal).flatten(),
    );
    // A rule's freshness is the proxy's own: the result carries no `ttlMs` to lower.
    let ttl_range = parsed.hints.ttl.and(parsed.ttl_range);
    let entry = Entry::new(parsed.result, ttl_range, ttl, scope, request.uri.clone());
    cache.store.insert(key, entry);
}
