//! Hostile input with policy on (issue "Fail closed"), table-driven: last round's thirty bad
//! requests plus every class the fail-closed work names, each answered with the right status
//! (or the connection closed, 0) while the proxy goes on serving.

use std::time::Duration;

use super::hostile::{assert_each, hostile_config, last_round, post, strict};
use super::interceptors::RULES;
use crate::support::*;

#[tokio::test]
async fn fifty_hostile_requests_with_policy_on_fail_closed() {
    let upstream = MockUpstream::start(strict).await;
    let mut config = hostile_config(&upstream.url());
    config.interceptors.rules = shadowcat::interceptor::RuleSet::from_yaml(RULES).unwrap();
    config.limits.header_read_timeout = Duration::from_secs(1);
    let proxy = Proxy::start(config).await;
    let host = proxy.addr.to_string();
    let h = host.as_str();
    let json_ct = ("content-type", "application/json");
    let call = |args: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"delete_all","arguments":{args}}}}}"#
        )
    };
    let bom = [b"\xEF\xBB\xBF".as_slice(), call("{}").as_bytes()].concat();
    let utf16: Vec<u8> = call("{}")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let deep = call(&format!("{}{}", "[".repeat(129), "]".repeat(129)));
    let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let head_only = |extra: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            ping.len()
        )
        .into_bytes()
        .into_iter()
        .chain(ping.iter().copied())
        .collect::<Vec<u8>>()
    };
    let mut non_utf8_host = b"POST /mcp HTTP/1.1\r\nhost: local\xffhost\r\n".to_vec();
    non_utf8_host.extend_from_slice(&head_only("")[b"POST /mcp HTTP/1.1\r\n".len()..]);
    let two = |name: &str, a: &str, b: &str| {
        head_only(&format!("host: {h}\r\n{name}: {a}\r\n{name}: {b}\r\n"))
    };

    let mut cases = last_round(h);
    // With policy on the proxy judges bodies itself: what it cannot read gets its 400, never
    // the upstream's.
    cases.extend(vec![
        ("BOM before a blocked call", post(h, &[json_ct], &bom), 400),
        ("lone surrogate", post(h, &[json_ct], call(r#"{"a":"\ud800"}"#).as_bytes()), 400),
        ("number past f64", post(h, &[json_ct], call(r#"{"a":1e400}"#).as_bytes()), 400),
        ("129 levels deep", post(h, &[json_ct], deep.as_bytes()), 400),
        ("NaN", post(h, &[json_ct], call(r#"{"a":NaN}"#).as_bytes()), 400),
        ("UTF-16", post(h, &[json_ct], &utf16), 400),
        ("invalid batch member", post(h, &[json_ct], br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},"x"]"#), 400),
        ("message without method or result", post(h, &[json_ct], br#"{"jsonrpc":"2.0","id":1}"#), 400),
        ("gzip body", post(h, &[json_ct, ("content-encoding", "gzip")], call("{}").as_bytes()), 415),
        ("blocked tool (answered by the rule)", post(h, &[json_ct], call("{}").as_bytes()), 200),
        ("Upgrade: websocket (dropped)", post(h, &[json_ct, ("connection", "Upgrade"), ("upgrade", "websocket")], ping), 200),
        ("HTTP/1.1 without Host", head_only(""), 400),
        ("non-UTF-8 Host", non_utf8_host, 400),
        ("Origin localhost:1.evil.com", post(h, &[json_ct, ("origin", "http://localhost:1.evil.com")], ping), 403),
        ("Origin localhost:80@evil.com", post(h, &[json_ct, ("origin", "http://localhost:80@evil.com")], ping), 403),
        ("Host localhost:x.evil.com", post("localhost:x.evil.com", &[json_ct], ping), 403),
        ("two Origin headers", two("origin", "http://localhost", "http://127.0.0.1"), 400),
        ("two Authorization headers", two("authorization", "Bearer a", "Bearer b"), 400),
        ("absolute-form target for another host", {
            let mut r = format!("POST http://evil.example.com/mcp HTTP/1.1\r\nhost: {h}\r\n").into_bytes();
            r.extend_from_slice(&head_only("")[b"POST /mcp HTTP/1.1\r\n".len()..]);
            r
        }, 400),
        ("Content-Length: n, n", format!(
            "POST /mcp HTTP/1.1\r\nhost: {h}\r\ncontent-type: application/json\r\ncontent-length: {0}, {0}\r\n\r\n",
            ping.len()
        ).into_bytes().into_iter().chain(ping.iter().copied()).collect(), 200),
        ("a head never finished (closed at the deadline)", format!("POST /mcp HTTP/1.1\r\nhost: {h}\r\nx-slow: ").into_bytes(), 0),
    ]);
    assert!(cases.len() >= 50, "{}", cases.len());
    assert_each(&proxy, &cases).await;
    let blocked_reached = upstream
        .received()
        .iter()
        .any(|r| String::from_utf8_lossy(&r.body).contains("delete_all"));
    assert!(
        !blocked_reached,
        "no call of a blocked tool reached the upstream"
    );
}
