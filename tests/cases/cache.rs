//! The MCP result cache (issue 19): hits keep the new id and lower `ttlMs`, private entries
//! stay with their principal, interim results and retries bypass, configured rules serve
//! servers without hints until a list-changed notification, concurrent misses make one
//! upstream request, and the admin listener purges.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use shadowcat::cache::{Rule, Scope, Settings};
use shadowcat::config::Config;

use crate::cases::interceptors::with_rules;
use crate::support::*;

fn list(id: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/list","params":{"_meta":{"progressToken":1}}})
}

/// An upstream whose tools/list results carry `hints` (merged into the result), counting
/// the tools/list requests it answers.
async fn hinted(hints: Value) -> (MockUpstream, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let mock = MockUpstream::start(move |req| {
        let body = req.json();
        if body["method"] == "tools/list" {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        let mut result = json!({"tools":[{"name":"echo"},{"name":"admin_reset"}]});
        if let (Some(r), Some(h)) = (result.as_object_mut(), hints.as_object()) {
            r.extend(h.clone());
        }
        if body["params"].get("requestState").is_some() {
            result["retried"] = json!(true);
        }
        Reply::json(json!({"jsonrpc":"2.0","id":body["id"],"result":result}))
    })
    .await;
    (mock, count)
}

async fn post_as(client: &reqwest::Client, url: &str, body: &Value, auth: Option<&str>) -> Value {
    let mut req = client
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", body["method"].as_str().unwrap_or(""));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.body(body.to_string()).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("JSON reply")
}

#[tokio::test]
async fn a_second_tools_list_is_answered_from_the_cache_with_its_own_id() {
    let (mock, count) = hinted(json!({"ttlMs": 60000, "cacheScope": "public"})).await;
    let proxy = Proxy::start(config_for(&mock.url())).await;
    let c = client();
    let first = post_as(&c, &proxy.url(), &list(json!(1)), None).await;
    assert_eq!(first["result"]["ttlMs"], 60000);
    let second = post_as(&c, &proxy.url(), &list(json!("two")), None).await;
    assert_eq!(second["id"], "two");
    assert_eq!(second["result"]["tools"], first["result"]["tools"]);
    let ttl = second["result"]["ttlMs"].as_u64().unwrap();
    assert!(ttl <= 60000 && ttl > 50000, "ttlMs {ttl}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let m = proxy.metrics().await;
    let series =
        |r: &str| format!("shadowcat_cache_requests_total{{method=\"tools/list\",result=\"{r}\"}}");
    assert_eq!(sample(&m, &series("hit")), Some(1.0));
    assert_eq!(sample(&m, &series("miss")), Some(1.0));
    assert!(sample(&m, "shadowcat_cache_bytes").unwrap() > 0.0);
}

#[tokio::test]
async fn expiry_is_honoured() {
    let (mock, count) = hinted(json!({"ttlMs": 300, "cacheScope": "public"})).await;
    let proxy = Proxy::start(config_for(&mock.url())).await;
    let c = client();
    post_as(&c, &proxy.url(), &list(json!(1)), None).await;
    post_as(&c, &proxy.url(), &list(json!(2)), None).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    post_as(&c, &proxy.url(), &list(json!(3)), None).await;
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_private_entry_is_never_served_to_another_principal() {
    let (mock, count) = hinted(json!({"ttlMs": 60000, "cacheScope": "private"})).await;
    let proxy = Proxy::start(config_for(&mock.url())).await;
    let c = client();
    let url = proxy.url();
    post_as(&c, &url, &list(json!(1)), Some("Bearer alice")).await;
    post_as(&c, &url, &list(json!(2)), Some("Bearer alice")).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "alice's second list is a hit"
    );
    post_as(&c, &url, &list(json!(3)), Some("Bearer bob")).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "bob never gets alice's entry"
    );
    // Without a principal a private result is not cached at all.
    post_as(&c, &url, &list(json!(4)), None).await;
    post_as(&c, &url, &list(json!(5)), None).await;
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn interim_results_errors_and_retries_bypass() {
    let (mock, count) =
        hinted(json!({"ttlMs": 60000, "cacheScope": "public", "resultType": "input_required"}))
            .await;
    let proxy = Proxy::start(config_for(&mock.url())).await;
    let c = client();
    post_as(&c, &proxy.url(), &list(json!(1)), None).await;
    post_as(&c, &proxy.url(), &list(json!(2)), None).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "input_required is never cached"
    );

    let (mock, count) = hinted(json!({"ttlMs": 60000, "cacheScope": "public"})).await;
    let proxy = Proxy::start(config_for(&mock.url())).await;
    let retry =
        json!({"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"requestState":"s1"}});
    let a = post_as(&c, &proxy.url(), &retry, None).await;
    let b = post_as(&c, &proxy.url(), &retry, None).await;
    assert_eq!(
        (
            a["result"]["retried"].clone(),
            b["result"]["retried"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(count.load(Ordering::SeqCst), 2, "requestState bypasses");
    let m = proxy.metrics().await;
    let bypass = "shadowcat_cache_requests_total{method=\"tools/list\",result=\"bypass\"}";
    assert_eq!(sample(&m, bypass), Some(2.0));
    // A retry's result did not fill the cache for plain requests either.
    post_as(&c, &proxy.url(), &list(json!(1)), None).await;
    assert_eq!(count.load(Ordering::SeqCst), 3);

    let errors = MockUpstream::start(|req| {
        let id = req.json()["id"].clone();
        Reply::json(json!({"jsonrpc":"2.0","id":id,"error":{"code":-32603,"message":"x","data":{"ttlMs":60000}}}))
    })
    .await;
    let proxy = Proxy::start(config_for(&errors.url())).await;
    post_as(&c, &proxy.url(), &list(json!(1)), None).await;
    post_as(&c, &proxy.url(), &list(json!(2)), None).await;
    assert_eq!(errors.received().len(), 2, "errors are never cached");
}

#[tokio::test]
async fn hide_tools_applies_to_answers_from_the_cache() {
    let (mock, count) = hinted(json!({"ttlMs": 60000, "cacheScope": "public"})).await;
    let rules = r#"
rules:
  - name: hide-admin
    match: {from: server, kind: response, method: tools/list}
    action: {hide_tools: ["admin_*"]}
"#;
    let proxy = Proxy::start(with_rules(&mock.url(), rules)).await;
    let c = client();
    let first = post_as(&c, &proxy.url(), &list(json!(1)), None).await;
    let second = post_as(&c, &proxy.url(), &list(json!(2)), None).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    for reply in [first, second] {
        assert_eq!(
            reply["result"]["tools"],
            json!([{"name":"echo"}]),
            "{reply}"
        );
    }
}

/// A server without hints (2025-06-18), cached by a configured rule until it says its tools
/// changed, on the SSE stream of another request.
#[tokio::test]
async fn a_configured_rule_caches_until_a_list_changed_notification() {
    rule_cached_until_list_changed(None).await;
}

/// The same with server rules on the stream: events go through the interceptors' judge, and
/// the cache still sees the notification (which the rules let pass).
#[tokio::test]
async fn list_changed_on_a_stream_the_rules_judge_still_drops_the_entry() {
    let rules = r#"
rules:
  - name: drop-debug
    match: {from: server, method: notifications/message, params: {"/level": "debug"}}
    action: drop
"#;
    rule_cached_until_list_changed(Some(rules)).await;
}

async fn rule_cached_until_list_changed(rules: Option<&str>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let mock = MockUpstream::start(move |req| {
        let body = req.json();
        match body["method"].as_str() {
            Some("tools/list") => {
                seen.fetch_add(1, Ordering::SeqCst);
                Reply::json(json!({"jsonrpc":"2.0","id":body["id"],"result":{"tools":[]}}))
            }
            _ => {
                let note = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
                let done = json!({"jsonrpc":"2.0","id":body["id"],"result":{"content":[]}});
                let events = [format!("data: {note}\n\n"), format!("data: {done}\n\n")];
                let events: Vec<&str> = events.iter().map(String::as_str).collect();
                Reply::sse(&events, Duration::ZERO, false)
            }
        }
    })
    .await;
    let config = Config {
        cache: Some(Settings {
            max_bytes: 1 << 20,
            rules: vec![Rule {
                method: "tools/list",
                upstream: Some("mock".into()),
                ttl: Duration::from_secs(60),
                scope: Scope::Public,
            }],
        }),
        ..rules.map_or_else(|| config_for(&mock.url()), |r| with_rules(&mock.url(), r))
    };
    let proxy = Proxy::start(config).await;
    let c = client();
    let url = proxy.url();
    let send = |body: Value| {
        c.post(&url)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_string())
            .send()
    };
    let first: Value = send(list(json!(1))).await.unwrap().json().await.unwrap();
    assert!(
        first["result"].get("ttlMs").is_none(),
        "no hint is invented"
    );
    send(list(json!(2))).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let text = send(call(3, "touch")).await.unwrap().text().await.unwrap();
    assert!(text.contains("list_changed"), "{text}");
    send(list(json!(4))).await.unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "the notification dropped the entry"
    );
}

#[tokio::test]
async fn a_hundred_concurrent_misses_make_one_upstream_request() {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let mock = MockUpstream::start(move |req| {
        let body = req.json();
        seen.fetch_add(1, Ordering::SeqCst);
        let result = json!({"tools":[],"ttlMs":60000,"cacheScope":"public"});
        let reply = Reply::json(json!({"jsonrpc":"2.0","id":body["id"],"result":result}));
        Reply::After(Duration::from_millis(300), Box::new(reply))
    })
    .await;
    let proxy = Proxy::start(config_for(&mock.url())).await;
    let c = client();
    let url = proxy.url();
    let bodies: Vec<Value> = (0..100).map(|i| list(json!(i))).collect();
    let replies =
        futures_util::future::join_all(bodies.iter().map(|b| post_as(&c, &url, b, None))).await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r["id"], i, "{r}");
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_admin_listener_purges_and_enabled_false_turns_the_cache_off() {
    let (mock, count) = hinted(json!({"ttlMs": 60000, "cacheScope": "public"})).await;
    let proxy = Proxy::start(config_for(&mock.url())).await;
    let c = client();
    post_as(&c, &proxy.url(), &list(json!(1)), None).await;
    let purge = |q: &str| {
        c.post(format!("http://{}/cache/purge{q}", proxy.admin))
            .send()
    };
    let r = purge("?upstream=other")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(r.trim(), r#"{"purged":0}"#);
    let r = purge("?upstream=mock&method=tools%2Flist").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().trim(), r#"{"purged":1}"#);
    assert_eq!(purge("?bogus=1").await.unwrap().status(), 400);
    let get = c
        .get(format!("http://{}/cache/purge", proxy.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    post_as(&c, &proxy.url(), &list(json!(2)), None).await;
    assert_eq!(count.load(Ordering::SeqCst), 2);

    let (mock, count) = hinted(json!({"ttlMs": 60000, "cacheScope": "public"})).await;
    let config = Config {
        cache: None,
        ..config_for(&mock.url())
    };
    let proxy = Proxy::start(config).await;
    post_as(&c, &proxy.url(), &list(json!(1)), None).await;
    post_as(&c, &proxy.url(), &list(json!(2)), None).await;
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let r = c
        .post(format!("http://{}/cache/purge", proxy.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// An upstream that answers on an SSE stream (a notification first): the response event is
/// stored; a hit goes out as JSON, or as one SSE event to a client that accepts only SSE.
#[tokio::test]
async fn an_sse_response_is_cached_and_served_as_json_or_as_one_event() {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let mock = MockUpstream::start(move |req| {
        let body = req.json();
        seen.fetch_add(1, Ordering::SeqCst);
        let note =
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}"#;
        let result = json!({"tools":[{"name":"echo"}],"ttlMs":60000,"cacheScope":"public"});
        let done = json!({"jsonrpc":"2.0","id":body["id"],"result":result});
        let events = [format!("data: {note}\n\n"), format!("data: {done}\n\n")];
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        Reply::sse(&events, Duration::ZERO, false)
    })
    .await;
    let proxy = Proxy::start(config_for(&mock.url())).await;
    let c = client();
    let send = |id: u64, accept: &'static str| {
        c.post(proxy.url())
            .header("accept", accept)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .body(list(json!(id)).to_string())
            .send()
    };
    let first = send(1, ACCEPT_BOTH).await.unwrap().text().await.unwrap();
    assert!(first.contains("notifications/message"), "{first}");
    let json_hit = send(2, ACCEPT_BOTH).await.unwrap();
    assert_eq!(
        json_hit.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let json_hit: Value = json_hit.json().await.unwrap();
    assert_eq!(json_hit["id"], 2);
    assert_eq!(json_hit["result"]["tools"], json!([{"name":"echo"}]));
    let sse_hit = send(3, "text/event-stream").await.unwrap();
    assert_eq!(
        sse_hit.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = sse_hit.text().await.unwrap();
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .expect("one data line")
        .trim();
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["id"], 3);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// MCP 2026-07-28: the cache never answers a request the upstream would refuse for its
/// `Mcp-Method` header; the refusal comes from the upstream.
#[tokio::test]
async fn a_request_whose_headers_disagree_with_its_body_is_not_answered_from_the_cache() {
    let (mock, count) = hinted(json!({"ttlMs": 60000, "cacheScope": "public"})).await;
    let proxy = Proxy::start(config_for(&mock.url())).await;
    let c = client();
    post_as(&c, &proxy.url(), &list(json!(1)), None).await;
    let wrong = c
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "prompts/list")
        .body(list(json!(2)).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 200, "the mock does not check; it was asked");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let m = proxy.metrics().await;
    let bypass = "shadowcat_cache_requests_total{method=\"tools/list\",result=\"bypass\"}";
    assert_eq!(sample(&m, bypass), Some(1.0));
}
