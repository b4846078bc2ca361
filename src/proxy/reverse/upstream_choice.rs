//! Which upstream a request goes to (the upstream set itself: `upstream.rs`): a new session or
//! a sessionless request gets the balanced choice among upstreams not tried yet; a connect
//! failure marks its upstream down (passive health) and, when nothing pins the request to a
//! session, the next choice is tried.

use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;
use super::upstream::Upstream;
use super::{error_classes, McpProxy};

// === impl McpProxy ===

impl McpProxy {
    /// The balanced choice among upstreams not yet tried for this request.
    pub(super) fn pick(&self, ctx: &RequestCtx) -> Option<usize> {
        self.upstreams
            .pick(&ctx.tried, |i| self.sessions.sessions_on(i))
    }

    /// The upstream for this attempt: the choice made in `request_filter`, unless it failed to
    /// connect (then, for requests not pinned to a session, the next balanced choice).
    pub(super) fn choose_upstream(&self, ctx: &mut RequestCtx) -> Result<&Upstream> {
        let index = match ctx.upstream {
            Some(i) if !ctx.tried.contains(&i) => Some(i),
            _ if ctx.session.is_some() => None,
            _ => self.pick(ctx),
        };
        ctx.upstream = index;
        index
            .and_then(|i| self.upstreams.get(i))
            .ok_or_else(|| Error::explain(ErrorType::ConnectError, "no reachable upstream left"))
    }

    /// Passive health, when a connect fails: the upstream is marked down, and a request not
    /// pinned to a session tries the next upstream; a pinned one fails (502): a session is
    /// never moved. A connect that failed on the proxy's own limit (open files, memory) marks
    /// nothing down: the upstream is fine, and the client gets 503 with `Retry-After`
    /// (`error_classes.rs`).
    pub(super) fn connect_failed(&self, ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
        if error_classes::out_of_resources(&e) {
            tracing::warn!(error = %e, "proxy at its open-files or memory limit; upstream not marked down");
            e.set_retry(false);
            return e;
        }
        if let Some(i) = ctx.upstream {
            self.upstreams.mark_down(i);
            ctx.tried.push(i);
            let kind = error_classes::classify(&e).kind;
            let name = self.upstreams.get(i).map_or("none", |u| u.name.as_str());
            self.metrics
                .upstream_errors
                .with_label_values(&[name, kind])
                .inc();
            tracing::warn!(upstream = name, error = %e, "upstream unreachable, marked down");
        }
        if ctx.session.is_none() && ctx.tried.len() < self.upstreams.len() {
            e.set_retry(true);
        }
        e
    }
}
