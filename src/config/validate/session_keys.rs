//! `sessions.keys`: the keys that seal session ids, secrets read from `${VAR}`, checked by
//! building the sealer once (so a key that would not seal is refused before any port binds).

use super::env::expand_env;
use super::invalid;
use crate::config::raw::RawSessionKey;
use crate::config::{ConfigError, SessionKey};
use crate::sealed_id::{KeyError, Sealer};

pub(super) fn keys(raw: Option<Vec<RawSessionKey>>) -> Result<Vec<SessionKey>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.is_empty() {
        return Err(invalid(
            "sessions.keys",
            "list at least one {id, secret} (or leave the key out)",
        ));
    }
    let mut keys = Vec::with_capacity(raw.len());
    for (i, k) in raw.into_iter().enumerate() {
        let field = format!("sessions.keys[{i}]");
        let secret = expand_env(&k.secret, &format!("{field}.secret"))?;
        // Each key alone first, so the error names the entry.
        Sealer::new(
            [(k.id.as_str(), secret.as_bytes())],
            std::time::Duration::ZERO,
        )
        .map_err(|e| match e {
            KeyError::BadId => invalid(format!("{field}.id"), e.to_string()),
            _ => invalid(format!("{field}.secret"), e.to_string()),
        })?;
        if keys.iter().any(|have: &SessionKey| have.id == k.id) {
            return Err(invalid(
                format!("{field}.id"),
                format!("key id {:?} appears twice", k.id),
            ));
        }
        keys.push(SessionKey { id: k.id, secret });
    }
    Ok(keys)
}
