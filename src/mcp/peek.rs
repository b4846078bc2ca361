//! A borrowed peek at a JSON-RPC body: method, id, `params.name` / `params.uri`, batch or
//! single, and each member's kind.
//!
//! The proxy needs these few facts for every POST (metrics labels, the `id` of an error reply,
//! routing and interceptor decisions) but must not pay for a full `serde_json::Value`. The visitor
//! below keeps strings borrowed from the input when they have no escapes, keeps the id as raw
//! JSON text (so an error reply echoes it byte for byte), and walks everything else with
//! [`Strict`], which allocates nothing. Cost is one pass over the bytes.
//!
//! **The peek refuses what it cannot read exactly** (it is the judge policy decides on): every
//! string is decoded (escapes, surrogate pairs, UTF-8) and every number converted, even where
//! the peek keeps nothing, so a body it accepts is one `serde_json::Value` reads the same way:
//! same method, name, id and batch members (a differential fuzz target and a property test
//! check this). What lenient parsers accept and the peek refuses: a byte-order mark, invalid
//! UTF-8, lone surrogate escapes (`"\ud800"`), numbers past f64 range (`1e400`), `NaN`,
//! UTF-16, and nesting deeper than 128 levels. Duplicate keys: the last one wins, as in
//! `serde_json::Value`, JavaScript's `JSON.parse` and Python's `json`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::strict_json::Strict;

/// What kind of JSON-RPC message a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `method` and `id`.
    Request,
    /// `method`, no `id`.
    Notification,
    /// `id` and `result`.
    Response,
    /// `error` (the id may be null or absent).
    Error,
    /// Anything else: an object without method/result/error, a non-string method, a
    /// non-object batch member.
    Invalid,
}

/// One message, as far as the proxy cares.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub kind: MessageKind,
    pub method: Option<Cow<'a, str>>,
    /// The id's raw JSON text (number, string or null) when present.
    pub id: Option<&'a RawValue>,
    /// `params.name` when it is a string (tools/call, prompts/get).
    pub name: Option<Cow<'a, str>>,
    /// `params.uri` when it is a string (resources/read, resources/subscribe).
    pub uri: Option<Cow<'a, str>>,
    /// `"jsonrpc": "2.0"` is present.
    pub has_jsonrpc_2: bool,
}

/// A body: one message or a batch (MCP 2025-03-26).
#[derive(Debug, Clone)]
pub enum Peek<'a> {
    Single(Message<'a>),
    Batch(Vec<Message<'a>>),
}

/// Why a body could not be peeked at. The proxy forwards such bodies unchanged; the upstream
/// decides what they deserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeekError {
    Empty,
    NotJson(String),
    NotObjectOrArray,
    EmptyBatch,
    TooDeep,
}

impl fmt::Display for PeekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeekError::Empty => f.write_str("empty body"),
            PeekError::NotJson(e) => write!(f, "not JSON: {e}"),
            PeekError::NotObjectOrArray => f.write_str("not a JSON-RPC object or batch"),
            PeekError::EmptyBatch => f.write_str("empty batch"),
            PeekError::TooDeep => f.write_str("JSON nested too deeply"),
        }
    }
}

impl std::error::Error for PeekError {}

/// Peeks at a body.
pub fn peek(body: &[u8]) -> Result<Peek<'_>, PeekError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(PeekError::Empty);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = TopSeed.deserialize(&mut de).map_err(map_err)?;
    de.end().map_err(map_err)?;
    match top {
        Top::Single(m) => Ok(Peek::Single(m)),
        Top::Batch(v) if v.is_empty() => Err(PeekError::EmptyBatch),
        Top::Batch(v) => Ok(Peek::Batch(v)),
        Top::Other => Err(PeekError::NotObjectOrArray),
    }
}

fn map_err(e: serde_json::Error) -> PeekError {
    let text = e.to_string();
    if text.contains("recursion limit") {
        PeekError::TooDeep
    } else {
        PeekError::NotJson(text)
    }
}

// === impl Peek ===

impl<'a> Peek<'a> {
    pub fn messages(&self) -> &[Message<'a>] {
        match self {
            Peek::Single(m) => std::slice::from_ref(m),
            Peek::Batch(v) => v,
        }
    }

    pub fn is_batch(&self) -> bool {
        matches!(self, Peek::Batch(_))
    }

    /// The first request's method, else the first member's method (for metrics labels).
    pub fn method(&self) -> Option<&str> {
        let msgs = self.messages();
        msgs.iter()
            .find(|m| m.is_request())
            .or_else(|| msgs.first())
            .and_then(|m| m.method.as_deref())
    }

    /// The id to echo in an error reply: the single message's id when it is a valid JSON-RPC
    /// id (a string, a number or null); none for a batch or an id of another type, which the
    /// reply answers with `null`, as JSON-RPC prescribes when the id cannot be determined.
    pub fn reply_id(&self) -> Option<&'a RawValue> {
        match self {
            Peek::Single(m) => m.id.filter(|id| {
                matches!(
                    id.get().as_bytes().first(),
                    Some(b'"' | b'-' | b'0'..=b'9' | b'n')
                )
            }),
            Peek::Batch(_) => None,
        }
    }

    /// Any member is a request, so the upstream answers with JSON or SSE rather than 202.
    pub fn has_requests(&self) -> bool {
        self.messages().iter().any(Message::is_request)
    }
}

impl Message<'_> {
    pub fn is_request(&self) -> bool {
        self.kind == MessageKind::Request
    }
}

// === the visitors ===

enum Top<'a> {
    Single(Message<'a>),
    Batch(Vec<Message<'a>>),
    Other,
}

struct TopSeed;

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top<'de>, A::Error> {
        MessageVisitor.visit_map(map).map(Top::Single)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
        while let Some(m) = seq.next_element_seed(MemberSeed)? {
            out.push(m);
        }
        Ok(Top::Batch(out))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
}

/// A batch member: an object is a message; anything else is skipped and marked invalid.
struct MemberSeed;

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Message<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Message<'de>, D::Error> {
        d.deserialize_any(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch member")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Message<'de>, A::Error> {
        MessageVisitor.visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Message<'de>, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Message::invalid())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Message<'de>, E> {
        Ok(Message::invalid())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Message<'de>, E> {
        Ok(Message::invalid())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Message<'de>, E> {
        Ok(Message::invalid())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Message<'de>, E> {
        Ok(Message::invalid())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Message<'de>, E> {
        Ok(Message::invalid())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Message<'de>, E> {
        Ok(Message::invalid())
    }
}

impl Message<'_> {
    fn invalid() -> Self {
        Message {
            kind: MessageKind::Invalid,
            method: None,
            id: None,
            name: None,
            uri: None,
            has_jsonrpc_2: false,
        }
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
        let mut m = Message::invalid();
        let (mut method_ok, mut has_result, mut has_error) = (true, false, false);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Jsonrpc => {
                    m.has_jsonrpc_2 = map.next_value::<MaybeStr<'de>>()?.0.as_deref() == Some("2.0")
                }
                Key::Method => {
                    let v = map.next_value::<MaybeStr<'de>>()?.0;
                    method_ok = v.is_some();
                    m.method = v;
                }
                Key::Id => {
                    let id = map.next_value::<&'de RawValue>()?;
                    // `RawValue` skips strings undecoded: check the id as strictly as the rest.
                    serde_json::from_str::<Strict>(id.get()).map_err(de::Error::custom)?;
                    m.id = Some(id);
                }
                Key::Params => {
                    let p = map.next_value::<Params<'de>>()?;
                    (m.name, m.uri) = (p.name, p.uri);
                }
                Key::Result => {
                    has_result = true;
                    map.next_value::<Strict>()?;
                }
                Key::Error => {
                    has_error = true;
                    map.next_value::<Strict>()?;
                }
                _ => {
                    map.next_value::<Strict>()?;
                }
            }
        }
        m.kind = match (&m.method, m.id.is_some()) {
            _ if !method_ok => MessageKind::Invalid,
            (Some(_), true) => MessageKind::Request,
            (Some(_), false) => MessageKind::Notification,
            (None, _) if has_error => MessageKind::Error,
            (None, true) if has_result => MessageKind::Response,
            _ => MessageKind::Invalid,
        };
        Ok(m)
    }
}

/// The keys the visitors act on, matched in place: serde's `Cow<str>` always builds a `String`,
/// which would cost an allocation per key of every message.
enum Key {
    Jsonrpc,
    Method,
    Id,
    Params,
    Result,
    Error,
    Name,
    Uri,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "jsonrpc" => Key::Jsonrpc,
                    "method" => Key::Method,
                    "id" => Key::Id,
                    "params" => Key::Params,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    "name" => Key::Name,
                    "uri" => Key::Uri,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A string if the value is one (borrowed when it has no escapes), else skipped as `None`.
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeStr<'de>, A::Error> {
                while seq.next_element::<Strict>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeStr<'de>, A::Error> {
                while map.next_entry::<Strict, Strict>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `params`: only `name` and `uri` are kept; an array or scalar `params` yields neither.
#[derive(Default)]
struct Params<'a> {
    name: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'de>, A::Error> {
                let mut p = Params::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Name => p.name = map.next_value::<MaybeStr<'de>>()?.0,
                        Key::Uri => p.uri = map.next_value::<MaybeStr<'de>>()?.0,
                        _ => {
                            map.next_value::<Strict>()?;
                        }
                    }
                }
                Ok(p)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params<'de>, A::Error> {
                while seq.next_element::<Strict>()?.is_some() {}
                Ok(Params::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Params<'de>, E> {
                Ok(Params::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Params<'de>, E> {
                Ok(Params::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Params<'de>, E> {
                Ok(Params::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Params<'de>, E> {
                Ok(Params::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Params<'de>, E> {
                Ok(Params::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Params<'de>, E> {
                Ok(Params::default())
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
#[path = "peek_tests.rs"]
mod tests;
