//! `admin:` — the admin listener's address (`null` or `--admin off`: none) and the bearer
//! token `/metrics` then requires.

use std::net::SocketAddr;

use super::super::raw::{RawAdmin, RawAdminFull};
use super::super::{BearerToken, ConfigError};
use super::{addr, expand_env, invalid};

/// Shortest `admin.bearer_token` accepted: a guessable token protects nothing.
const MIN_TOKEN_LEN: usize = 16;

/// The address (the flag wins over the file) and the token (from the file only: `--admin`
/// moves the listener, it does not open it).
pub(super) fn validate(
    raw: Option<Option<RawAdmin>>,
    flag: Option<&str>,
    default: Option<SocketAddr>,
) -> Result<(Option<SocketAddr>, Option<BearerToken>), ConfigError> {
    let (from_file, bearer) = match raw {
        None => (default, None),
        Some(None) => (None, None),
        Some(Some(RawAdmin::Addr(text))) => (Some(addr(&text, "admin")?), None),
        Some(Some(RawAdmin::Full(RawAdminFull {
            addr: a,
            bearer_token,
        }))) => {
            let address = match a {
                Some(text) => Some(addr(&text, "admin.addr")?),
                None => default,
            };
            (address, bearer_token)
        }
    };
    let address = match flag {
        Some(f)
            if ["off", "none"]
                .iter()
                .any(|o| f.trim().eq_ignore_ascii_case(o)) =>
        {
            None
        }
        Some(f) => Some(addr(f, "--admin")?),
        None => from_file,
    };
    let token = bearer.as_deref().map(token).transpose()?;
    Ok((address, token))
}

fn token(text: &str) -> Result<BearerToken, ConfigError> {
    const FIELD: &str = "admin.bearer_token";
    let value = expand_env(text, FIELD)?;
    // RFC 6750 b64token: what a client can send after `Bearer ` unquoted.
    let body = value.trim_end_matches('=');
    let b64token = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !b64token {
        return Err(invalid(
            FIELD,
            "must be a bearer token: A-Z a-z 0-9 - . _ ~ + / (then = padding)",
        ));
    }
    if value.len() < MIN_TOKEN_LEN {
        return Err(invalid(
            FIELD,
            format!(
                "too short: use at least {MIN_TOKEN_LEN} characters (e.g. openssl rand -hex 32)"
            ),
        ));
    }
    Ok(BearerToken::new(&value))
}
