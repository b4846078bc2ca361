//! Values read from the environment (`${VAR}`), so secrets need not be written into the file,
//! and the upstream headers that carry them.

use super::invalid;
use crate::config::ConfigError;

/// One configured upstream header: a valid name, and a value with `${VAR}` read from the
/// environment (so credentials need not be written into the file).
pub(super) fn upstream_header(
    name: &str,
    value: &str,
    field: &str,
) -> Result<(http::HeaderName, http::HeaderValue), ConfigError> {
    let header = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(field, format!("invalid header name {name:?}")))?;
    let out = expand_env(value, field)?;
    let mut value = http::HeaderValue::from_str(&out)
        .map_err(|_| invalid(field, "value is not a valid header value"))?;
    value.set_sensitive(true);
    Ok((header, value))
}

/// `value` with each `${VAR}` replaced by that environment variable (a missing one is an
/// error), so secrets need not be written into the file.
pub(super) fn expand_env(value: &str, field: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| invalid(field, "unclosed ${ in value"))?;
        let var = &rest[start + 2..start + end];
        let got = std::env::var(var)
            .map_err(|_| invalid(field, format!("environment variable {var} is not set")))?;
        out.push_str(&got);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
