use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::config::ScopeRule;
use crate::glob::Glob;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://auth.example.com";

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

fn config() -> AuthConfig {
    AuthConfig {
        resource: RESOURCE.into(),
        issuer: ISSUER.into(),
        authorization_servers: vec![ISSUER.into()],
        jwks_url: None,
        jwks_file: Some(fixture("jwks.json")),
        refresh: Duration::from_secs(600),
        algorithms: vec![Algorithm::RS256, Algorithm::EdDSA],
        leeway: Duration::from_secs(30),
        scopes_supported: vec!["mcp".into(), "mcp:admin".into()],
        required_scopes: vec![ScopeRule {
            method: Glob::new("tools/call", false),
            tool: Some(Glob::new("admin_*", false)),
            scopes: vec!["mcp:admin".into()],
        }],
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs claims with a fixture key.
pub fn token(key: &str, kid: &str, claims: serde_json::Value) -> String {
    let pem = std::fs::read(fixture(key)).unwrap();
    let (alg, key) = if key.starts_with("rsa") {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap())
    } else {
        (Algorithm::EdDSA, EncodingKey::from_ed_pem(&pem).unwrap())
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    encode(&header, &claims, &key).unwrap()
}

fn claims(sub: &str) -> serde_json::Value {
    json!({"sub": sub, "iss": ISSUER, "aud": RESOURCE, "exp": now() + 300, "scope": "mcp"})
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test]
async fn valid_tokens_of_both_key_types_pass() {
    let auth = Authenticator::new(config()).unwrap();
    let id = auth
        .authenticate(Some(&bearer(&token(
            "ed25519.pem",
            "ed-1",
            claims("alice"),
        ))))
        .await
        .unwrap();
    assert_eq!(
        id,
        Identity {
            subject: "alice".into(),
            scopes: vec!["mcp".into()]
        }
    );
    let id = auth
        .authenticate(Some(&bearer(&token("rsa.pem", "rsa-1", claims("bob")))))
        .await
        .unwrap();
    assert_eq!(id.subject, "bob");
    let mut c = claims("carol");
    c["aud"] = json!(["other", RESOURCE]);
    c["scp"] = json!(["a", "b"]);
    c.as_object_mut().unwrap().remove("scope");
    let id = auth
        .authenticate(Some(&bearer(&token("ed25519.pem", "ed-1", c))))
        .await
        .unwrap();
    assert_eq!(id.scopes, ["a", "b"], "aud may be a list; scp as an array");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_a_reason() {
    let auth = Authenticator::new(config()).unwrap();
    let check = |c: serde_json::Value, key: &'static str, kid: &'static str| {
        let t = token(key, kid, c);
        let auth = &auth;
        async move { auth.authenticate(Some(&bearer(&t))).await.unwrap_err() }
    };
    let mut c = claims("a");
    c["exp"] = json!(now() - 120);
    assert_eq!(
        check(c, "ed25519.pem", "ed-1").await,
        AuthError::Invalid("token expired")
    );
    let mut c = claims("a");
    c["nbf"] = json!(now() + 600);
    assert_eq!(
        check(c, "ed25519.pem", "ed-1").await,
        AuthError::Invalid("token not yet valid")
    );
    let mut c = claims("a");
    c["aud"] = json!("https://other.example.com/mcp");
    assert_eq!(
        check(c, "ed25519.pem", "ed-1").await,
        AuthError::Invalid("token not issued for this resource")
    );
    let mut c = claims("a");
    c["iss"] = json!("https://evil.example.com");
    assert_eq!(
        check(c, "ed25519.pem", "ed-1").await,
        AuthError::Invalid("token from another issuer")
    );
    assert_eq!(
        check(claims("a"), "other-ed25519.pem", "ed-1").await,
        AuthError::Invalid("bad signature")
    );
    assert_eq!(
        check(claims("a"), "ed25519.pem", "nope").await,
        AuthError::Invalid("unknown signing key")
    );
    let mut c = claims("a");
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check(c, "ed25519.pem", "ed-1").await,
        AuthError::Invalid("missing claim")
    );
    // A leeway of 30 s accepts a token that expired 10 s ago.
    let mut c = claims("a");
    c["exp"] = json!(now() - 10);
    let t = token("ed25519.pem", "ed-1", c);
    assert!(auth.authenticate(Some(&bearer(&t))).await.is_ok());
}

#[tokio::test]
async fn algorithm_attacks_fail() {
    let auth = Authenticator::new(config()).unwrap();
    let b64 = |v: serde_json::Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg":"none","typ":"JWT"})),
        b64(claims("mallory"))
    );
    assert!(matches!(
        auth.authenticate(Some(&bearer(&none))).await,
        Err(AuthError::Invalid(_))
    ));
    // HS256 with the RSA public key as the shared secret (the classic confusion attack).
    let public = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let forged = encode(
        &header,
        &claims("mallory"),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(
        auth.authenticate(Some(&bearer(&forged))).await,
        Err(AuthError::Invalid("algorithm not allowed"))
    );
    // An allowed algorithm whose family does not match the key named by kid.
    let t = token("rsa.pem", "ed-1", claims("mallory"));
    assert_eq!(
        auth.authenticate(Some(&bearer(&t))).await,
        Err(AuthError::Invalid("unknown signing key"))
    );
}

#[tokio::test]
async fn missing_or_non_bearer_credentials() {
    let auth = Authenticator::new(config()).unwrap();
    assert_eq!(auth.authenticate(None).await, Err(AuthError::Missing));
    assert_eq!(
        auth.authenticate(Some("Basic dXNlcjpwdw==")).await,
        Err(AuthError::Missing)
    );
    assert_eq!(
        auth.authenticate(Some("Bearer not.a.jwt")).await,
        Err(AuthError::Invalid("malformed token"))
    );
}

#[test]
fn scopes_challenges_and_metadata() {
    let auth = Authenticator::new(config()).unwrap();
    let user = Identity {
        subject: "a".into(),
        scopes: vec!["mcp".into()],
    };
    assert!(auth
        .check_scopes(&user, Some("tools/call"), Some("echo"))
        .is_ok());
    let err = auth
        .check_scopes(&user, Some("tools/call"), Some("admin_reset"))
        .unwrap_err();
    assert_eq!(err, AuthError::InsufficientScope("mcp:admin".into()));
    assert_eq!(err.status(), 403);
    let admin = Identity {
        subject: "a".into(),
        scopes: vec!["mcp:admin".into()],
    };
    assert!(auth
        .check_scopes(&admin, Some("tools/call"), Some("admin_reset"))
        .is_ok());

    let meta = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
    assert_eq!(
        auth.challenge(&AuthError::Missing),
        format!(r#"Bearer resource_metadata="{meta}", scope="mcp mcp:admin""#)
    );
    assert!(auth
        .challenge(&AuthError::Invalid("bad signature"))
        .starts_with(r#"Bearer error="invalid_token""#));
    assert!(auth
        .challenge(&err)
        .contains(r#"error="insufficient_scope", scope="mcp:admin""#));
    assert_eq!(
        auth.metadata_paths(),
        [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp"
        ]
    );
    let doc: serde_json::Value = serde_json::from_slice(&auth.metadata()).unwrap();
    assert_eq!(doc["resource"], RESOURCE);
    assert_eq!(doc["authorization_servers"][0], ISSUER);
    assert_eq!(
        metadata_url("https://h:8443"),
        "https://h:8443/.well-known/oauth-protected-resource"
    );
}

/// Regression: a token arriving while the start-up JWKS fetch was still in flight got 401,
/// because the refresh was marked done when it started. It now waits for that fetch.
#[tokio::test]
async fn regression_token_during_the_first_jwks_fetch_is_accepted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let jwks = std::fs::read_to_string(fixture("jwks.json")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = jwks.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(Duration::from_millis(300)).await; // a slow identity provider
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    let mut cfg = config();
    cfg.jwks_file = None;
    cfg.jwks_url = Some(format!("http://{addr}/jwks"));
    let auth = std::sync::Arc::new(Authenticator::new(cfg).unwrap());
    let background = auth.clone();
    let first_fetch = tokio::spawn(async move { background.refresh().await });
    tokio::time::sleep(Duration::from_millis(50)).await; // the fetch is in flight
    let t = token("ed25519.pem", "ed-1", claims("alice"));
    let id = auth.authenticate(Some(&bearer(&t))).await;
    assert_eq!(id.map(|i| i.subject), Ok("alice".to_owned()));
    assert_eq!(first_fetch.await.unwrap(), Ok(2));
}

/// A token with this exact JOSE header, signed with the Ed25519 fixture key.
fn with_header(header: serde_json::Value, claims: serde_json::Value) -> String {
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
    format!("{signed}.{sig}")
}

/// Regression: a `crit` header parameter was ignored (jsonwebtoken does not read it), so a
/// token that demanded an extension the proxy does not implement was accepted (RFC 7515
/// section 4.1.11 says it must not be).
#[tokio::test]
async fn tokens_with_critical_extensions_are_refused() {
    let auth = Authenticator::new(config()).unwrap();
    let plain = json!({"alg": "EdDSA", "kid": "ed-1", "typ": "JWT"});
    let ok = with_header(plain.clone(), claims("alice"));
    assert!(
        auth.authenticate(Some(&bearer(&ok))).await.is_ok(),
        "the signing is right"
    );
    let cases = [
        (json!(["exp"]), "unsupported critical header parameter"),
        (json!(["b64"]), "unsupported critical header parameter"),
        (json!([]), "malformed crit header parameter"),
        (json!("exp"), "malformed crit header parameter"),
        (json!([1]), "malformed crit header parameter"),
        (json!(null), "malformed crit header parameter"),
    ];
    for (crit, why) in cases {
        let mut header = plain.clone();
        header["crit"] = crit.clone();
        header["exp"] = json!(1);
        let token = with_header(header, claims("alice"));
        let got = auth.authenticate(Some(&bearer(&token))).await;
        assert_eq!(got, Err(AuthError::Invalid(why)), "crit: {crit}");
    }
}
