use serde_json::{json, Value};

use super::*;
use crate::interceptor::{plan_event, plan_response, EventPlan, RuleSet};
use crate::mcp::peek::peek;

fn example() -> RuleSet {
    RuleSet::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/rules.yaml"
    )))
    .unwrap()
}

fn plan<'r>(rules: &'r RuleSet, body: &Value) -> (RequestPlan<'r>, Vec<u8>) {
    let text = body.to_string().into_bytes();
    let p = peek(&text).unwrap();
    (plan_request(rules, &text, &p, Some("up")), text)
}

fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

fn json_of(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

#[test]
fn unmatched_requests_pass_untouched() {
    let rules = example();
    let (p, _) = plan(&rules, &call(1, "echo", json!({})));
    assert!(p.is_pass());
    assert!(p.body.is_none());
    assert_eq!((p.forwarded, p.forwarded_requests), (1, 1));
}

#[test]
fn block_and_mock_answer_with_the_request_id() {
    let rules = example();
    let (p, _) = plan(&rules, &call(7, "delete_file", json!({})));
    assert_eq!(p.forwarded, 0);
    let a = json_of(&p.answers[0]);
    assert_eq!(a["id"], 7);
    assert_eq!(a["error"]["code"], -32001);
    assert_eq!(a["error"]["message"], "deletes are disabled here");
    assert_eq!(
        p.hits,
        [Hit {
            rule: "block-deletes",
            action: "block"
        }]
    );

    let (p, _) = plan(&rules, &call(8, "get_weather", json!({})));
    let a = json_of(&p.answers[0]);
    assert_eq!(a["result"]["content"][0]["text"], "sunny");
    assert_eq!(a["id"], 8);
}

#[test]
fn set_and_remove_rewrite_the_forwarded_body() {
    let rules = example();
    let (p, _) = plan(
        &rules,
        &call(3, "search", json!({"q": "x", "limit": 500, "debug": true})),
    );
    assert_eq!(p.forwarded, 1);
    let body = json_of(p.body.as_ref().unwrap());
    assert_eq!(body["params"]["arguments"], json!({"q": "x", "limit": 10}));
    assert_eq!(body["id"], 3);
    let actions: Vec<_> = p.hits.iter().map(|h| h.action).collect();
    assert_eq!(actions, ["set", "remove"]);
}

#[test]
fn delay_accumulates_and_changes_nothing() {
    let rules = example();
    let (p, _) = plan(
        &rules,
        &json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}),
    );
    assert_eq!(p.delay, std::time::Duration::from_millis(200));
    assert!(p.body.is_none());
    assert_eq!(p.forwarded, 1);
}

#[test]
fn calls_to_hidden_tools_are_refused_like_unknown_tools() {
    let rules = example();
    let (p, _) = plan(&rules, &call(4, "admin_reset", json!({})));
    assert_eq!(p.forwarded, 0);
    let a = json_of(&p.answers[0]);
    assert_eq!(a["error"]["code"], -32602);
    assert_eq!(p.hits[0].action, "hide_tools");
}

#[test]
fn batches_keep_untouched_members_byte_for_byte() {
    let rules = example();
    let body = json!([
        call(1, "echo", json!({"a": 1})),
        call(2, "delete_file", json!({})),
        call(3, "search", json!({"limit": 99})),
        {"jsonrpc":"2.0","method":"notifications/initialized"}
    ]);
    let (p, _) = plan(&rules, &body);
    assert!(p.batch);
    assert_eq!((p.forwarded, p.forwarded_requests), (3, 2));
    assert_eq!(p.answers.len(), 1);
    let sent = json_of(p.body.as_ref().unwrap());
    assert_eq!(sent.as_array().unwrap().len(), 3);
    assert_eq!(sent[0], call(1, "echo", json!({"a": 1})));
    assert_eq!(sent[1]["params"]["arguments"]["limit"], 10);

    let merged = merge_answers(br#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#, &p.answers);
    let merged = json_of(&merged);
    assert_eq!(merged.as_array().unwrap().len(), 2);
    assert_eq!(merged[1]["id"], 2);
    let merged = json_of(&merge_answers(br#" {"id":1} "#, &p.answers));
    assert_eq!(merged[0]["id"], 1);
    assert_eq!(json_of(&merge_answers(b"", &p.answers))[0]["id"], 2);
}

#[test]
fn hide_tools_edits_tools_list_responses() {
    let rules = example();
    let calls = [Call {
        id: "5".into(),
        method: "tools/list".into(),
        name: None,
        uri: None,
    }];
    let body =
        json!({"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"echo"},{"name":"admin_reset"}]}});
    let mut hits = Vec::new();
    let out = plan_response(&rules, body.to_string().as_bytes(), &calls, None, &mut hits).unwrap();
    assert_eq!(json_of(&out)["result"]["tools"], json!([{"name": "echo"}]));
    assert_eq!(hits[0].action, "hide_tools");
    // A response to another request is left alone.
    let other = json!({"jsonrpc":"2.0","id":6,"result":{"tools":[{"name":"admin_reset"}]}});
    assert!(plan_response(
        &rules,
        other.to_string().as_bytes(),
        &calls,
        None,
        &mut hits
    )
    .is_none());
}

#[test]
fn sse_events_are_dropped_edited_or_passed() {
    let rules = example();
    let mut hits = Vec::new();
    let debug = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"debug","data":"x"}});
    let info = json!({"method":"notifications/message","params":{"level":"info","data":"x"},"jsonrpc":"2.0"});
    assert_eq!(
        plan_event(&rules, debug.to_string().as_bytes(), &[], None, &mut hits),
        EventPlan::Drop
    );
    assert_eq!(
        plan_event(&rules, info.to_string().as_bytes(), &[], None, &mut hits),
        EventPlan::Pass
    );
    assert_eq!(
        plan_event(&rules, b"not json", &[], None, &mut hits),
        EventPlan::Pass
    );
    let calls = [Call {
        id: "\"l\"".into(),
        method: "tools/list".into(),
        name: None,
        uri: None,
    }];
    let list =
        json!({"jsonrpc":"2.0","id":"l","result":{"tools":[{"name":"admin_x"},{"name":"b"}]}});
    match plan_event(&rules, list.to_string().as_bytes(), &calls, None, &mut hits) {
        EventPlan::Replace(data) => {
            assert_eq!(
                json_of(data.as_bytes())["result"]["tools"],
                json!([{"name": "b"}])
            )
        }
        other => panic!("{other:?}"),
    }
    // A batch on the stream: only the matching member goes.
    let batch = json!([debug, info]);
    match plan_event(&rules, batch.to_string().as_bytes(), &[], None, &mut hits) {
        EventPlan::Replace(data) => assert_eq!(json_of(data.as_bytes()), json!([info])),
        other => panic!("{other:?}"),
    }
}

/// Regression: the proxy's own answers (block, mock, hidden tool) and edited messages went
/// through `serde_json::Value`, so an id of 123456789012345678901234567890 came back as
/// 1.2345678901234568e+29 and `1.0e5` as 100000.0. Ids are now echoed as their raw text.
#[test]
fn ids_are_echoed_byte_for_byte() {
    let rules = example();
    let ids = [
        "123456789012345678901234567890",
        "1.0e5",
        "-0",
        "\"s\\u0041\"",
        "18446744073709551616",
    ];
    for id in ids {
        let request = |tool: &str, args: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
            )
        };
        let answer = |text: &str| {
            let p = peek(text.as_bytes()).unwrap();
            let plan = plan_request(&rules, text.as_bytes(), &p, Some("up"));
            String::from_utf8(plan.answers[0].to_vec()).unwrap()
        };
        assert_eq!(
            answer(&request("delete_file", "{}")),
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32001,"message":"deletes are disabled here"}}}}"#
            )
        );
        assert_eq!(
            answer(&request("get_weather", "{}")),
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"text":"sunny","type":"text"}}]}}}}"#
            )
        );
        assert!(answer(&request("admin_reset", "{}"))
            .starts_with(&format!(r#"{{"jsonrpc":"2.0","id":{id},"error""#)));
        // Batch members answered by the proxy keep theirs too.
        let batch = format!(
            "[{},{}]",
            request("delete_file", "{}"),
            request("get_weather", "{}")
        );
        let p = peek(batch.as_bytes()).unwrap();
        let plan = plan_request(&rules, batch.as_bytes(), &p, Some("up"));
        for a in &plan.answers {
            assert!(a.starts_with(format!(r#"{{"jsonrpc":"2.0","id":{id},"#).as_bytes()));
        }
        // An edited request keeps its id as written.
        let text = request("search", r#"{"limit":500}"#);
        let p = peek(text.as_bytes()).unwrap();
        let body = plan_request(&rules, text.as_bytes(), &p, Some("up"))
            .body
            .unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(body.contains(&format!(r#""id":{id},"#)), "{body}");
        assert!(body.contains(r#""limit":10"#), "{body}");
        // And so does an edited response.
        let calls = vec![Call {
            id: id.into(),
            method: "tools/list".into(),
            name: None,
            uri: None,
        }];
        let listed = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"admin_x"}},{{"name":"b"}}]}}}}"#
        );
        let mut hits = Vec::new();
        let out = plan_response(&rules, listed.as_bytes(), &calls, None, &mut hits).unwrap();
        let out = std::str::from_utf8(&out).unwrap();
        assert!(out.contains(&format!(r#""id":{id},"#)), "{out}");
        assert!(!out.contains("admin_x"), "{out}");
    }
}

#[test]
fn a_rule_that_sets_the_id_wins_over_the_raw_text() {
    let v = json!({"jsonrpc":"2.0","id":7,"method":"x"});
    let raw: Box<RawValue> = serde_json::from_str("1.0e5").unwrap();
    let out = to_raw_keeping_id(&v, Some(&raw)).unwrap();
    assert!(out.get().contains(r#""id":7"#), "{}", out.get());
}
