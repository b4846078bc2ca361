use super::*;

const HEADER: &str = r#"{"tape":"shadowcat-tape/1","proxy_version":"0.1.0","protocol_version":"2025-11-25","upstream":"u","started":"2026-12-03T19:00:00.000Z","started_unix_ms":1,"session":true}"#;

fn tape(lines: &[String]) -> Tape {
    let mut t = format!("{HEADER}\n");
    for l in lines {
        t.push_str(l);
        t.push('\n');
    }
    check::parse(t.as_bytes()).unwrap()
}

fn call(x: u64, id: u64, params: &str, answer: &str) -> [String; 2] {
    [
        format!(
            r#"{{"dir":"c2s","exchange":{x},"t_ms":{x},"http":"POST","message":{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}}}"#
        ),
        format!(
            r#"{{"dir":"s2c","exchange":{x},"t_ms":{},"status":200,"message":{{"jsonrpc":"2.0","id":{id},"result":{{"text":"{answer}"}}}}}}"#,
            x + 1
        ),
    ]
}

fn body(r: &Recorded) -> String {
    match &r.answer {
        Answer::Json { body, .. } => body.clone().unwrap(),
        Answer::Sse { .. } => panic!("sse"),
    }
}

#[test]
fn matching_ignores_ids_meta_key_order_and_configured_fields() {
    let lines: Vec<String> = [
        call(
            1,
            7,
            r#"{"name":"echo","arguments":{"text":"a","at":1},"_meta":{"progressToken":7}}"#,
            "first",
        ),
        call(
            3,
            8,
            r#"{"name":"echo","arguments":{"text":"a","at":2}}"#,
            "second",
        ),
        call(5, 9, r#"{"name":"add","arguments":{"a":1,"b":2}}"#, "three"),
    ]
    .concat();
    let lib = Library::from_tapes(&[tape(&lines)], &["/arguments/at".to_owned()]).unwrap();
    assert_eq!(lib.len(), 3);
    let p = lib.normalize(&serde_json::json!({"arguments":{"at":99,"text":"a"},"name":"echo","_meta":{"progressToken":1}}));
    let first = lib.find("tools/call", &p, 0).unwrap();
    assert!(body(first).contains("first"));
    assert!(body(lib.find("tools/call", &p, 1).unwrap()).contains("second"));
    assert!(
        body(lib.find("tools/call", &p, 5).unwrap()).contains("second"),
        "the last again"
    );

    let miss = lib.normalize(&serde_json::json!({"name":"add","arguments":{"a":1,"b":3}}));
    assert!(lib.find("tools/call", &miss, 0).is_none());
    let near = lib.closest("tools/call", &miss).unwrap();
    assert_eq!(near.request["params"]["name"], "add");
    assert!(lib.knows_method("tools/call"));
    assert!(!lib.knows_method("prompts/get"));
    assert!(Library::from_tapes(&[tape(&lines)], &["cursor".to_owned()]).is_err());
}

#[test]
fn sse_answers_keep_their_events_and_spacing_and_initialize_its_session() {
    let lines = vec![
        r#"{"dir":"c2s","exchange":1,"t_ms":0,"http":"POST","message":{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}}"#.to_owned(),
        r#"{"dir":"s2c","exchange":1,"t_ms":2,"status":200,"headers":{"mcp-session-id":"x"},"message":{"jsonrpc":"2.0","id":0,"result":{}}}"#.to_owned(),
        r#"{"dir":"c2s","exchange":2,"t_ms":10,"http":"POST","message":{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow"}}}"#.to_owned(),
        r#"{"dir":"s2c","exchange":2,"t_ms":15,"status":200,"sse":{"n":0,"id":"0-1"},"message":{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}}"#.to_owned(),
        r#"{"dir":"s2c","exchange":2,"t_ms":45,"status":200,"sse":{"n":1,"id":"0-2"},"message":{"jsonrpc":"2.0","id":1,"result":{}}}"#.to_owned(),
        r#"{"dir":"s2c","exchange":2,"t_ms":46,"status":200,"sse":{"n":2,"end":true}}"#.to_owned(),
        r#"{"dir":"c2s","exchange":3,"t_ms":50,"http":"GET"}"#.to_owned(),
        r#"{"dir":"s2c","exchange":3,"t_ms":51,"status":405}"#.to_owned(),
    ];
    let lib = Library::from_tapes(&[tape(&lines)], &[]).unwrap();
    assert!(lib.sessions);
    assert!(lib.initialize.is_some());
    assert!(matches!(lib.get, Some(Answer::Json { status: 405, .. })));
    let slow = lib
        .find(
            "tools/call",
            &lib.normalize(&serde_json::json!({"name":"slow"})),
            0,
        )
        .unwrap();
    let Answer::Sse { events, .. } = &slow.answer else {
        panic!()
    };
    assert_eq!(
        events.iter().map(|e| e.delay_ms).collect::<Vec<_>>(),
        [5, 30]
    );
    assert_eq!(events[1].id.as_deref(), Some("0-2"));
}
