//! Test tokens signed with the fixture keys in `tests/fixtures/auth`.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const RESOURCE: &str = "https://mcp.example.com/mcp";
pub const ISSUER: &str = "https://auth.example.com";

pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

pub fn claims(sub: &str, scope: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"sub": sub, "iss": ISSUER, "aud": RESOURCE, "exp": now + 300, "iat": now, "scope": scope})
}

/// A bearer header value for `claims`, signed with the Ed25519 fixture key.
pub fn bearer(claims: &Value) -> String {
    let pem = std::fs::read(fixture("ed25519.pem")).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ed-1".into());
    format!(
        "Bearer {}",
        encode(&header, claims, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap()
    )
}
