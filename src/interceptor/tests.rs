use std::time::Duration;

use serde_json::json;

use super::*;

fn client(method: &'static str, tool: Option<&'static str>) -> MessageView<'static> {
    MessageView {
        from: From::Client,
        kind: Kind::Request,
        method,
        tool,
        uri: None,
        upstream: None,
        params: None,
    }
}

fn example() -> RuleSet {
    RuleSet::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/rules.yaml"
    )))
    .unwrap()
}

#[test]
fn the_example_file_loads_with_every_action() {
    let rules = example();
    assert_eq!(rules.rules().len(), 6);
}

#[test]
fn block_mock_and_accumulating_actions() {
    let rules = example();
    let d = rules.evaluate(&client("tools/call", Some("delete_file")));
    assert_eq!(d.terminal.map(|(n, _)| n), Some("block-deletes"));
    assert!(matches!(
        d.terminal.unwrap().1,
        Terminal::Block { code: -32001, .. }
    ));
    let d = rules.evaluate(&client("tools/call", Some("get_weather")));
    assert!(matches!(d.terminal, Some((_, Terminal::Mock(Ok(_))))));
    let d = rules.evaluate(&client("tools/call", Some("search")));
    assert!(d.terminal.is_none());
    assert_eq!(d.set.len(), 1);
    assert_eq!(d.remove, ["/params/arguments/debug"]);
    let d = rules.evaluate(&client("resources/read", None));
    assert_eq!(d.delay, Duration::from_millis(200));
    let d = rules.evaluate(&client("tools/call", Some("echo")));
    assert!(d.matched.is_empty());
}

#[test]
fn server_messages_params_and_hidden_tools() {
    let rules = example();
    let debug = json!({"level": "debug", "data": "x"});
    let info = json!({"level": "info", "data": "x"});
    let note = |params| MessageView {
        from: From::Server,
        kind: Kind::Notification,
        method: "notifications/message",
        tool: None,
        uri: None,
        upstream: None,
        params: Some(params),
    };
    assert!(matches!(
        rules.evaluate(&note(&debug)).terminal,
        Some((_, Terminal::Drop))
    ));
    assert!(rules.evaluate(&note(&info)).terminal.is_none());
    let list = MessageView {
        from: From::Server,
        kind: Kind::Response,
        method: "tools/list",
        tool: None,
        uri: None,
        upstream: None,
        params: None,
    };
    let d = rules.evaluate(&list);
    let mut result =
        json!({"tools": [{"name": "admin_reset"}, {"name": "echo"}, {"name": "admin_drop"}]});
    assert_eq!(hide_tools(&mut result, &d.hide_tools), 2);
    assert_eq!(result, json!({"tools": [{"name": "echo"}]}));
    assert_eq!(
        rules.hidden_tool(None, "admin_reset"),
        Some("hide-admin-tools")
    );
    assert_eq!(rules.hidden_tool(None, "echo"), None);
}

#[test]
fn the_fast_path_knows_which_classes_can_match() {
    let rules = example();
    assert!(rules.may_match(From::Client, Kind::Request, "tools/call"));
    assert!(rules.may_match(From::Server, Kind::Response, "tools/list"));
    assert!(rules.may_match(From::Server, Kind::Notification, "notifications/message"));
    assert!(!rules.may_match(From::Client, Kind::Request, "ping"));
    assert!(!rules.may_match(From::Server, Kind::Notification, "notifications/progress"));
    assert!(!RuleSet::default().may_match(From::Client, Kind::Request, "tools/call"));
    let globbed = RuleSet::from_yaml(
        "rules:\n  - {name: a, match: {from: server, method: 'notifications/*'}, action: drop}\n",
    )
    .unwrap();
    assert!(globbed.may_match(From::Server, Kind::Notification, "notifications/progress"));
    assert!(!globbed.may_match(From::Client, Kind::Notification, "notifications/progress"));
}

#[test]
fn set_and_remove_follow_json_pointers() {
    let mut msg = json!({"params": {"arguments": {"limit": 500, "debug": true, "a/b": 1}}});
    set(&mut msg, "/params/arguments/limit", json!(10)).unwrap();
    set(&mut msg, "/params/_meta/tag", json!("x")).unwrap();
    remove(&mut msg, "/params/arguments/debug");
    remove(&mut msg, "/params/arguments/a~1b");
    remove(&mut msg, "/no/such/thing");
    assert_eq!(
        msg,
        json!({"params": {"arguments": {"limit": 10}, "_meta": {"tag": "x"}}})
    );
    assert!(
        set(&mut json!({"a": 1}), "/a/b", json!(1)).is_err(),
        "cannot descend into a scalar"
    );
}

#[test]
fn bad_rule_files_are_rejected_naming_the_rule() {
    let cases = [
        ("rules:\n  - {name: a, action: drop, bogus: 1}\n", "bogus"),
        ("rules:\n  - {name: a, match: {method: x}, action: {block: {}}}\n  - {name: a, match: {method: y}, action: {block: {}}}\n", "duplicate"),
        ("rules:\n  - {name: b, match: {from: server, method: tools/list}, action: {block: {}}}\n", "(\"b\")"),
        ("rules:\n  - {name: c, match: {method: tools/call}, action: drop}\n", "drop applies"),
        ("rules:\n  - {name: d, match: {from: server, method: x}, action: {mock: {result: 1}}}\n", "mock"),
        ("rules:\n  - {name: e, match: {method: tools/call}, action: {hide_tools: [x]}}\n", "hide_tools"),
        ("rules:\n  - {name: f, match: {params: {nope: 1}}, action: {delay: 1s}}\n", "JSON pointer"),
        ("rules:\n  - {name: g, match: {tool: ''}, action: {delay: 1s}}\n", "empty tool"),
        ("rules:\n  - {name: h, match: {}, action: {delay: forever}}\n", "delay"),
        ("rules:\n  - {name: i, match: {}, action: {}}\n", "nothing to do"),
        ("rules:\n  - {name: j, match: {}, action: {block: {}, mock: {result: 1}}}\n", "at most one"),
        ("rules:\n  - {name: k, match: {from: nobody}, action: drop}\n", "match.from"),
        ("rules:\n  - {name: l, match: {kind: notification}, action: {mock: {result: 1}}}\n", "no request"),
        ("rules:\n  - {name: m, action: explode}\n", "bare action"),
    ];
    for (text, want) in cases {
        let e = RuleSet::from_yaml(text).expect_err(text).to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}
