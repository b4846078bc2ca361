//! The judge's promise, as a check: whatever [`super::peek::peek`] accepts, `serde_json`
//! reads with the same method, name, uri, id and batch members. Policy (rules, scopes, the
//! 2026 header checks) decides on the peek, so a body the peek reads one way and an upstream
//! another would let a message past a rule. Used by the `judge_differential` fuzz target and
//! by the property tests; it costs a full parse, so it never runs on the request path.

use serde_json::Value;

use super::peek::{peek, Message, MessageKind};

/// `Ok` when the peek refuses `body`, or accepts it and agrees with `serde_json::Value`.
pub fn agrees_with_serde_json(body: &[u8]) -> Result<(), String> {
    let Ok(peeked) = peek(body) else {
        return Ok(());
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("peek accepted what serde_json refuses: {e}"))?;
    match (&value, peeked.is_batch()) {
        (Value::Object(_), false) => same_message(&peeked.messages()[0], &value),
        (Value::Array(members), true) if members.len() == peeked.messages().len() => members
            .iter()
            .zip(peeked.messages())
            .try_for_each(|(v, m)| same_message(m, v)),
        _ => Err(format!("shape differs: batch={}", peeked.is_batch())),
    }
}

fn same_message(m: &Message<'_>, v: &Value) -> Result<(), String> {
    let Value::Object(obj) = v else {
        return match m.kind {
            MessageKind::Invalid if m.method.is_none() && m.id.is_none() => Ok(()),
            _ => Err("a non-object member was read as a message".into()),
        };
    };
    let method = obj.get("method").and_then(Value::as_str);
    if m.method.as_deref() != method {
        return Err(format!("method {:?} != {method:?}", m.method));
    }
    let params = obj.get("params").and_then(Value::as_object);
    let field = |k: &str| params.and_then(|p| p.get(k)).and_then(Value::as_str);
    if m.name.as_deref() != field("name") {
        return Err(format!("name {:?} != {:?}", m.name, field("name")));
    }
    if m.uri.as_deref() != field("uri") {
        return Err(format!("uri {:?} != {:?}", m.uri, field("uri")));
    }
    let id =
        m.id.map(|raw| serde_json::from_str::<Value>(raw.get()))
            .transpose()
            .map_err(|e| format!("id text is not JSON: {e}"))?;
    if id.as_ref() != obj.get("id") {
        return Err(format!("id {id:?} != {:?}", obj.get("id")));
    }
    let kind = match (obj.get("method"), obj.contains_key("id")) {
        (Some(Value::String(_)), true) => MessageKind::Request,
        (Some(Value::String(_)), false) => MessageKind::Notification,
        (Some(_), _) => MessageKind::Invalid,
        (None, _) if obj.contains_key("error") => MessageKind::Error,
        (None, true) if obj.contains_key("result") => MessageKind::Response,
        _ => MessageKind::Invalid,
    };
    if kind != m.kind {
        return Err(format!("kind {:?} != {kind:?}", m.kind));
    }
    let jsonrpc = obj.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    if jsonrpc != m.has_jsonrpc_2 {
        return Err("jsonrpc differs".into());
    }
    Ok(())
}
