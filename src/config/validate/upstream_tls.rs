//! `upstreams[].tls` and `upstreams[].http2`.
//!
//! The files are read and the rustls client config built here, as the server will build it,
//! so `check-config` catches a bad CA bundle or a mismatched client pair before any bind.

use std::path::PathBuf;

use super::invalid;
use crate::config::raw::RawUpstreamTls;
use crate::config::{ConfigError, Http2Mode, UpstreamTls, UpstreamUrl};

pub(super) fn tls(
    raw: Option<RawUpstreamTls>,
    url: &UpstreamUrl,
    field: &str,
) -> Result<UpstreamTls, ConfigError> {
    let Some(raw) = raw else {
        return Ok(UpstreamTls::default());
    };
    if !url.https {
        return Err(invalid(
            field,
            "tls applies to https:// upstreams only (this URL is http://)",
        ));
    }
    let server_name = match raw.server_name.as_deref().map(str::trim) {
        None => None,
        Some(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            rustls_pki_types::ServerName::try_from(name).map_err(|_| {
                invalid(
                    format!("{field}.server_name"),
                    format!("{name:?} is not a DNS name or IP address"),
                )
            })?;
            Some(name.to_owned())
        }
    };
    let path = |text: Option<String>, key: &str| -> Result<Option<PathBuf>, ConfigError> {
        match text.as_deref().map(str::trim) {
            None => Ok(None),
            Some("") => Err(invalid(format!("{field}.{key}"), "empty path")),
            Some(t) => Ok(Some(PathBuf::from(t))),
        }
    };
    let tls = UpstreamTls {
        server_name,
        ca_file: path(raw.ca_file, "ca_file")?,
        cert_file: path(raw.cert_file, "cert_file")?,
        key_file: path(raw.key_file, "key_file")?,
        insecure_skip_verify: raw.insecure_skip_verify,
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => {
            return Err(invalid(
                format!("{field}.key_file"),
                "required with cert_file (the client certificate's key)",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                format!("{field}.cert_file"),
                "required with key_file (the client certificate chain)",
            ))
        }
        _ => {}
    }
    if tls.insecure_skip_verify && tls.ca_file.is_some() {
        return Err(invalid(
            format!("{field}.insecure_skip_verify"),
            "conflicts with ca_file (nothing would be checked against it)",
        ));
    }
    crate::upstream_client::TlsSettings::from_config(&tls)
        .client_config()
        .map_err(|m| invalid(field, m))?;
    Ok(tls)
}

pub(super) fn http2(raw: Option<&str>, field: &str) -> Result<Http2Mode, ConfigError> {
    match raw.map(str::trim) {
        None | Some("auto") => Ok(Http2Mode::Auto),
        Some("always") => Ok(Http2Mode::Always),
        Some("never") => Ok(Http2Mode::Never),
        Some(other) => Err(invalid(
            field,
            format!("{other:?}: use auto, always or never"),
        )),
    }
}
