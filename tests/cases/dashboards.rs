//! deploy/grafana/shadowcat.json and deploy/prometheus/alerts.yaml name only metrics the proxy
//! exports (issue 20, part 5).
//!
//! What "exported" means here: the family names the proxy's own metric constructors register
//! (`Metrics::family_names`, with the stdio bridge's families registered in it as at
//! start-up). `/metrics` alone is not enough: the Prometheus client leaves a labelled family
//! out until its first observation, so a family such as `shadowcat_tls_reloads_total` would look
//! missing on a proxy that never reloaded. A running proxy's `/metrics` is still read, after a
//! request, to check that the registered names are the ones it serves.

use std::collections::BTreeSet;

use shadowcat::proxy::reverse::metrics::Metrics;
use shadowcat::upstream::stdio::StdioMetrics;

use crate::support::*;

/// `shadowcat_[a-z_]+` tokens, without the histogram series suffixes.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("shadowcat_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            name = name.strip_suffix(suffix).unwrap_or(name);
        }
        out.insert(name.to_owned());
        rest = &tail[end..];
    }
    out
}

/// The names on `# TYPE` lines of a Prometheus text exposition.
fn served(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn registered() -> BTreeSet<String> {
    let mut metrics = Metrics::new().unwrap();
    for family in StdioMetrics::new(["any"]).unwrap().collectors() {
        metrics.register(family).unwrap();
    }
    metrics.family_names().iter().cloned().collect()
}

fn deploy(path: &str) -> String {
    std::fs::read_to_string(format!("{}/deploy/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every PromQL expression of the dashboard: panel targets and templating queries.
fn dashboard_exprs(dash: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            exprs.push(q.to_owned());
        }
    }
    exprs
}

#[tokio::test]
async fn dashboard_and_alerts_name_only_exported_metrics() {
    let registered = registered();

    // The registered names are what a running proxy serves, once its families have series.
    let upstream = MockUpstream::start(|_| {
        Reply::json(serde_json::json!({"jsonrpc":"2.0","id":1,"result":{"content":[]}}))
    })
    .await;
    let proxy = Proxy::start(config_for(&upstream.url())).await;
    let resp = post(&client(), &proxy.url(), &call(1, "x")).await;
    assert_eq!(resp.status(), 200);
    proxy
        .settled(
            "shadowcat_requests_total{mcp_method=\"tools/call\",status=\"200\"}",
            1.0,
        )
        .await;
    let on_the_wire = served(&proxy.metrics().await);
    assert!(
        on_the_wire.contains("shadowcat_requests_total"),
        "{on_the_wire:?}"
    );
    assert!(
        on_the_wire.contains("shadowcat_request_duration_seconds"),
        "{on_the_wire:?}"
    );
    let unknown: Vec<_> = on_the_wire.difference(&registered).collect();
    assert!(unknown.is_empty(), "served but not registered: {unknown:?}");

    // The dashboard: a Prometheus datasource variable, every panel querying through it.
    let dash: serde_json::Value = serde_json::from_str(&deploy("grafana/shadowcat.json")).unwrap();
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    for panel in dash["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
    }
    let exprs = dashboard_exprs(&dash);
    let in_dashboard = metric_names(&exprs.join("\n"));

    // The alert rules: every rule has an alert name and an expression.
    let alerts: serde_yaml::Value =
        serde_yaml::from_str(&deploy("prometheus/alerts.yaml")).unwrap();
    let mut alert_exprs = Vec::new();
    for group in alerts["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            assert!(rule["alert"].as_str().is_some(), "{rule:?}");
            alert_exprs.push(rule["expr"].as_str().expect("expr").to_owned());
        }
    }
    let in_alerts = metric_names(&alert_exprs.join("\n"));

    for (file, names) in [("dashboard", &in_dashboard), ("alerts", &in_alerts)] {
        assert!(names.len() >= 5, "{file}: {names:?}");
        let missing: Vec<_> = names.difference(&registered).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics the proxy does not export: {missing:?} (exported: {registered:?})"
        );
    }
    // The whole files, descriptions and annotations included, name no other metric either.
    for text in [
        deploy("grafana/shadowcat.json"),
        deploy("prometheus/alerts.yaml"),
    ] {
        let missing: Vec<_> = metric_names(&text)
            .into_iter()
            .filter(|n| !registered.contains(n))
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }
    // What the issue asks the dashboard and alerts to cover.
    for name in [
        "shadowcat_requests_total",
        "shadowcat_request_duration_seconds",
        "shadowcat_sse_streams_active",
        "shadowcat_sse_events_total",
        "shadowcat_sse_resumes_total",
        "shadowcat_sse_replay_misses_total",
        "shadowcat_interceptor_actions_total",
        "shadowcat_rate_limited_total",
        "shadowcat_sessions_active",
        "shadowcat_upstream_errors_total",
        "shadowcat_cache_requests_total",
        "shadowcat_connections_rejected_total",
    ] {
        assert!(in_dashboard.contains(name), "dashboard lacks {name}");
    }
    for name in [
        "shadowcat_upstream_errors_total",
        "shadowcat_requests_total",
        "shadowcat_sse_replay_misses_total",
        "shadowcat_connections_rejected_total",
    ] {
        assert!(in_alerts.contains(name), "alerts lack {name}");
    }
}

#[test]
fn metric_names_strip_histogram_suffixes() {
    let names = metric_names(
        "histogram_quantile(0.9, rate(shadowcat_request_duration_seconds_bucket[5m])) \
         / shadowcat_requests_total{x=\"shadowcat_a\"}",
    );
    let want: BTreeSet<String> = [
        "shadowcat_request_duration_seconds",
        "shadowcat_requests_total",
        "shadowcat_a",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, want);
}
