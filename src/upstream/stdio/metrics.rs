//! `shadowcat_stdio_children{upstream}` and `shadowcat_stdio_exits_total{upstream,reason}`.
//!
//! In a registry of their own, rendered after the proxy's metrics on `/metrics` (the proxy's
//! registry has no public hook to register on). Label values: upstream names (from the
//! config) and [`ExitReason::label`], both bounded.

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use super::session::ExitReason;

#[derive(Debug, Clone)]
pub struct StdioMetrics {
    registry: Registry,
    children: IntGaugeVec,
    exits: IntCounterVec,
}

// === impl StdioMetrics ===

impl StdioMetrics {
    /// The metrics, with every series of `upstreams` present from the start (at 0).
    pub fn new<'a>(
        upstreams: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let children = IntGaugeVec::new(
            Opts::new(
                "shadowcat_stdio_children",
                "Child processes alive per stdio upstream",
            ),
            &["upstream"],
        )?;
        let exits = IntCounterVec::new(
            Opts::new(
                "shadowcat_stdio_exits_total",
                "Child processes ended, by stdio upstream and reason: deleted, idle, shutdown, \
                 init_failed, stdout_closed, exited (status 0), crashed",
            ),
            &["upstream", "reason"],
        )?;
        registry.register(Box::new(children.clone()))?;
        registry.register(Box::new(exits.clone()))?;
        for name in upstreams {
            children.with_label_values(&[name]);
            for reason in ExitReason::ALL {
                exits.with_label_values(&[name, reason.label()]);
            }
        }
        Ok(Self {
            registry,
            children,
            exits,
        })
    }

    pub(super) fn child_started(&self, upstream: &str) {
        self.children.with_label_values(&[upstream]).inc();
    }

    pub(super) fn child_ended(&self, upstream: &str, reason: ExitReason) {
        self.children.with_label_values(&[upstream]).dec();
        self.exits
            .with_label_values(&[upstream, reason.label()])
            .inc();
    }

    /// The Prometheus text exposition of these metrics.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding stdio metrics");
        }
        out
    }
}
