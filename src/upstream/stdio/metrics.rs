//! `shadowcat_stdio_children{upstream}`, `shadowcat_stdio_exits_total{upstream,reason}` and
//! `shadowcat_stdio_spawns_refused_total{upstream,reason}`.
//!
//! Registered in the proxy's own registry at start-up ([`StdioMetrics::collectors`]), so
//! `/metrics` serves them with the rest. Label values: upstream names (from the config),
//! [`ExitReason::label`] and [`REFUSALS`], all bounded.

use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::session::ExitReason;

/// Every `reason` of `shadowcat_stdio_spawns_refused_total`: a child not started because the
/// upstream had `max_children`, or had used its `spawn_rate`.
pub const REFUSALS: [&str; 2] = ["max_children", "spawn_rate"];

#[derive(Debug, Clone)]
pub struct StdioMetrics {
    children: IntGaugeVec,
    exits: IntCounterVec,
    refused: IntCounterVec,
}

// === impl StdioMetrics ===

impl StdioMetrics {
    /// The metrics, with every series of `upstreams` present from the start (at 0).
    pub fn new<'a>(
        upstreams: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, prometheus::Error> {
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
        let refused = IntCounterVec::new(
            Opts::new(
                "shadowcat_stdio_spawns_refused_total",
                "Child processes not started, by stdio upstream and reason: max_children, \
                 spawn_rate (the client got 503 with Retry-After)",
            ),
            &["upstream", "reason"],
        )?;
        for name in upstreams {
            children.with_label_values(&[name]);
            for reason in ExitReason::ALL {
                exits.with_label_values(&[name, reason.label()]);
            }
            for reason in REFUSALS {
                refused.with_label_values(&[name, reason]);
            }
        }
        Ok(Self {
            children,
            exits,
            refused,
        })
    }

    /// The families, for the proxy's registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.children.clone()),
            Box::new(self.exits.clone()),
            Box::new(self.refused.clone()),
        ]
    }

    /// A start refused; `reason` is one of [`REFUSALS`].
    pub(super) fn spawn_refused(&self, upstream: &str, reason: &'static str) {
        self.refused.with_label_values(&[upstream, reason]).inc();
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
}
