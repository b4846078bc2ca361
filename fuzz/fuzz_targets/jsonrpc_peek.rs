//! Fuzzes the JSON-RPC peek: any bytes, never a panic; a successful peek's accessors all work
//! and an echoed id is itself valid JSON. The memchr sniff (used to decide SSE events) must
//! agree with the peek on every single message the peek reads, and `method_prefix` with both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadowcat::mcp::peek::{peek, Peek};
use shadowcat::mcp::sniff::{method_prefix, sniff, MethodPrefix};

fuzz_target!(|data: &[u8]| {
    let sniffed = sniff(data);
    if let Ok(Peek::Single(m)) = peek(data) {
        if let Some(s) = sniffed {
            assert_eq!(s.method, m.method.as_deref(), "sniff and peek disagree on the method");
            assert_eq!(s.id, m.id.map(|i| i.get().as_bytes()), "sniff and peek disagree on the id");
        }
        if let MethodPrefix::Method(found) = method_prefix(data) {
            // The first `method` may differ from the last (which the peek, like every JSON
            // parser, keeps) only when a second one is visibly there: the SSE judge then holds.
            if Some(found) != m.method.as_deref() {
                let plain = memchr::memmem::find_iter(data, b"\"method\"").count() > 1;
                let escaped = memchr::memmem::find(data, b"\\u").is_some();
                assert!(plain || escaped, "a second method the judge cannot see");
            }
        }
    }
    if let Ok(p) = peek(data) {
        let _ = (p.method(), p.has_requests(), p.is_batch());
        if let Some(id) = p.reply_id() {
            serde_json_check(id.get());
        }
        for m in p.messages() {
            let _ = (m.kind, m.method.as_deref(), m.id.map(|id| id.get()));
            let _ = m.has_jsonrpc_2;
            let _ = (m.name.as_deref(), m.uri.as_deref(), m.is_request());
        }
    }
});

fn serde_json_check(raw: &str) {
    let body = shadowcat::mcp::error_body(
        serde_json::from_str(raw).ok(),
        shadowcat::mcp::ErrorCode::InternalError,
        "x",
    );
    // Valid JSON syntax (a number id may exceed f64, which `Value` would reject).
    assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok());
}
