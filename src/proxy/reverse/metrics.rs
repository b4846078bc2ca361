//! Prometheus metrics, created once at start-up and registered in the proxy's own registry
//! (served by the admin listener), so two proxies in one process never share counters.
//!
//! Label values are `&'static str` or bounded sets (`mcp_method` is the JSON-RPC method only for
//! methods the MCP spec defines; anything else is counted as `other`), so a client cannot blow
//! up the series count by inventing methods.

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the reverse proxy exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Every registered family's name, observed or not.
    names: Vec<String>,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub sse_streams_active: IntGauge,
    pub sse_events: IntCounter,
    pub upstream_errors: IntCounterVec,
    pub sessions_active: IntGauge,
    pub sessions: IntCounterVec,
    pub rate_limited: IntCounterVec,
    /// `shadowcat_store_errors_total{op}`: shared-store operations that failed.
    pub store_errors: IntCounterVec,
    pub interceptor_actions: IntCounterVec,
    pub rules_reload: IntCounterVec,
    pub replay_buffer_bytes: IntGauge,
    pub sse_replay_misses: IntCounter,
    pub sse_resumes: IntCounterVec,
    /// Bytes in every replay buffer (read into the gauge at each scrape).
    pub replay_total: std::sync::Arc<std::sync::atomic::AtomicI64>,
    pub connections_open: IntGauge,
    /// Client connections open (read into the gauge at each scrape).
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Connections closed by the accept layer, by `reason` ([`CONNECTION_REJECTIONS`]).
    pub connections_rejected: IntCounterVec,
    /// TLS handshakes that failed, by `reason` (`server::tls::FAILURE_REASONS`).
    pub tls_handshake_failures: IntCounterVec,
    /// Cacheable requests by `method` and `result` (`hit`, `miss`, `bypass`).
    pub cache_requests: IntCounterVec,
    /// Bytes the result cache holds.
    pub cache_bytes: IntGauge,
    /// Tape lines not written, by `reason` (`queue_full`, `write_error`, `over_total`).
    pub tape_dropped: IntCounterVec,
    /// Certificate reloads, by `result` (`ok`, `error`).
    pub tls_reloads: IntCounterVec,
    /// Each served certificate's `notAfter` (Unix seconds), by `name`.
    pub tls_certificate_expiry: IntGaugeVec,
    /// Spans never delivered to the collector (`crate::telemetry`).
    pub telemetry_dropped: IntCounter,
}

/// Every `reason` of `shadowcat_connections_rejected_total`.
pub const CONNECTION_REJECTIONS: [&str; 2] = ["max_connections", "header_timeout"];

/// Every `reason` of `shadowcat_tape_dropped_total`.
pub const TAPE_DROPS: [&str; 3] = ["queue_full", "write_error", "over_total"];

/// Every `outcome` of `shadowcat_sessions_total`.
pub const SESSION_OUTCOMES: [&str; 6] = [
    "created",
    "deleted",
    "expired",
    "evicted",
    "upstream_gone",
    "adopted",
];

// === impl Metrics ===

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "shadowcat_requests_total",
                "Requests on the MCP endpoint by JSON-RPC method (GET, DELETE for those) and status",
            ),
            &["mcp_method", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "shadowcat_request_duration_seconds",
                "Time from request to the end of the response (SSE: the whole stream)",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0, 3600.0,
            ]),
            &["mcp_method"],
        )?;
        let sse_streams_active = IntGauge::new(
            "shadowcat_sse_streams_active",
            "SSE responses currently streaming to clients",
        )?;
        let sse_events = IntCounter::new(
            "shadowcat_sse_events_total",
            "SSE events forwarded to clients (comment-only blocks such as keep-alives excluded)",
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "shadowcat_upstream_errors_total",
                "Upstream failures by upstream name and kind",
            ),
            &["upstream", "kind"],
        )?;
        let sessions_active =
            IntGauge::new("shadowcat_sessions_active", "Sessions the proxy holds")?;
        let sessions = IntCounterVec::new(
            Opts::new(
                "shadowcat_sessions_total",
                "Session lifecycle events: created, deleted (DELETE), expired (idle), evicted \
                 (an initialize answer reused the upstream id of a session of the same \
                 principal, e.g. after an upstream restart), upstream_gone (upstream 404)",
            ),
            &["outcome"],
        )?;
        for outcome in SESSION_OUTCOMES {
            sessions.with_label_values(&[outcome]);
        }
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "shadowcat_rate_limited_total",
                "Requests refused with 429, by limit scope",
            ),
            &["scope"],
        )?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "shadowcat_store_errors_total",
                "Shared store (store: redis) operations that failed or timed out, by operation",
            ),
            &["op"],
        )?;
        let interceptor_actions = IntCounterVec::new(
            Opts::new(
                "shadowcat_interceptor_actions_total",
                "Interceptor actions taken, by rule name and action",
            ),
            &["rule", "action"],
        )?;
        let rules_reload = IntCounterVec::new(
            Opts::new(
                "shadowcat_rules_reload_total",
                "Rule file reloads: ok (new rules in force) or error (old rules kept)",
            ),
            &["result"],
        )?;
        for result in ["ok", "error"] {
            rules_reload.with_label_values(&[result]);
        }
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "shadowcat_cache_requests_total",
                "Requests of cacheable methods: hit (answered from the cache), miss (sent \
                 upstream), bypass (may not use the cache: batch, multi round-trip retry)",
            ),
            &["method", "result"],
        )?;
        let cache_bytes = IntGauge::new("shadowcat_cache_bytes", "Bytes held by the result cache")?;
        let tape_dropped = IntCounterVec::new(
            Opts::new(
                "shadowcat_tape_dropped_total",
                "Tape lines not written (recording): queue_full (the writer fell behind; the \
                 request went on), write_error (a failed write, e.g. a full disk), over_total \
                 (recording.max_total_bytes reached)",
            ),
            &["reason"],
        )?;
        let replay_buffer_bytes = IntGauge::new(
            "shadowcat_replay_buffer_bytes",
            "Bytes of SSE events held for replay, every stream together",
        )?;
        let sse_replay_misses = IntCounter::new(
            "shadowcat_sse_replay_misses_total",
            "Reconnects whose Last-Event-ID the proxy could no longer replay from",
        )?;
        let sse_resumes = IntCounterVec::new(
            Opts::new(
                "shadowcat_sse_resumes_total",
                "Reconnects with Last-Event-ID served: buffer (by the proxy) or upstream (resumed there)",
            ),
            &["source"],
        )?;
        for source in ["buffer", "upstream"] {
            sse_resumes.with_label_values(&[source]);
        }
        let connections_open = IntGauge::new(
            "shadowcat_connections_open",
            "Client connections open, from accept until they close",
        )?;
        let connections_rejected = IntCounterVec::new(
            Opts::new(
                "shadowcat_connections_rejected_total",
                "Client connections closed by the proxy: max_connections (at accept, over \
                 limits.max_connections) or header_timeout (no complete request head within \
                 limits.header_read_timeout)",
            ),
            &["reason"],
        )?;
        for reason in CONNECTION_REJECTIONS {
            connections_rejected.with_label_values(&[reason]);
        }
        let tls_handshake_failures = IntCounterVec::new(
            Opts::new(
                "shadowcat_tls_handshake_failures_total",
                "TLS handshakes that failed on a TLS listener, by reason",
            ),
            &["reason"],
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "shadowcat_tls_reloads_total",
                "TLS certificate reloads: ok, or error (the previous certificates stay)",
            ),
            &["result"],
        )?;
        let tls_certificate_expiry = IntGaugeVec::new(
            Opts::new(
                "shadowcat_tls_certificate_expiry_seconds",
                "When each served certificate expires (notAfter, Unix seconds); name is \
                 `default` or the first SNI name of its entry",
            ),
            &["name"],
        )?;
        let telemetry_dropped = IntCounter::new(
            "shadowcat_telemetry_dropped_total",
            "Trace spans dropped: the export queue was full (a slow or dead collector) or an \
             export failed; requests are never held up for them",
        )?;
        // Each family's name is kept as it is registered: `/metrics` lists a labelled family
        // only once it has a series, so the registry's output cannot say what exists.
        let mut names = Vec::new();
        let mut register = |c: Box<dyn Collector>| -> Result<(), prometheus::Error> {
            names.extend(c.desc().iter().map(|d| d.fq_name.clone()));
            registry.register(c)
        };
        register(Box::new(tls_handshake_failures.clone()))?;
        register(Box::new(tls_reloads.clone()))?;
        register(Box::new(tls_certificate_expiry.clone()))?;
        register(Box::new(connections_open.clone()))?;
        register(Box::new(connections_rejected.clone()))?;
        register(Box::new(cache_requests.clone()))?;
        register(Box::new(cache_bytes.clone()))?;
        for reason in TAPE_DROPS {
            tape_dropped.with_label_values(&[reason]);
        }
        register(Box::new(tape_dropped.clone()))?;
        register(Box::new(replay_buffer_bytes.clone()))?;
        register(Box::new(sse_replay_misses.clone()))?;
        register(Box::new(sse_resumes.clone()))?;
        register(Box::new(interceptor_actions.clone()))?;
        register(Box::new(rules_reload.clone()))?;
        register(Box::new(rate_limited.clone()))?;
        register(Box::new(store_errors.clone()))?;
        register(Box::new(sessions_active.clone()))?;
        register(Box::new(sessions.clone()))?;
        register(Box::new(requests.clone()))?;
        register(Box::new(request_duration.clone()))?;
        register(Box::new(sse_streams_active.clone()))?;
        register(Box::new(sse_events.clone()))?;
        register(Box::new(upstream_errors.clone()))?;
        register(Box::new(telemetry_dropped.clone()))?;
        Ok(Self {
            registry,
            names,
            requests,
            request_duration,
            sse_streams_active,
            sse_events,
            upstream_errors,
            sessions_active,
            sessions,
            rate_limited,
            store_errors,
            interceptor_actions,
            rules_reload,
            replay_buffer_bytes,
            sse_replay_misses,
            sse_resumes,
            replay_total: Default::default(),
            connections_open,
            connections: Default::default(),
            connections_rejected,
            tls_handshake_failures,
            tls_reloads,
            tls_certificate_expiry,
            cache_requests,
            cache_bytes,
            tape_dropped,

            telemetry_dropped,
        })
    }

    /// Registers metrics made elsewhere (the stdio bridges') in this registry, so `/metrics`
    /// serves them with the rest; at start-up, before the metrics are shared.
    pub fn register(&mut self, collector: Box<dyn Collector>) -> Result<(), prometheus::Error> {
        let names: Vec<String> = collector.desc().iter().map(|d| d.fq_name.clone()).collect();
        self.registry.register(collector)?;
        self.names.extend(names);
        Ok(())
    }

    /// Counts a session event and refreshes the active gauge.
    pub fn session_event(&self, outcome: &'static str, active: usize) {
        self.sessions.with_label_values(&[outcome]).inc();
        self.sessions_active.set(active as i64);
    }

    /// The name of every metric family this proxy exports, including labelled families with
    /// no series yet (which `/metrics` leaves out until their first observation).
    pub fn family_names(&self) -> &[String] {
        &self.names
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        self.replay_buffer_bytes
            .set(self.replay_total.load(std::sync::atomic::Ordering::Relaxed));
        let open = self.connections.load(std::sync::atomic::Ordering::Relaxed);
        self.connections_open.set(open as i64);
        // Encoding into a Vec cannot fail on I/O; a metric family error would be a bug here.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

/// The `mcp_method` label for a JSON-RPC method: the method itself when the MCP spec defines
/// it, `other` otherwise (labels must stay a bounded set).
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "subscriptions/listen",
        "tasks/get",
        "tasks/list",
        "tasks/result",
        "tasks/cancel",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        "notifications/message",
        "sampling/createMessage",
        "elicitation/create",
        "roots/list",
    ];
    KNOWN
        .iter()
        .find(|k| **k == method)
        .copied()
        .unwrap_or("other")
}

/// Status label from a bounded set.
pub fn status_label(status: u16) -> &'static str {
    match status {
        0 => "0",
        200 => "200",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_and_bounds_method_labels() {
        let m = Metrics::new().unwrap();
        m.requests.with_label_values(&["tools/call", "200"]).inc();
        m.upstream_errors
            .with_label_values(&["u", "connect_refused"])
            .inc();
        m.request_duration.with_label_values(&["GET"]).observe(0.1);
        let text = String::from_utf8(m.render()).unwrap();
        for name in [
            "shadowcat_requests_total",
            "shadowcat_request_duration_seconds",
            "shadowcat_sse_streams_active",
            "shadowcat_sse_events_total",
            "shadowcat_upstream_errors_total",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("x/made-up-by-a-client"), "other");
    }
}
