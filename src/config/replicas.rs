//! Settings for running many replicas as one service: the keys that seal session ids
//! (`sessions.keys`) and the shared store (`store:`).

use super::Sessions;

/// One `sessions.keys` entry: its id (in every token it seals) and its secret, `${VAR}` read.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("SessionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// The sealer for `keys`, `None` without keys (validated with the config, so it builds).
    pub fn sealer(&self) -> Option<crate::sealed_id::Sealer> {
        if self.keys.is_empty() {
            return None;
        }
        let keys = self
            .keys
            .iter()
            .map(|k| (k.id.as_str(), k.secret.as_bytes()));
        crate::sealed_id::Sealer::new(keys, self.max_age).ok()
    }
}

/// `store.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// Each process keeps its own state (the default; one node behaves as it always did).
    #[default]
    Memory,
    /// Redis or Valkey at `store.url`.
    Redis,
}

/// `store.on_error`: what a rate limit does while the store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// This replica's own buckets decide (limits hold per replica).
    #[default]
    Allow,
    /// Requests that a rate limit applies to get 503 until the store is back.
    Deny,
}

/// `store:`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// `redis://[user:password@]host:port[/db]` (`rediss://` is refused: no TLS build).
    pub url: String,
    /// Prepended to every key, so replicas of several deployments can share one server.
    pub prefix: String,
    pub on_error: OnStoreError,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("StoreConfig")
            .field("kind", &self.kind)
            .field("prefix", &self.prefix)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}
