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

/// A bearer header value whose JOSE header is `header` exactly (jsonwebtoken's `Header` cannot
/// carry every parameter, `crit` among them), signed with the Ed25519 fixture key.
pub fn bearer_with_header(header: &Value, claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pem = std::fs::read(fixture("ed25519.pem")).unwrap();
    let key = EncodingKey::from_ed_pem(&pem).unwrap();
    let signed = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, Algorithm::EdDSA).unwrap();
    format!("Bearer {signed}.{sig}")
}
