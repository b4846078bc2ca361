//! `cache:` — the MCP result cache: on by default, bounded by `max_bytes`, with `rules` that
//! give servers without hints a freshness per method (`crate::cache`).

use super::super::raw::RawCache;
use super::super::{ConfigError, UpstreamConfig};
use super::{invalid, positive, size};
use crate::cache::{Rule, Scope, Settings, METHODS};

/// `None` with `enabled: false` (the cache does not exist then).
pub(super) fn validate(
    raw: RawCache,
    upstreams: &[UpstreamConfig],
    default_max_bytes: u64,
) -> Result<Option<Settings>, ConfigError> {
    let max_bytes = size(raw.max_bytes, "cache.max_bytes", default_max_bytes)?;
    if max_bytes == 0 {
        return Err(invalid(
            "cache.max_bytes",
            "must be more than 0 (use enabled: false)",
        ));
    }
    let mut rules = Vec::new();
    for (i, r) in raw.rules.unwrap_or_default().into_iter().enumerate() {
        let field = |name: &str| format!("cache.rules[{i}].{name}");
        let method = match r.method.as_deref() {
            None => return Err(invalid(field("method"), "required")),
            Some(m) => METHODS.iter().copied().find(|c| *c == m).ok_or_else(|| {
                invalid(
                    field("method"),
                    format!("{m:?} is not cacheable (use one of {})", METHODS.join(", ")),
                )
            })?,
        };
        if let Some(u) = &r.upstream {
            if !upstreams.iter().any(|c| &c.name == u) {
                return Err(invalid(
                    field("upstream"),
                    format!("no upstream named {u:?}"),
                ));
            }
        }
        if r.ttl.is_none() {
            return Err(invalid(field("ttl"), "required"));
        }
        let ttl = positive(r.ttl, &field("ttl"), std::time::Duration::ZERO)?;
        // No default: sharing a result across principals is a choice to write down.
        let scope = match r.scope.as_deref() {
            None => return Err(invalid(field("scope"), "required (public or private)")),
            Some(s) => Scope::parse(s)
                .ok_or_else(|| invalid(field("scope"), format!("{s:?}: use public or private")))?,
        };
        rules.push(Rule {
            method,
            upstream: r.upstream,
            ttl,
            scope,
        });
    }
    Ok(raw
        .enabled
        .unwrap_or(true)
        .then_some(Settings { max_bytes, rules }))
}
