//! The MCP result cache (issue 19): what may be cached, under which key, for how long, and
//! for whom. No Pingora imports; the proxy side is `proxy::reverse::cache`.
//!
//! * **What.** Results of [`METHODS`] with `resultType` other than `input_required`, that
//!   carry `ttlMs` > 0 (MCP 2026-07-28, SEP-2549), or that a configured [`Rule`] makes
//!   cacheable (older servers send no hints). Never an error, never a request retried with
//!   `inputResponses` or `requestState` (its result depends on inputs outside the key).
//! * **Key.** Upstream, method, the parameters without `_meta` (canonical: keys sorted, so
//!   two spellings of one request share an entry) and the protocol version; a `private`
//!   result is also keyed by the principal, and is not cached without one.
//! * **Served.** The stored result bytes, byte for byte, with the new request's id and
//!   `ttlMs` lowered to the freshness left ([`store::Entry::reply`]).
//! * **Bounded.** [`store::Store`] holds at most `cache.max_bytes`; one upstream fetch per key
//!   at a time ([`flight::Flights`]); list-changed and resource-updated notifications of an
//!   upstream drop its entries ([`invalidations`]).
//!
//! Time is tokio's clock, so tests pause it.

pub mod flight;
pub mod notify;
pub mod request;
pub mod result;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

pub use flight::{FlightGuard, Flights, Join};
pub use notify::Invalidation;
pub use request::{Bypass, Plan, Request};
pub use result::{Hints, Parsed};
pub use store::{Entry, Key, Purge, Store};

/// The methods whose results may be cached (the 2026-07-28 caching page's list).
pub const METHODS: [&str; 6] = [
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// How long a miss waits for the same key's fetch in flight, and how long a leader holds its
/// key: past it, requests go upstream themselves (a slow upstream is not waited on forever).
pub const FLIGHT_MAX_AGE: Duration = Duration::from_secs(30);

/// Who may be served a cached result (`cacheScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any client of this upstream.
    Public,
    /// Only requests of the same principal.
    Private,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            _ => None,
        }
    }
}

/// A configured freshness for servers that send no hints: `method` results of `upstream`
/// (every upstream when `None`) are fresh for `ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub method: &'static str,
    pub upstream: Option<String>,
    pub ttl: Duration,
    pub scope: Scope,
}

/// The cache's settings (validated config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub max_bytes: u64,
    pub rules: Vec<Rule>,
}

/// The cache: a bounded store, the fetches in flight, the configured rules.
#[derive(Debug)]
pub struct Cache {
    pub store: Store,
    pub flights: Arc<Flights>,
    rules: Vec<Rule>,
}

impl Cache {
    pub fn new(settings: &Settings) -> Self {
        Self {
            store: Store::new(settings.max_bytes),
            flights: Arc::new(Flights::new(FLIGHT_MAX_AGE)),
            rules: settings.rules.clone(),
        }
    }

    pub fn shared(settings: &Settings) -> Arc<Self> {
        Arc::new(Self::new(settings))
    }

    /// How long, and for whom, a result may be kept; `None`: not at all. A hint in the result
    /// wins over a rule (`ttlMs: 0` is the server saying "do not cache"); a private result
    /// needs a principal to be keyed by.
    pub fn admit(
        &self,
        hints: &Hints,
        method: &str,
        upstream: &str,
        has_principal: bool,
    ) -> Option<(Duration, Scope)> {
        if hints.input_required {
            return None;
        }
        let (ttl, scope) = match hints.ttl {
            Some(ttl) => (ttl, hints.scope),
            None => {
                let rule = self.rule(method, upstream)?;
                (rule.ttl, rule.scope)
            }
        };
        if ttl.is_zero() || (scope == Scope::Private && !has_principal) {
            return None;
        }
        Some((ttl, scope))
    }

    /// An upstream's SSE event: a list-changed or resource-updated notification drops the
    /// upstream's entries it makes stale. Returns whether it was one.
    pub fn on_event(&self, upstream: &str, data: &[u8]) -> bool {
        let Some(inv) = notify::invalidation(data) else {
            return false;
        };
        self.store
            .invalidate(upstream, inv.methods, inv.uri.as_deref());
        true
    }

    fn rule(&self, method: &str, upstream: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.method == method && r.upstream.as_deref().is_none_or(|u| u == upstream))
    }
}

/// What a notification from an upstream makes stale: the methods whose entries are dropped,
/// and for `resources/updated` the one resource (its `resources/read` entries only).
pub fn invalidations(method: &str) -> &'static [&'static str] {
    match method {
        "notifications/tools/list_changed" => &["tools/list"],
        "notifications/prompts/list_changed" => &["prompts/list"],
        // A resource gone from the list may still sit in a cached read: drop those too.
        "notifications/resources/list_changed" => &[
            "resources/list",
            "resources/templates/list",
            "resources/read",
        ],
        "notifications/resources/updated" => &["resources/read"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests;
