//! W3C trace context in and out: `traceparent`/`tracestate` from the request's headers or from
//! a message's `params._meta`, and the proxy's span context into the upstream request's
//! headers (and, with `propagate_in_meta`, into its messages' `params._meta`).
//!
//! The parsing and formatting are the SDK's `TraceContextPropagator`; this file only says
//! where the values are read and written.

use std::collections::HashMap;

use bytes::Bytes;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::{Map, Value};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Request headers as the propagator reads them (the first value of a repeated header).
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The remote parent a request's headers carry; `None` without a valid `traceparent`.
pub fn from_headers(headers: &http::HeaderMap) -> Option<Context> {
    if !headers.contains_key(TRACEPARENT) {
        return None;
    }
    valid(TraceContextPropagator::new().extract_with_context(&Context::new(), &Headers(headers)))
}

/// The remote parent of the first message whose `params._meta` carries a valid
/// `traceparent` (MCP's place for trace context). The body is parsed only when the name
/// occurs in it.
pub fn from_meta(body: &[u8]) -> Option<Context> {
    memchr::memmem::find(body, TRACEPARENT.as_bytes())?;
    let value: Value = serde_json::from_slice(body).ok()?;
    let messages = match &value {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        one => vec![one],
    };
    messages.into_iter().find_map(|m| {
        let meta = m.get("params")?.get("_meta")?.as_object()?;
        let mut carrier = HashMap::new();
        for key in [TRACEPARENT, TRACESTATE] {
            if let Some(v) = meta.get(key).and_then(Value::as_str) {
                carrier.insert(key.to_owned(), v.to_owned());
            }
        }
        carrier.get(TRACEPARENT)?;
        valid(TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier))
    })
}

fn valid(cx: Context) -> Option<Context> {
    cx.span().span_context().is_valid().then_some(cx)
}

/// `traceparent` (and `tracestate`, when it has entries) for the span in `cx`.
pub fn to_fields(cx: &Context) -> Vec<(&'static str, String)> {
    struct Fields(Vec<(&'static str, String)>);
    impl Injector for Fields {
        fn set(&mut self, key: &str, value: String) {
            match key {
                TRACEPARENT => self.0.push((TRACEPARENT, value)),
                TRACESTATE if !value.is_empty() => self.0.push((TRACESTATE, value)),
                _ => {}
            }
        }
    }
    let mut fields = Fields(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(cx, &mut fields);
    fields.0
}

/// The body with `fields` written into `params._meta` of every request and notification
/// (replacing a client's values). `None` when the body is not a JSON-RPC message or batch the
/// proxy can read: it then goes as it came.
pub fn write_meta(body: &[u8], fields: &[(&'static str, String)]) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let mut wrote = false;
    let mut put = |m: &mut Value| {
        let Some(obj) = m.as_object_mut() else {
            return;
        };
        if !obj.get("method").is_some_and(Value::is_string) {
            return;
        }
        let params = obj
            .entry("params")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(params) = params.as_object_mut() else {
            return;
        };
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return;
        };
        meta.remove(TRACESTATE);
        for (k, v) in fields {
            meta.insert((*k).to_owned(), Value::String(v.clone()));
        }
        wrote = true;
    };
    match &mut value {
        Value::Array(items) => items.iter_mut().for_each(&mut put),
        one => put(one),
    }
    if !wrote {
        return None;
    }
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn headers_and_meta_give_the_remote_parent() {
        let mut headers = http::HeaderMap::new();
        assert!(from_headers(&headers).is_none());
        headers.insert(TRACEPARENT, "garbage".parse().unwrap());
        assert!(
            from_headers(&headers).is_none(),
            "an invalid traceparent is no parent"
        );
        headers.insert(TRACEPARENT, PARENT.parse().unwrap());
        headers.insert(TRACESTATE, "vendor=abc".parse().unwrap());
        let cx = from_headers(&headers).unwrap();
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_state().header(), "vendor=abc");

        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","_meta":{{"traceparent":"{PARENT}"}}}}}}"#
        );
        let cx = from_meta(body.as_bytes()).unwrap();
        assert_eq!(
            cx.span().span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );
        assert!(from_meta(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).is_none());
        assert!(from_meta(br#"{"params":{"_meta":{"traceparent":"nope"}}}"#).is_none());
    }

    #[test]
    fn fields_round_trip_and_meta_is_written_into_every_message() {
        let mut headers = http::HeaderMap::new();
        headers.insert(TRACEPARENT, PARENT.parse().unwrap());
        let cx = from_headers(&headers).unwrap();
        let fields = to_fields(&cx);
        assert_eq!(fields, vec![(TRACEPARENT, PARENT.to_owned())]);

        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1},"_meta":{"progressToken":7,"tracestate":"old=1"}}},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":9,"result":{}}]"#;
        let out: Value = serde_json::from_slice(&write_meta(body, &fields).unwrap()).unwrap();
        assert_eq!(out[0]["params"]["_meta"]["traceparent"], PARENT);
        assert_eq!(
            out[0]["params"]["_meta"]["progressToken"], 7,
            "other _meta kept"
        );
        assert!(out[0]["params"]["_meta"].get("tracestate").is_none());
        assert_eq!(out[0]["params"]["arguments"]["a"], 1, "arguments untouched");
        assert_eq!(out[1]["params"]["_meta"]["traceparent"], PARENT);
        assert!(
            out[2].get("params").is_none(),
            "responses are not messages to trace"
        );
        assert!(write_meta(b"not json", &fields).is_none());
        assert!(write_meta(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, &fields).is_none());
    }
}
