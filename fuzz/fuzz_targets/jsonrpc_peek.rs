//! Fuzzes the JSON-RPC peek: any bytes, never a panic; a successful peek's accessors all work
//! and an echoed id is itself valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadowcat::mcp::peek::peek;

fuzz_target!(|data: &[u8]| {
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
