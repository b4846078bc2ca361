//! A fast look at the top level of one JSON-RPC message: `method`, `id`, and whether it has a
//! `result` or `error`, found by skipping every value in between with `memchr`.
//!
//! SSE interception must know, for every event of a stream, whether any rule could apply to it.
//! [`super::peek::peek`] answers that, but it walks every byte through serde's string
//! validation; on a 1 KiB progress notification that costs several times more than framing the
//! event. The sniffer skips strings with `memchr2` (`"` and `\`) and nested containers with
//! `memchr3` (`"` and the one bracket pair that can close them), so a message costs about as
//! much as finding its top-level commas.
//!
//! It does not validate JSON. It is only a filter: a message it reads is parsed fully (and so
//! validated) before any rule acts on it, and anything it cannot read plainly (not an object, a
//! key or method with escapes, broken structure) is `None`, for which callers use the full
//! peek. It never reports a top-level key that is not there, because it tracks strings and
//! nesting exactly.

use memchr::{memchr2, memchr3};

/// The top-level facts of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sniff<'a> {
    /// The `method` string (it had no escapes).
    pub method: Option<&'a str>,
    /// The raw JSON text of `id`.
    pub id: Option<&'a [u8]>,
    pub has_result: bool,
    pub has_error: bool,
}

/// Reads the top level of `data`, or `None` when the full peek must decide.
pub fn sniff(data: &[u8]) -> Option<Sniff<'_>> {
    let mut out = Sniff::default();
    let mut method_ok = true;
    let end = walk(data, |key, value| {
        match key {
            b"method" => match plain_string(value) {
                Some(m) => out.method = Some(m),
                None => method_ok = false,
            },
            b"id" => out.id = Some(value),
            b"result" => out.has_result = true,
            b"error" => out.has_error = true,
            _ => {}
        }
        true
    })?;
    (method_ok && trailing_ok(data, end?)).then_some(out)
}

/// What the start of a message says of its method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodPrefix<'a> {
    Method(&'a str),
    /// The top-level object closed without a `method`: a response, or not a request at all.
    NoMethod,
    /// Cut short before the method, or not plainly readable.
    Unknown,
}

/// Reads top-level keys from the start of a (possibly incomplete) message and stops at
/// `method`: an SSE event's fate is often known from its first 50 bytes.
pub fn method_prefix(data: &[u8]) -> MethodPrefix<'_> {
    let mut found = None;
    let mut bad = false;
    let ended = walk(data, |key, value| {
        if key == b"method" {
            found = plain_string(value);
            bad = found.is_none();
            return false;
        }
        true
    });
    match (found, ended) {
        (Some(m), _) => MethodPrefix::Method(m),
        (None, Some(Some(_))) if !bad => MethodPrefix::NoMethod,
        _ => MethodPrefix::Unknown,
    }
}

/// A JSON string value without escapes, as text.
fn plain_string(value: &[u8]) -> Option<&str> {
    let text = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if text.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(text).ok()
}

/// Walks the top-level members of the object at the start of `data`, handing each raw key
/// and value to `on` until it returns false. `Some(Some(i))`: the object closed, `i` just past
/// its `}`; `Some(None)`: `on` stopped the walk; `None`: not plainly readable (or cut short).
fn walk<'a>(
    data: &'a [u8],
    mut on: impl FnMut(&'a [u8], &'a [u8]) -> bool,
) -> Option<Option<usize>> {
    let mut i = ws(data, 0);
    if data.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(data, i + 1);
    if data.get(i) == Some(&b'}') {
        return Some(Some(i + 1));
    }
    loop {
        if data.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(data, i)?;
        let key = &data[i + 1..key_end - 1];
        if key.contains(&b'\\') {
            return None;
        }
        i = ws(data, key_end);
        if data.get(i) != Some(&b':') {
            return None;
        }
        let start = ws(data, i + 1);
        let end = value_end(data, start)?;
        if !on(key, &data[start..end]) {
            return Some(None);
        }
        i = ws(data, end);
        match data.get(i) {
            Some(b',') => i = ws(data, i + 1),
            Some(b'}') => return Some(Some(i + 1)),
            _ => return None,
        }
    }
}

fn ws(data: &[u8], mut i: usize) -> usize {
    while data
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

fn trailing_ok(data: &[u8], i: usize) -> bool {
    ws(data, i) == data.len()
}

/// One past the closing quote of the string that opens at `start`.
fn string_end(data: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        let at = i + memchr2(b'"', b'\\', data.get(i..)?)?;
        if data[at] == b'"' {
            return Some(at + 1);
        }
        i = at + 2;
    }
}

/// One past the end of the value that starts at `start`.
fn value_end(data: &[u8], start: usize) -> Option<usize> {
    match *data.get(start)? {
        b'"' => string_end(data, start),
        b'{' => container_end(data, start, b'{', b'}'),
        b'[' => container_end(data, start, b'[', b']'),
        _ => {
            // A number or a literal: runs to the next delimiter.
            let len = data[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(data.len() - start);
            (len > 0).then_some(start + len)
        }
    }
}

/// Matching brackets of one kind is enough to find a well-formed container's end: brackets of
/// the other kind nest inside it, and strings are skipped whole.
fn container_end(data: &[u8], start: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 1usize;
    let mut i = start + 1;
    loop {
        let at = i + memchr3(b'"', open, close, data.get(i..)?)?;
        match data[at] {
            b'"' => i = string_end(data, at)?,
            b if b == open => {
                depth += 1;
                i = at + 1;
            }
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
                i = at + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::peek::{peek, MessageKind};
    use proptest::prelude::*;

    fn kind(s: &Sniff<'_>) -> MessageKind {
        match (s.method, s.id) {
            (Some(_), Some(_)) => MessageKind::Request,
            (Some(_), None) => MessageKind::Notification,
            (None, _) if s.has_error => MessageKind::Error,
            (None, Some(_)) if s.has_result => MessageKind::Response,
            _ => MessageKind::Invalid,
        }
    }

    #[test]
    fn reads_the_top_level_only() {
        let s = sniff(
            br#"{"params":{"method":"inner","x":["}",{"a":"]"}]},"method":"notifications/progress","jsonrpc":"2.0"}"#,
        )
        .unwrap();
        assert_eq!(s.method, Some("notifications/progress"));
        assert_eq!(s.id, None);
        let s = sniff(br#" {"jsonrpc":"2.0","id": 7 ,"result":{"tools":[]}} "#).unwrap();
        assert_eq!(
            (s.method, s.id, s.has_result),
            (None, Some(&b"7"[..]), true)
        );
        let s = sniff(br#"{"id":"a\"b","error":{"code":1}}"#).unwrap();
        assert_eq!(s.id, Some(&br#""a\"b""#[..]));
        assert!(s.has_error);
    }

    #[test]
    fn method_prefix_stops_at_the_method() {
        let cut = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progr"#;
        assert_eq!(
            method_prefix(cut),
            MethodPrefix::Method("notifications/progress")
        );
        assert_eq!(
            method_prefix(br#"{"jsonrpc":"2.0","me"#),
            MethodPrefix::Unknown
        );
        assert_eq!(
            method_prefix(b"{\"id\":1,\"result\":{}}\n\nid: 2\n"),
            MethodPrefix::NoMethod
        );
        assert_eq!(
            method_prefix(br#"{"method":"a\/b"}"#),
            MethodPrefix::Unknown
        );
        assert_eq!(method_prefix(b"[{}]"), MethodPrefix::Unknown);
    }

    #[test]
    fn leaves_what_it_cannot_read_plainly_to_the_peek() {
        for text in [
            &b"[1]"[..],
            br#"{"meth\u006fd":"x"}"#,
            br#"{"method":"a\/b"}"#,
            br#"{"method":"x""#,
            br#"{"method":"x"} trailing"#,
            b"",
            br#"{"a":}"#,
            br#"{"method":7}"#,
        ] {
            assert_eq!(sniff(text), None, "{}", String::from_utf8_lossy(text));
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\"\\\\{}\\[\\],: ]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("(method|id|result|error|[a-z{}]{1,3})", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the sniffer reads agrees with the full peek; it declines only a method
        /// that is not a plain string.
        #[test]
        fn agrees_with_the_peek(
            fields in prop::collection::btree_map(
                "(method|id|result|error|params|jsonrpc)", json_value(), 0..5),
            method in proptest::option::of("[a-z/]{1,12}"),
            pretty in any::<bool>(),
        ) {
            let mut obj: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
            if let Some(m) = method {
                obj.insert("method".into(), m.into());
            }
            let v = serde_json::Value::Object(obj);
            let text = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) };
            let text = text.unwrap();
            let p = peek(&text).unwrap();
            let m = &p.messages()[0];
            match sniff(&text) {
                Some(s) => {
                    prop_assert_eq!(s.method, m.method.as_deref());
                    prop_assert_eq!(s.id, m.id.map(|i| i.get().as_bytes()));
                    prop_assert_eq!(kind(&s), m.kind);
                }
                None => {
                    let escaped = v["method"]
                        .as_str()
                        .is_some_and(|m| serde_json::to_string(m).unwrap().contains('\\'));
                    prop_assert!(escaped || (v.get("method").is_some() && !v["method"].is_string()));
                }
            }
        }
    }
}
