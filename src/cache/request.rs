//! A request body, judged for the cache: not cacheable (most methods), bypassed (cacheable
//! method, but this request may not be served from or stored in the cache), or cacheable with
//! its canonical parameters.

use crate::mcp::canonical::canonical;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::METHODS;
use crate::mcp::peek;

/// Why a request of a cacheable method skips the cache (the `bypass` metric's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// A 2025-03-26 batch: members are not served from the cache one by one.
    Batch,
    /// A multi round-trip retry (`inputResponses` or `requestState`): its result depends on
    /// inputs that are not part of the key.
    RoundTrip,
    /// `params` that is not an object, or an id that is not a string or number.
    Malformed,
}

/// A cacheable request: its method, the key text of its parameters, and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    /// `params` without `_meta`, canonical JSON (object keys sorted, no spaces).
    pub params: Box<str>,
    /// `params.uri` (resources/read), so `resources/updated` can drop that entry alone.
    pub uri: Option<Box<str>>,
    /// The id's raw JSON text, echoed byte for byte in an answer from the cache.
    pub id: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    NotCacheable,
    Bypass { method: &'static str, why: Bypass },
    Cacheable(Request),
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<String>,
    /// Raw until the method is known to be cacheable: a tools/call's arguments are never
    /// built into a tree here.
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

/// Judges a request body.
pub fn plan(body: &[u8]) -> Plan {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let method = peek::peek(body).ok().and_then(|p| {
            p.messages()
                .iter()
                .filter(|m| m.is_request())
                .find_map(|m| cacheable(m.method.as_deref()?))
        });
        return match method {
            Some(method) => Plan::Bypass {
                method,
                why: Bypass::Batch,
            },
            None => Plan::NotCacheable,
        };
    }
    let Ok(wire) = serde_json::from_slice::<Wire<'_>>(body) else {
        return Plan::NotCacheable;
    };
    let (Some(method), Some(id)) = (wire.method.as_deref().and_then(cacheable), wire.id) else {
        return Plan::NotCacheable;
    };
    let bypass = |why| Plan::Bypass { method, why };
    if !matches!(id.get().as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9')) {
        return bypass(Bypass::Malformed);
    }
    let params = wire.params.map(|p| serde_json::from_str::<Value>(p.get()));
    let mut params = match params {
        None | Some(Ok(Value::Null)) => Map::new(),
        Some(Ok(Value::Object(map))) => map,
        Some(_) => return bypass(Bypass::Malformed),
    };
    let meta = params.remove("_meta");
    let retried =
        |m: &Map<String, Value>| m.contains_key("inputResponses") || m.contains_key("requestState");
    if retried(&params)
        || meta
            .as_ref()
            .and_then(Value::as_object)
            .is_some_and(retried)
    {
        return bypass(Bypass::RoundTrip);
    }
    let uri = params.get("uri").and_then(Value::as_str).map(Box::from);
    let mut text = String::new();
    canonical(&Value::Object(params), &mut text);
    Plan::Cacheable(Request {
        method,
        params: text.into_boxed_str(),
        uri,
        id: Box::from(id.get()),
    })
}

fn cacheable(method: &str) -> Option<&'static str> {
    METHODS.iter().copied().find(|m| *m == method)
}
