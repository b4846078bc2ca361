//! Interceptor rules in the proxy: every action on each path it applies to. `requests`:
//! client messages; `streams`: JSON responses and SSE events; `reload`: rule file changes.

mod reload;
mod requests;
mod streams;

use serde_json::json;
use shadowcat::config::{Config, InterceptorsConfig};
use shadowcat::interceptor::RuleSet;

use crate::support::*;

pub const RULES: &str = r#"
rules:
  - name: block-deletes
    match: {method: tools/call, tool: "delete_*"}
    action: {block: {code: -32001, message: "deletes are disabled here"}}
  - name: hide-admin
    match: {from: server, kind: response, method: tools/list}
    action: {hide_tools: ["admin_*"]}
  - name: mock-weather
    match: {method: tools/call, tool: get_weather}
    action: {mock: {result: {content: [{type: text, text: sunny}]}}}
  - name: clamp
    match: {method: tools/call, tool: search}
    action: {set: {"/params/arguments/limit": 10}, remove: ["/params/arguments/debug"]}
  - name: slow-reads
    match: {method: resources/read}
    action: {delay: 300ms}
  - name: drop-debug
    match: {from: server, method: notifications/message, params: {"/level": "debug"}}
    action: drop
  - name: drop-client-noise
    match: {method: notifications/roots/list_changed}
    action: drop
  - name: tag-echo-results
    match: {from: server, kind: response, method: tools/call, tool: echo}
    action: {set: {"/result/tagged": true}, remove: ["/result/secret"]}
"#;

pub fn with_rules(upstream: &str, rules: &str) -> Config {
    Config {
        interceptors: InterceptorsConfig {
            rules: RuleSet::from_yaml(rules).unwrap(),
            rules_file: None,
            watch: false,
        },
        ..config_for(upstream)
    }
}

/// An upstream that answers every request with a JSON result naming what it got.
pub async fn echo_upstream() -> MockUpstream {
    MockUpstream::start(|req| {
        let body = req.json();
        match body["method"].as_str() {
            Some("tools/list") => Reply::json(json!({"jsonrpc":"2.0","id":body["id"],"result":{
                "tools":[{"name":"echo"},{"name":"admin_reset"},{"name":"admin_drop"}]}})),
            Some(_) if body.get("id").is_some() => {
                Reply::json(json!({"jsonrpc":"2.0","id":body["id"],"result":{"got": body}}))
            }
            _ => Reply::Full {
                status: 202,
                headers: vec![],
                body: vec![],
            },
        }
    })
    .await
}
