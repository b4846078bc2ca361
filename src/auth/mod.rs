//! OAuth 2.1 resource server: bearer JWTs checked at the edge, so upstreams never see (or
//! need) the client's token.
//!
//! A token passes when its signature verifies against a key from the JWKS (selected by `kid`,
//! and only for an algorithm on the allow-list whose family matches the key: no `none`, no HMAC
//! at all, so a public key can never be used as an HMAC secret), its `iss` is the configured
//! issuer, its `aud` names this proxy's resource URL, and `exp`/`nbf` hold within the leeway.
//! Its `sub` becomes the session principal. Failures map to RFC 6750 challenges carrying the
//! RFC 9728 `resource_metadata` URL, which the proxy also serves.
//!
//! The JWKS comes from a file or a URL and is refreshed every `auth.refresh`, and at once (at
//! most every 30 s) when a token names an unknown `kid`, so key rotation needs no restart.
//! No Pingora here.

mod keys;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use jsonwebtoken::{decode, decode_header, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::AuthConfig;
pub use keys::Keys;

/// How often an unknown `kid` may trigger a JWKS refresh.
const KID_REFRESH_MIN: Duration = Duration::from_secs(30);

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub scopes: Vec<String>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer token: 401 without an error code (RFC 6750 §3.1).
    Missing,
    /// A token that does not pass: 401 `invalid_token`, with a short description.
    Invalid(&'static str),
    /// A valid token without the scopes this call needs: 403 `insufficient_scope`.
    InsufficientScope(String),
}

impl AuthError {
    pub fn status(&self) -> u16 {
        match self {
            AuthError::InsufficientScope(_) => 403,
            _ => 401,
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            AuthError::Missing => "Unauthorized: bearer token required",
            AuthError::Invalid(_) => "Unauthorized: invalid token",
            AuthError::InsufficientScope(_) => "Forbidden: insufficient scope",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Vec<String>>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
    /// One per allowed algorithm: jsonwebtoken wants every algorithm of a `Validation` to be
    /// of the key's family, so each token is checked with its own algorithm's.
    validations: Vec<(jsonwebtoken::Algorithm, Validation)>,
    keys: ArcSwap<Keys>,
    last_refresh: Mutex<Option<Instant>>,
    http: reqwest::Client,
    metadata_url: String,
    metadata: Bytes,
}

impl Authenticator {
    /// Builds the authenticator; a JWKS file is read now (an error is a start-up error), a
    /// URL is fetched by [`Self::refresh`] (at start and then periodically).
    pub fn new(config: AuthConfig) -> Result<Self, String> {
        let validations = config
            .algorithms
            .iter()
            .map(|alg| {
                let mut v = Validation::new(*alg);
                v.set_issuer(&[&config.issuer]);
                v.set_audience(&[&config.resource]);
                v.leeway = config.leeway.as_secs();
                v.validate_nbf = true;
                v.required_spec_claims = ["exp", "iss", "aud", "sub"].map(String::from).into();
                (*alg, v)
            })
            .collect();
        let keys = match &config.jwks_file {
            Some(path) => Keys::from_file(path)?,
            None => Keys::default(),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("auth: HTTP client: {e}"))?;
        let metadata_url = metadata_url(&config.resource);
        let metadata = Bytes::from(
            serde_json::json!({
                "resource": config.resource,
                "authorization_servers": config.authorization_servers,
                "scopes_supported": config.scopes_supported,
                "bearer_methods_supported": ["header"],
            })
            .to_string(),
        );
        Ok(Self {
            validations,
            keys: ArcSwap::from_pointee(keys),
            last_refresh: Mutex::new(None),
            http,
            metadata_url,
            metadata,
            config,
        })
    }

    /// Checks the `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthError> {
        let token = match authorization.map(str::trim) {
            None => return Err(AuthError::Missing),
            Some(v) => match v.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                _ => return Err(AuthError::Missing),
            },
        };
        no_critical_extensions(token)?;
        let header = decode_header(token).map_err(|_| AuthError::Invalid("malformed token"))?;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == header.alg) else {
            return Err(AuthError::Invalid("algorithm not allowed"));
        };
        let mut keys = self.keys.load_full();
        if keys.find(header.kid.as_deref(), header.alg).is_none()
            && self
                .refresh_for_unknown_kid(header.kid.as_deref(), header.alg)
                .await
        {
            keys = self.keys.load_full();
        }
        let key = keys
            .find(header.kid.as_deref(), header.alg)
            .ok_or(AuthError::Invalid("unknown signing key"))?;
        let data = decode::<Claims>(token, key, validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            tracing::debug!(error = ?e.kind(), "token refused");
            AuthError::Invalid(match e.kind() {
                K::ExpiredSignature => "token expired",
                K::ImmatureSignature => "token not yet valid",
                K::InvalidAudience => "token not issued for this resource",
                K::InvalidIssuer => "token from another issuer",
                K::InvalidSignature => "bad signature",
                K::MissingRequiredClaim(_) => "missing claim",
                _ => "invalid token",
            })
        })?;
        let scopes = match (data.claims.scope, data.claims.scp) {
            (Some(s), _) => s.split_whitespace().map(str::to_owned).collect(),
            (None, Some(list)) => list,
            (None, None) => Vec::new(),
        };
        Ok(Identity {
            subject: data.claims.sub,
            scopes,
        })
    }

    /// The scopes a call needs (the first matching rule), checked against the token's.
    /// Whether any method or tool needs a scope (then request bodies are judged strictly).
    pub fn requires_scopes(&self) -> bool {
        !self.config.required_scopes.is_empty()
    }

    pub fn check_scopes(
        &self,
        identity: &Identity,
        method: Option<&str>,
        tool: Option<&str>,
    ) -> Result<(), AuthError> {
        let method = method.unwrap_or("");
        let rule = self.config.required_scopes.iter().find(|r| {
            r.method.matches(method)
                && r.tool
                    .as_ref()
                    .is_none_or(|t| tool.is_some_and(|n| t.matches(n)))
        });
        match rule {
            Some(r) if !r.scopes.iter().all(|s| identity.scopes.contains(s)) => {
                Err(AuthError::InsufficientScope(r.scopes.join(" ")))
            }
            _ => Ok(()),
        }
    }

    /// The `WWW-Authenticate` value for a refusal.
    pub fn challenge(&self, error: &AuthError) -> String {
        let meta = &self.metadata_url;
        let scope = self.config.scopes_supported.join(" ");
        match error {
            AuthError::Missing if scope.is_empty() => {
                format!(r#"Bearer resource_metadata="{meta}""#)
            }
            AuthError::Missing => format!(r#"Bearer resource_metadata="{meta}", scope="{scope}""#),
            AuthError::Invalid(why) => {
                format!(
                    r#"Bearer error="invalid_token", error_description="{why}", resource_metadata="{meta}""#
                )
            }
            AuthError::InsufficientScope(need) => {
                format!(
                    r#"Bearer error="insufficient_scope", scope="{need}", resource_metadata="{meta}""#
                )
            }
        }
    }

    /// The RFC 9728 protected-resource metadata document.
    pub fn metadata(&self) -> Bytes {
        self.metadata.clone()
    }

    /// Paths the metadata is served at: the root form and the form with the resource's path.
    pub fn metadata_paths(&self) -> [String; 2] {
        let path = resource_path(&self.config.resource);
        let root = "/.well-known/oauth-protected-resource".to_owned();
        let suffixed = format!("{root}{}", if path == "/" { "" } else { path });
        [root, suffixed]
    }

    /// Reloads the JWKS (file or URL); keeps the old keys when that fails. Refreshes are
    /// serialized by `last_refresh`, which records when the last one *finished*.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut last = self.last_refresh.lock().await;
        let result = self.load_keys().await;
        *last = Some(Instant::now());
        result
    }

    async fn load_keys(&self) -> Result<usize, String> {
        let keys = match (&self.config.jwks_url, &self.config.jwks_file) {
            (Some(url), _) => {
                let resp = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("fetching JWKS {url}: {e}"))?;
                let text = resp
                    .text()
                    .await
                    .map_err(|e| format!("reading JWKS {url}: {e}"))?;
                Keys::from_json(&text)?
            }
            (None, Some(path)) => Keys::from_file(path)?,
            (None, None) => return Err("no JWKS source".into()),
        };
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(n)
    }

    pub fn refresh_every(&self) -> Duration {
        self.config.refresh
    }

    /// Waits for a refresh in flight (the start-up fetch, say), then refreshes once more only if
    /// the key is still missing and the last refresh is older than `KID_REFRESH_MIN`. Returns
    /// whether the keys may have changed.
    async fn refresh_for_unknown_kid(
        &self,
        kid: Option<&str>,
        alg: jsonwebtoken::Algorithm,
    ) -> bool {
        let mut last = self.last_refresh.lock().await;
        if self.keys.load().find(kid, alg).is_some() {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < KID_REFRESH_MIN) {
            return false;
        }
        let result = self.load_keys().await;
        *last = Some(Instant::now());
        match result {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh for an unknown kid failed");
                false
            }
        }
    }
}

/// Refuses a token whose JOSE header has `crit` (RFC 7515 section 4.1.11): it names
/// extensions the recipient must understand, and this proxy understands none, so any `crit`,
/// well-formed or not, means the token cannot be accepted. jsonwebtoken's `Header` has no
/// `crit` field and would ignore it, so the header segment is read here first.
fn no_critical_extensions(token: &str) -> Result<(), AuthError> {
    use base64::Engine;
    let segment = token.split('.').next().unwrap_or_default();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Invalid("malformed token"))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|_| AuthError::Invalid("malformed token"))?;
    match header.get("crit") {
        None => Ok(()),
        Some(serde_json::Value::Array(names))
            if !names.is_empty() && names.iter().all(serde_json::Value::is_string) =>
        {
            Err(AuthError::Invalid("unsupported critical header parameter"))
        }
        Some(_) => Err(AuthError::Invalid("malformed crit header parameter")),
    }
}

/// `https://host/.well-known/oauth-protected-resource/<path>` for a resource URL (RFC 9728 §3).
fn metadata_url(resource: &str) -> String {
    let (origin, path) = split_resource(resource);
    let suffix = if path == "/" { "" } else { path };
    format!("{origin}/.well-known/oauth-protected-resource{suffix}")
}

/// The path part of an absolute URL (`/` when there is none).
fn resource_path(resource: &str) -> &str {
    split_resource(resource).1
}

fn split_resource(resource: &str) -> (&str, &str) {
    let after_scheme = resource.find("://").map_or(0, |i| i + 3);
    match resource[after_scheme..].find('/') {
        Some(i) => resource.split_at(after_scheme + i),
        None => (resource, "/"),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
