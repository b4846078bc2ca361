//! Edits to one JSON-RPC message for a shared child: its `id`, a progress token, the
//! `requestId` of `notifications/cancelled`. Only the members on the path are parsed; every
//! other value is kept as its own raw text (object members may come out in another order,
//! which JSON does not give meaning to).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::value::RawValue;

type Members = BTreeMap<String, Box<RawValue>>;

/// A request's `params._meta.progressToken`.
pub(super) const REQUEST_TOKEN: &[&str] = &["params", "_meta", "progressToken"];
/// A progress notification's `params.progressToken`.
pub(super) const NOTIFICATION_TOKEN: &[&str] = &["params", "progressToken"];
/// `notifications/cancelled`'s `params.requestId`.
pub(super) const CANCELLED_ID: &[&str] = &["params", "requestId"];

/// `line` with the member at `path` set to `value` (JSON text); `None` when `line` or an
/// object on the way is not a JSON object, or `value` is not JSON.
pub(super) fn set(line: &[u8], path: &[&str], value: &str) -> Option<Bytes> {
    let text = std::str::from_utf8(line).ok()?;
    set_in(text, path, value).map(Bytes::from)
}

fn set_in(text: &str, path: &[&str], value: &str) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let mut members: Members = serde_json::from_str(text).ok()?;
    let new = match rest {
        [] => RawValue::from_string(value.to_owned()).ok()?,
        _ => {
            let inner = members.get(*first)?;
            RawValue::from_string(set_in(inner.get(), rest, value)?).ok()?
        }
    };
    members.insert((*first).to_owned(), new);
    serde_json::to_string(&members).ok()
}

/// The member at `path` as JSON text, if there is one.
pub(super) fn get(line: &[u8], path: &[&str]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    get_in(text, path)
}

fn get_in(text: &str, path: &[&str]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let members: Members = serde_json::from_str(text).ok()?;
    let inner = members.get(*first)?;
    match rest {
        [] => Some(inner.get().to_owned()),
        _ => get_in(inner.get(), rest),
    }
}

/// `line` with its top-level `id` replaced.
pub(super) fn with_id(line: &[u8], id: &str) -> Option<Bytes> {
    set(line, &["id"], id)
}

/// Methods whose 2026-07-28 results carry caching directives.
pub(super) const CACHEABLE: [&str; 5] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// A response of an older server made a 2026-07-28 one: `result.resultType` (`complete`,
/// which is what its absence means) and, for a cacheable method, `ttlMs: 0` and
/// `cacheScope: "private"` (nothing may be cached that the server did not say could be),
/// each only when missing. An error response, or a result that is not an object, is kept.
pub(super) fn as_2026(line: &[u8], cacheable: bool) -> Option<Bytes> {
    let text = std::str::from_utf8(line).ok()?;
    let mut members: Members = serde_json::from_str(text).ok()?;
    let Some(result) = members.get("result") else {
        return Some(Bytes::copy_from_slice(line));
    };
    let Ok(mut fields) = serde_json::from_str::<Members>(result.get()) else {
        return Some(Bytes::copy_from_slice(line));
    };
    let mut add = |key: &str, value: &str| {
        if !fields.contains_key(key) {
            if let Ok(raw) = RawValue::from_string(value.to_owned()) {
                fields.insert(key.to_owned(), raw);
            }
        }
    };
    add("resultType", r#""complete""#);
    if cacheable {
        add("ttlMs", "0");
        add("cacheScope", r#""private""#);
    }
    let result = RawValue::from_string(serde_json::to_string(&fields).ok()?).ok()?;
    members.insert("result".to_owned(), result);
    serde_json::to_string(&members).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn ids_are_replaced_and_the_rest_is_kept() {
        let line = br#"{"jsonrpc":"2.0","id":"client-7","method":"tools/call","params":{"name":"a","arguments":{"x":[1,2.50,"\u00e9"]}}}"#;
        let out = with_id(line, "12").unwrap();
        let v = parse(&out);
        assert_eq!(v["id"], 12);
        assert_eq!(v["params"]["arguments"]["x"], json!([1, 2.5, "é"]));
        // Untouched values keep their own text.
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains(r#"2.50,"\u00e9""#));
    }

    #[test]
    fn nested_tokens_are_set_and_read() {
        let req = br#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"progressToken":"t"},"k":true}}"#;
        assert_eq!(get(req, REQUEST_TOKEN).as_deref(), Some(r#""t""#));
        let out = set(req, REQUEST_TOKEN, r#""p9""#).unwrap();
        assert_eq!(get(&out, REQUEST_TOKEN).as_deref(), Some(r#""p9""#));
        assert_eq!(parse(&out)["params"]["k"], true);
        let note =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s3"}}"#;
        assert_eq!(get(note, CANCELLED_ID).as_deref(), Some(r#""s3""#));
    }

    #[test]
    fn older_results_become_2026_results() {
        let list = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#;
        let v = parse(&as_2026(list, true).unwrap());
        assert_eq!(
            v["result"],
            json!({"tools":[],"resultType":"complete","ttlMs":0,"cacheScope":"private"})
        );
        let call =
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"resultType":"x","ttlMs":5}}"#;
        let v = parse(&as_2026(call, false).unwrap());
        assert_eq!(
            v["result"],
            json!({"content":[],"resultType":"x","ttlMs":5})
        );
        let error = br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#;
        assert_eq!(&as_2026(error, true).unwrap()[..], &error[..]);
    }

    #[test]
    fn what_is_not_an_object_on_the_way_is_refused() {
        assert!(set(b"[1]", &["id"], "1").is_none());
        assert!(set(br#"{"params":[1]}"#, REQUEST_TOKEN, "1").is_none());
        assert!(set(br#"{"params":{}}"#, REQUEST_TOKEN, "1").is_none());
        assert!(set(br#"{"id":1}"#, &["id"], "not json").is_none());
        assert!(get(br#"{"params":{}}"#, CANCELLED_ID).is_none());
        assert!(get(b"\xff", &["id"]).is_none());
    }
}
