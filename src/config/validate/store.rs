//! `store:`: where replicas share state. `memory` (the default) needs nothing else; `redis`
//! needs a `redis://` URL (`${VAR}` read from the environment, for a password).

use super::env::expand_env;
use super::invalid;
use crate::config::raw::RawStore;
use crate::config::{ConfigError, OnStoreError, StoreConfig, StoreKind};

/// The default key prefix.
pub(super) const DEFAULT_PREFIX: &str = "shadowcat:";

pub(super) fn store(raw: Option<RawStore>) -> Result<StoreConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(StoreConfig::default());
    };
    let kind = match raw.kind.as_deref() {
        None | Some("memory") => StoreKind::Memory,
        Some("redis") => StoreKind::Redis,
        Some(other) => {
            return Err(invalid(
                "store.kind",
                format!("unknown kind {other:?} (use memory or redis)"),
            ))
        }
    };
    let on_error = match raw.on_error.as_deref() {
        None | Some("allow") => OnStoreError::Allow,
        Some("deny") => OnStoreError::Deny,
        Some(other) => {
            return Err(invalid(
                "store.on_error",
                format!("unknown value {other:?} (use allow or deny)"),
            ))
        }
    };
    let url = match (kind, raw.url) {
        (StoreKind::Memory, None) => String::new(),
        (StoreKind::Memory, Some(_)) => {
            return Err(invalid("store.url", "only with kind: redis"));
        }
        (StoreKind::Redis, None) => return Err(invalid("store.url", "required with kind: redis")),
        (StoreKind::Redis, Some(url)) => {
            let url = expand_env(&url, "store.url")?;
            if !url.starts_with("redis://") {
                return Err(invalid(
                    "store.url",
                    "must start with redis:// (redis://[user:password@]host:port[/db])",
                ));
            }
            redis::Client::open(url.as_str())
                .map_err(|e| invalid("store.url", format!("not a Redis URL: {e}")))?;
            url
        }
    };
    let prefix = raw.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    if prefix.len() > 64 || prefix.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(invalid(
            "store.prefix",
            "at most 64 visible ASCII characters",
        ));
    }
    Ok(StoreConfig {
        kind,
        url,
        prefix,
        on_error,
    })
}
