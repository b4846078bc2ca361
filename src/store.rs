//! The shared store (`store: {kind: redis}`): what replicas must agree on, in Redis or Valkey
//! through the `redis` crate's `ConnectionManager` (one multiplexed connection, reconnected in
//! the background with backoff; every command bounded by [`TIMEOUT`]).
//!
//! * **Ended sessions**: a sealed id ended (DELETE, an upstream 404) is written with the time
//!   it would expire anyway (`SET ... PX`), and every replica refuses it until then.
//! * **Rate-limit buckets**: every scope of a request taken in one Lua script
//!   (`store/buckets.rs`), atomic, timed by the server's clock, so limits hold across
//!   replicas whatever theirs say.
//!
//! When the store cannot be reached, every operation returns [`StoreError`] at once (the
//! manager reconnects on its own) and counts in `shadowcat_store_errors_total{op}`: callers
//! decide what that means (routing goes on through sealed ids; rate limits follow
//! `store.on_error`). [`Store::is_up`] is what `/readyz` reports. No Pingora here.

mod buckets;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

pub use buckets::{Bucket, Taken};

use crate::config::{StoreConfig, StoreKind};

/// The longest a store operation may take before the request goes on without it.
pub const TIMEOUT: Duration = Duration::from_millis(250);

/// The store could not answer (down, timed out, or refused the command).
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(String);

/// The shared store; `None` inside for `kind: memory`.
#[derive(Debug)]
pub struct Store {
    redis: Option<Redis>,
    errors: IntCounterVec,
}

struct Redis {
    /// `None`: the URL did not open (validation prevents it); every operation then fails.
    client: Option<redis::Client>,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    up: AtomicBool,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .field("up", &self.up)
            .finish_non_exhaustive()
    }
}

/// The key an id is kept under: a digest, so ids (bearer-like secrets) never sit in the store.
fn id_digest(id: &str) -> String {
    let d = Sha256::digest(id.as_bytes());
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

// === impl Store ===

impl Store {
    /// The store `config` names; `errors` is `shadowcat_store_errors_total` (label `op`).
    /// Connects lazily: a store down at start-up is retried by the first operations.
    pub fn new(config: &StoreConfig, errors: IntCounterVec) -> Arc<Self> {
        let redis = match config.kind {
            StoreKind::Memory => None,
            StoreKind::Redis => Some(Redis {
                client: redis::Client::open(config.url.as_str())
                    .inspect_err(|e| tracing::error!(error = %e, "store.url does not open"))
                    .ok(),
                conn: OnceCell::new(),
                prefix: config.prefix.clone(),
                up: AtomicBool::new(false),
            }),
        };
        Arc::new(Self { redis, errors })
    }

    /// Whether a shared store is configured.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Whether the store answered its last operation (always true for `memory`).
    pub fn is_up(&self) -> bool {
        self.redis
            .as_ref()
            .is_none_or(|r| r.up.load(Ordering::Relaxed))
    }

    async fn conn(&self, r: &Redis) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let client = r
            .client
            .clone()
            .ok_or_else(|| StoreError("store.url does not open".into()))?;
        let conn = r
            .conn
            .get_or_try_init(|| ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(conn.clone())
    }

    /// Runs `op` against Redis within [`TIMEOUT`], recording health and errors.
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<Option<T>, StoreError>
    where
        F: FnOnce(ConnectionManager, String) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let Some(r) = &self.redis else {
            return Ok(None);
        };
        let result = async {
            let conn = tokio::time::timeout(TIMEOUT, self.conn(r))
                .await
                .map_err(|_| StoreError("connect timed out".into()))??;
            tokio::time::timeout(TIMEOUT, f(conn, r.prefix.clone()))
                .await
                .map_err(|_| StoreError("timed out".into()))?
                .map_err(|e| StoreError(e.to_string()))
        }
        .await;
        match result {
            Ok(v) => {
                r.up.store(true, Ordering::Relaxed);
                Ok(Some(v))
            }
            Err(e) => {
                r.up.store(false, Ordering::Relaxed);
                self.errors.with_label_values(&[op]).inc();
                tracing::debug!(op, error = %e, "store operation failed");
                Err(e)
            }
        }
    }

    /// Records that session `id` ended; every replica refuses it for `ttl`.
    pub async fn end_session(&self, id: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = id_digest(id);
        let ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        self.run("end_session", |mut conn, prefix| async move {
            redis::cmd("SET")
                .arg(format!("{prefix}ended:{key}"))
                .arg(1)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Whether session `id` ended on any replica (`false` for `memory`).
    pub async fn is_ended(&self, id: &str) -> Result<bool, StoreError> {
        let key = id_digest(id);
        let found = self
            .run("is_ended", |mut conn, prefix| async move {
                redis::cmd("EXISTS")
                    .arg(format!("{prefix}ended:{key}"))
                    .query_async::<u32>(&mut conn)
                    .await
            })
            .await?;
        Ok(found.is_some_and(|n| n > 0))
    }

    /// Takes one token from each of `buckets`, all or none, atomically. `Ok(None)` for
    /// `memory` (the caller's own limiters decide).
    pub async fn take(&self, buckets: &[Bucket]) -> Result<Option<Taken>, StoreError> {
        if buckets.is_empty() {
            return Ok(Some(Taken::Allowed));
        }
        self.run("rate_limit", |mut conn, prefix| async move {
            buckets::invocation(&prefix, buckets)
                .invoke_async::<(u32, u64)>(&mut conn)
                .await
                .map(Taken::from_reply)
        })
        .await
    }

    /// Asks the store whether it is there (`/readyz`'s view stays fresh without traffic).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", |mut conn, _| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors() -> IntCounterVec {
        IntCounterVec::new(prometheus::Opts::new("e", "e"), &["op"]).unwrap()
    }

    #[tokio::test]
    async fn memory_store_holds_nothing_and_is_up() {
        let store = Store::new(&StoreConfig::default(), errors());
        assert!(!store.is_shared() && store.is_up());
        assert!(!store.is_ended("x").await.unwrap());
        store
            .end_session("x", Duration::from_secs(1))
            .await
            .unwrap();
        assert!(store.take(&[]).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_unreachable_store_errs_fast_and_counts() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = StoreConfig {
            kind: StoreKind::Redis,
            url: format!("redis://127.0.0.1:{port}"),
            prefix: "t:".into(),
            ..Default::default()
        };
        let errors = errors();
        let store = Store::new(&config, errors.clone());
        let started = tokio::time::Instant::now();
        assert!(store.is_ended("x").await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!store.is_up());
        assert_eq!(errors.with_label_values(&["is_ended"]).get(), 1);
    }

    #[test]
    fn ids_are_kept_as_digests() {
        let d = id_digest("secret-session-id");
        assert_eq!(d.len(), 32);
        assert!(!d.contains("secret"));
    }
}
