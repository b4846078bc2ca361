use std::borrow::Cow;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn single(body: &str) -> Message<'_> {
    match peek(body.as_bytes()).unwrap() {
        Peek::Single(m) => m,
        Peek::Batch(_) => panic!("batch"),
    }
}

#[test]
fn kinds() {
    let m = single(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":[1,2]}}}"#,
    );
    assert_eq!(m.kind, MessageKind::Request);
    assert_eq!(m.method.as_deref(), Some("tools/call"));
    assert_eq!(m.name.as_deref(), Some("echo"));
    assert_eq!(m.id.unwrap().get(), "1");
    assert!(m.has_jsonrpc_2);
    assert_eq!(
        single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).kind,
        MessageKind::Notification
    );
    assert_eq!(
        single(r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#).kind,
        MessageKind::Response
    );
    assert_eq!(
        single(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"x"}}"#).kind,
        MessageKind::Error
    );
    assert_eq!(single(r#"{"jsonrpc":"2.0"}"#).kind, MessageKind::Invalid);
    assert_eq!(
        single(r#"{"jsonrpc":"2.0","id":1,"method":7}"#).kind,
        MessageKind::Invalid
    );
    let m = single(
        r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}}"#,
    );
    assert_eq!(m.uri.as_deref(), Some("file:///a"));
    assert_eq!(m.name, None);
}

#[test]
fn strings_borrow_unless_escaped() {
    let m = single(r#"{"id":1,"method":"tools/call"}"#);
    assert!(matches!(m.method, Some(Cow::Borrowed(_))));
    let m = single(r#"{"id":1,"method":"tools\/call","params":{"name":"a\u0062"}}"#);
    assert!(matches!(m.method, Some(Cow::Owned(_))));
    assert_eq!(m.method.as_deref(), Some("tools/call"));
    assert_eq!(m.name.as_deref(), Some("ab"));
    let m = single(r#"{"i\u0064":1,"met\u0068od":"ping","params":{"\u006eame":"n"}}"#);
    assert_eq!(m.kind, MessageKind::Request, "escaped keys still match");
    assert_eq!(m.name.as_deref(), Some("n"));
}

#[test]
fn ids_echo_byte_exactly() {
    for id in ["1.50", r#""a\"b""#, "null", "-0", "1e3", "2.5e7777"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let p = peek(body.as_bytes()).unwrap();
        assert_eq!(p.reply_id().unwrap().get(), id);
    }
    let body = r#"{"id":1,"id":2,"method":"ping"}"#;
    assert_eq!(
        peek(body.as_bytes()).unwrap().reply_id().unwrap().get(),
        "2",
        "last duplicate wins"
    );
}

#[test]
fn params_shapes() {
    assert_eq!(
        single(r#"{"id":1,"method":"m","params":[1,{"name":"x"}]}"#).name,
        None
    );
    assert_eq!(single(r#"{"id":1,"method":"m"}"#).name, None);
    assert_eq!(
        single(r#"{"id":1,"method":"m","params":{"name":5}}"#).name,
        None
    );
    assert_eq!(single(r#"{"id":1,"method":"m","params":null}"#).name, None);
}

#[test]
fn batches() {
    let body = r#"[{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":9,"method":"tools/list"},42]"#;
    let p = peek(body.as_bytes()).unwrap();
    assert!(p.is_batch());
    assert_eq!(p.messages().len(), 3);
    assert_eq!(p.messages()[2].kind, MessageKind::Invalid);
    assert_eq!(
        p.method(),
        Some("tools/list"),
        "the first request names the batch"
    );
    assert!(p.has_requests());
    assert!(p.reply_id().is_none());
    let p = peek(br#"[{"jsonrpc":"2.0","method":"notifications/x"}]"#).unwrap();
    assert!(!p.has_requests());
    assert_eq!(p.method(), Some("notifications/x"));
}

#[test]
fn big_params_are_skipped() {
    let blob = "x".repeat(1 << 20);
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"blob":blob,"n":[1,2,3]},"name":"big"}}).to_string();
    let m = single(&body);
    assert_eq!(m.name.as_deref(), Some("big"));
}

#[test]
fn errors() {
    assert_eq!(peek(b"").unwrap_err(), PeekError::Empty);
    assert_eq!(peek(b" \n").unwrap_err(), PeekError::Empty);
    assert_eq!(peek(b"[]").unwrap_err(), PeekError::EmptyBatch);
    assert_eq!(peek(b"42").unwrap_err(), PeekError::NotObjectOrArray);
    assert_eq!(peek(br#""x""#).unwrap_err(), PeekError::NotObjectOrArray);
    assert!(matches!(
        peek(br#"{"id":1,"method":"a""#),
        Err(PeekError::NotJson(_))
    ));
    assert!(matches!(
        peek(br#"{"id":1} trailing"#),
        Err(PeekError::NotJson(_))
    ));
    assert!(matches!(
        peek(b"{\"method\":\"\xff\"}"),
        Err(PeekError::NotJson(_))
    ));
    assert!(matches!(
        peek(b"\xEF\xBB\xBF{}"),
        Err(PeekError::NotJson(_))
    ));
}

/// Skipped values are walked without recursion, so depth cannot overflow the stack; the
/// recursion limit still guards the parts the visitor descends into.
#[test]
fn deep_nesting_never_overflows_the_stack() {
    let open = "[".repeat(100_000);
    let closed = format!("{open}{}", "]".repeat(100_000));
    assert!(peek(open.as_bytes()).is_err());
    let skipped = format!(r#"{{"id":1,"method":"m","params":{{"a":{closed}}}}}"#);
    assert_eq!(peek(skipped.as_bytes()).unwrap().method(), Some("m"));
    let batch = format!("[{closed}]");
    assert!(matches!(
        peek(batch.as_bytes()),
        Ok(_) | Err(PeekError::TooDeep)
    ));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    assert!(matches!(
        peek(objects.as_bytes()),
        Err(PeekError::TooDeep) | Ok(_)
    ));
}

proptest! {
    #[test]
    fn never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(p) = peek(&data) {
            let _ = (p.method(), p.reply_id(), p.has_requests(), p.is_batch());
        }
    }

    #[test]
    fn agrees_with_a_full_parse(method in "[a-z/]{1,20}", id in any::<i64>(), name in ".{0,16}", sid in "[a-z0-9]{0,8}", use_str in any::<bool>()) {
        let id = if use_str { json!(sid) } else { json!(id) };
        let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":{"name":name,"arguments":{"k":[1,{"z":null}]}}}).to_string();
        let p = peek(body.as_bytes()).unwrap();
        prop_assert_eq!(p.method(), Some(method.as_str()));
        prop_assert_eq!(p.messages()[0].name.as_deref(), Some(name.as_str()));
        let echoed: serde_json::Value = serde_json::from_str(p.reply_id().unwrap().get()).unwrap();
        prop_assert_eq!(echoed, id);
    }
}

/// Regression (found by fuzzing jsonrpc_peek): ids of other types than string, number or null
/// are not JSON-RPC ids; the error reply answers them with `null`. Numbers are echoed exactly,
/// even ones no f64 holds.
#[test]
fn regression_only_valid_ids_are_echoed() {
    for id in [r#"{"x":1}"#, "[1]", "true", "false"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        assert!(peek(body.as_bytes()).unwrap().reply_id().is_none(), "{id}");
    }
    let p = peek(br#"{"id":2.57e7777,"method":"m"}"#).unwrap();
    assert_eq!(p.reply_id().unwrap().get(), "2.57e7777");
    let reply = crate::mcp::error_body(p.reply_id(), crate::mcp::ErrorCode::InternalError, "x");
    assert!(
        serde_json::from_slice::<serde::de::IgnoredAny>(&reply).is_ok(),
        "valid JSON"
    );
}
