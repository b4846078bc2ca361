//! A response body, read for its caching hints: where the result's bytes are, `ttlMs` and
//! where its value sits (to lower it when served), `cacheScope`, and whether it is an interim
//! `input_required` result.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Scope;

/// What the result says about caching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hints {
    /// `ttlMs`, when a non-negative integer; anything else counts as no hint.
    pub ttl: Option<Duration>,
    /// `cacheScope`; absent or unknown is `private`, the reading that never leaks a result.
    pub scope: Scope,
    /// `resultType: "input_required"`: an interim result, never cached.
    pub input_required: bool,
}

/// A successful JSON-RPC response.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The `result` value's bytes, a slice of the body.
    pub result: Bytes,
    /// Where `ttlMs`'s value sits in `result`.
    pub ttl_range: Option<Range<usize>>,
    pub hints: Hints,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// Reads a single JSON-RPC response; `None` for an error, a batch, or anything else.
pub fn parse(body: &Bytes) -> Option<Parsed> {
    let wire: Wire<'_> = serde_json::from_slice(body).ok()?;
    if wire.error.is_some() {
        return None;
    }
    let raw = wire.result?;
    let fields: HashMap<String, &RawValue> = serde_json::from_str(raw.get()).ok()?;
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(|v| serde_json::from_str::<&str>(v.get()).ok())
    };
    let ttl_raw = fields.get("ttlMs");
    let ttl = ttl_raw
        .and_then(|v| serde_json::from_str::<u64>(v.get()).ok())
        .map(Duration::from_millis);
    let result_range = subslice(body, raw.get())?;
    let ttl_range = ttl
        .and(ttl_raw)
        .and_then(|v| subslice(&body[result_range.clone()], v.get()));
    Some(Parsed {
        result: body.slice(result_range),
        ttl_range,
        hints: Hints {
            ttl,
            scope: text("cacheScope")
                .and_then(Scope::parse)
                .unwrap_or(Scope::Private),
            input_required: text("resultType") == Some("input_required"),
        },
    })
}

/// Whether a message is a JSON-RPC response (a result or an error), not a notification or a
/// request that came first on an SSE response stream.
pub fn is_response(message: &[u8]) -> bool {
    serde_json::from_slice::<Wire<'_>>(message)
        .is_ok_and(|w| w.result.is_some() || w.error.is_some())
}

/// Where `inner` (borrowed from `outer`) sits in `outer`.
fn subslice(outer: &[u8], inner: &str) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start + inner.len();
    (end <= outer.len()).then_some(start..end)
}
