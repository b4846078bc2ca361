//! The shared store (`store: redis`) in admission: a sealed id ended on any replica is
//! refused, and rate limits are taken from buckets every replica shares. When the store
//! cannot answer, routing goes on (sealed ids need no store) and rate limits follow
//! `store.on_error`: `allow` lets this replica's own buckets decide, `deny` answers 503.
//! With `memory`, nothing here reaches out: the local checks run as they always did.

use std::net::IpAddr;
use std::time::Duration;

use http::HeaderMap;

use super::ctx::RequestCtx;
use super::request_checks::Rejection;
use super::throttle::{Throttled, RATE_LIMITED, STORE_UNAVAILABLE};
use super::McpProxy;
use crate::config::OnStoreError;
use crate::mcp::SESSION_ID;
use crate::store::Taken;

/// A request the rate limits refused: the answer and its `Retry-After`.
pub(super) struct Limited {
    pub rejection: Rejection,
    pub retry_after: Option<Duration>,
}

// === impl McpProxy ===

impl McpProxy {
    /// A sealed id that ended on another replica is recorded here as ended, so the session
    /// plan refuses it (404). A store that cannot answer changes nothing (counted).
    pub(super) async fn learn_ended(&self, headers: &HeaderMap) {
        if self.sealer.is_none() || !self.store.is_shared() {
            return;
        }
        let Some(id) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok()) else {
            return;
        };
        if let Ok(true) = self.store.is_ended(id).await {
            self.end_sealed(id);
        }
    }

    /// Tells every replica that the session this response ended is gone, before the
    /// response leaves (bounded by `store::TIMEOUT`; a store that cannot answer is counted,
    /// and the other replicas learn it from the upstream's 404 instead).
    pub(super) async fn share_ended(&self, ctx: &mut RequestCtx) {
        let Some((id, ttl)) = ctx.ended.take() else {
            return;
        };
        if self.store.is_shared() {
            let _ = self.store.end_session(&id, ttl).await;
        }
    }

    /// Takes a token in every rate-limit scope that applies: from the shared store's buckets
    /// (all or none, atomically), else from this replica's.
    pub(super) async fn rate_limit(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        ctx: &RequestCtx,
    ) -> Result<(), Limited> {
        let principal = ctx.principal.as_ref();
        let session_id = ctx.session.as_ref().map(|s| &*s.id);
        let local = || self.throttle.check(headers, peer, principal, session_id);
        let outcome = if self.store.is_shared() {
            let buckets = self.throttle.buckets(headers, peer, principal, session_id);
            match self.store.take(&buckets).await {
                Ok(Some(Taken::Limited { index, retry_after })) => Err(Throttled {
                    scope: buckets.get(index).map_or("ip", |b| b.scope),
                    retry_after,
                }),
                Ok(_) => Ok(()),
                Err(_) if self.config.store.on_error == OnStoreError::Deny => {
                    return Err(Limited {
                        rejection: STORE_UNAVAILABLE,
                        retry_after: Some(Duration::from_secs(1)),
                    });
                }
                Err(_) => local(),
            }
        } else {
            local()
        };
        outcome.map_err(|t| {
            self.metrics
                .rate_limited
                .with_label_values(&[t.scope])
                .inc();
            ctx.trace_event("shadowcat.rate_limited", &[("shadowcat.rule", t.scope)]);
            Limited {
                rejection: RATE_LIMITED,
                retry_after: Some(t.retry_after),
            }
        })
    }
}
