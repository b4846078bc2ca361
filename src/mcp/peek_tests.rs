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
    for id in [
        "1.50",
        r#""a\"b""#,
        "null",
        "-0",
        "1e3",
        "123456789012345678901234567890",
    ] {
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

/// Depth is bounded by `serde_json`'s recursion limit (128) everywhere, skipped values
/// included: deeper bodies are refused, never walked on the stack.
#[test]
fn deep_nesting_never_overflows_the_stack() {
    let open = "[".repeat(100_000);
    let closed = format!("{open}{}", "]".repeat(100_000));
    assert!(peek(open.as_bytes()).is_err());
    let skipped = format!(r#"{{"id":1,"method":"m","params":{{"a":{closed}}}}}"#);
    assert_eq!(peek(skipped.as_bytes()).unwrap_err(), PeekError::TooDeep);
    let batch = format!("[{closed}]");
    assert_eq!(peek(batch.as_bytes()).unwrap_err(), PeekError::TooDeep);
    let objects = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    assert_eq!(peek(objects.as_bytes()).unwrap_err(), PeekError::TooDeep);
}

/// Regression (issue "Fail closed", item 1): each of these bodies names a tool the upstream
/// runs (server-everything, or Python's `json`), but the peek could not read it, and the
/// proxy forwarded it undecided. The peek now refuses every one, so policy can refuse them.
#[test]
fn regression_bodies_lenient_parsers_accept_are_refused() {
    let call = |args: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"blocked","arguments":{args}}}}}"#
        )
    };
    let mut bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "byte-order mark",
            [b"\xEF\xBB\xBF".as_slice(), call("{}").as_bytes()].concat(),
        ),
        (
            "lone surrogate in an argument",
            call(r#"{"a":"\ud800"}"#).into_bytes(),
        ),
        (
            "lone trailing surrogate",
            call(r#"{"a":"\udc00x"}"#).into_bytes(),
        ),
        ("number past f64", call(r#"{"a":1e400}"#).into_bytes()),
        ("NaN", call(r#"{"a":NaN}"#).into_bytes()),
        ("Infinity", call(r#"{"a":-Infinity}"#).into_bytes()),
        (
            "129 levels",
            call(&format!("{}{}", "[".repeat(129), "]".repeat(129))).into_bytes(),
        ),
        (
            "lone surrogate in the id",
            br#"{"jsonrpc":"2.0","id":"\ud800","method":"tools/call","params":{"name":"blocked"}}"#
                .to_vec(),
        ),
        (
            "number past f64 as the id",
            br#"{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":{"name":"blocked"}}"#
                .to_vec(),
        ),
    ];
    // Invalid UTF-8 where the peek keeps nothing (`IgnoredAny` skipped it undecoded), and in
    // the name itself.
    for (args, mark) in [(r#"{"a":"XX"}"#, "XX"), ("{}", "blocked")] {
        let mut raw = call(args).into_bytes();
        let at = raw
            .windows(2)
            .position(|w| w == &mark.as_bytes()[..2])
            .unwrap();
        raw[at] = 0xff;
        raw[at + 1] = 0xfe;
        bodies.push(("invalid UTF-8", raw));
    }
    // UTF-16 (Python's json.loads accepts bytes in UTF-16 and UTF-32).
    let utf16: Vec<u8> = call("{}")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    bodies.push(("UTF-16", utf16));
    for (what, body) in bodies {
        assert!(peek(&body).is_err(), "{what} was accepted");
    }
    // Last-wins on duplicate keys, as every upstream parser we know reads them.
    let dup =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"blocked"}}"#;
    assert_eq!(single(dup).name.as_deref(), Some("blocked"));
    let escaped = r#"{"jsonrpc":"2.0","id":1,"meth\u006fd":"tools/call","params":{"n\u0061me":"bl\u006fcked"}}"#;
    let m = single(escaped);
    assert_eq!(
        (m.method.as_deref(), m.name.as_deref()),
        (Some("tools/call"), Some("blocked"))
    );
}

/// JSON text from a grammar built to find disagreements: the keys the peek acts on (plain and
/// escaped), duplicates, escapes, surrogates, numbers at and past the edges, nesting.
fn json_text(depth: u32) -> BoxedStrategy<String> {
    let atoms = prop::sample::select(vec![
        "1",
        "-0",
        "1e400",
        "2.57e7777",
        "123456789012345678901234567890",
        "1.5e-7",
        "null",
        "true",
        r#""x""#,
        r#""\ud800""#,
        r#""\ud83d\ude00""#,
        r#""\u006dethod""#,
        r#""tools/call""#,
        r#""a\"b""#,
        r#""2.0""#,
        "[]",
        "{}",
    ])
    .prop_map(str::to_owned)
    .boxed();
    if depth == 0 {
        return atoms;
    }
    let keys = prop::sample::select(vec![
        "method",
        "id",
        "params",
        "name",
        "uri",
        "jsonrpc",
        "result",
        "error",
        "x",
        r"meth\u006fd",
        r"n\u0061me",
        r"\ud800",
    ]);
    let inner = json_text(depth - 1);
    prop_oneof![
        2 => atoms,
        2 => prop::collection::vec((keys, inner.clone()), 0..6).prop_map(|kv| {
            let body: Vec<String> = kv.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
            format!("{{{}}}", body.join(","))
        }),
        1 => prop::collection::vec(inner, 0..4).prop_map(|v| format!("[{}]", v.join(","))),
    ]
    .boxed()
}

proptest! {
    /// The judge's promise (also the `judge_differential` fuzz target): what the peek accepts,
    /// `serde_json` reads the same way.
    #[test]
    fn accepted_bodies_read_as_serde_json_reads_them(text in json_text(4)) {
        let r = crate::mcp::differential::agrees_with_serde_json(text.as_bytes());
        prop_assert!(r.is_ok(), "{}: {:?}", text, r);
    }

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
    // Numbers are echoed exactly, even ones no f64 holds exactly.
    let p = peek(br#"{"id":123456789012345678901234567890,"method":"m"}"#).unwrap();
    assert_eq!(
        p.reply_id().unwrap().get(),
        "123456789012345678901234567890"
    );
    let reply = crate::mcp::error_body(p.reply_id(), crate::mcp::ErrorCode::InternalError, "x");
    assert!(
        reply
            .windows(30)
            .any(|w| w == b"123456789012345678901234567890"),
        "echoed byte for byte"
    );
    // One past f64's range is refused (an upstream would read it as Infinity).
    assert!(peek(br#"{"id":2.57e7777,"method":"m"}"#).is_err());
}
