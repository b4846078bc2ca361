//! `auth:` — the OAuth resource server's settings.

use std::time::Duration;

use super::{duration, invalid, positive};
use crate::config::raw::RawAuth;
use crate::config::{AuthConfig, ConfigError, ScopeRule};
use crate::glob::Glob;

pub(super) fn validate(raw: RawAuth) -> Result<AuthConfig, ConfigError> {
    use jsonwebtoken::Algorithm as A;
    let absolute = |s: &str| s.starts_with("https://") || s.starts_with("http://");
    if !absolute(&raw.resource) {
        return Err(invalid(
            "auth.resource",
            "must be this proxy's absolute MCP URL (https://...)",
        ));
    }
    if raw.issuer.trim().is_empty() {
        return Err(invalid("auth.issuer", "required"));
    }
    let (jwks_url, jwks_file) = match (raw.jwks_url, raw.jwks_file) {
        (Some(u), None) if absolute(&u) => (Some(u), None),
        (Some(_), None) => return Err(invalid("auth.jwks_url", "must be an http(s) URL")),
        (None, Some(f)) => (None, Some(std::path::PathBuf::from(f))),
        _ => return Err(invalid("auth", "set exactly one of jwks_url and jwks_file")),
    };
    let algorithms = match raw.algorithms {
        None => vec![A::RS256, A::ES256, A::EdDSA],
        Some(list) if list.is_empty() => {
            return Err(invalid("auth.algorithms", "list at least one"))
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let field = format!("auth.algorithms[{i}]");
                match name.parse::<A>() {
                    Ok(A::HS256 | A::HS384 | A::HS512) => Err(invalid(
                        field,
                        format!("{name}: HMAC is not allowed for a resource server"),
                    )),
                    Ok(alg) => Ok(alg),
                    Err(_) => Err(invalid(
                        field,
                        format!(
                            "{name:?} is not an allowed algorithm (RS*, PS*, ES256, ES384, EdDSA)"
                        ),
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let leeway = match raw.leeway {
        None => Duration::from_secs(30),
        Some(v) => match duration(&v, "auth.leeway")? {
            d if d > Duration::from_secs(300) => return Err(invalid("auth.leeway", "at most 5m")),
            d => d,
        },
    };
    let required_scopes = raw
        .required_scopes
        .unwrap_or_default()
        .into_iter()
        .map(|r| ScopeRule {
            method: Glob::new(r.method.as_deref().unwrap_or("*"), false),
            tool: r.tool.as_deref().map(|t| Glob::new(t, false)),
            scopes: r.scopes,
        })
        .collect();
    Ok(AuthConfig {
        authorization_servers: raw
            .authorization_servers
            .unwrap_or_else(|| vec![raw.issuer.clone()]),
        resource: raw.resource,
        issuer: raw.issuer,
        jwks_url,
        jwks_file,
        refresh: positive(raw.refresh, "auth.refresh", Duration::from_secs(600))?,
        algorithms,
        leeway,
        scopes_supported: raw.scopes_supported.unwrap_or_default(),
        required_scopes,
    })
}
