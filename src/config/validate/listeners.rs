//! `listen`, `listeners[]` (with `tls`) and the `--bind`/`--tls-cert`/`--tls-key` flags.
//!
//! `listen` is the one-plain-listener shorthand; `listeners` lists several, each plain or TLS.
//! Both in one file is an error (which one would win is not obvious). `--bind` replaces them
//! with one listener, TLS when `--tls-cert`/`--tls-key` are given. Certificate files are read
//! here too, so `check-config` catches a missing or mismatched pair before any port is bound.

use std::path::PathBuf;

use super::{addr, invalid, positive};
use crate::config::listeners::{
    CertPair, ClientAuth, Listener, SniCert, TlsConfig, DEFAULT_HANDSHAKE_TIMEOUT,
};
use crate::config::raw::{RawListener, RawTls};
use crate::config::{ConfigError, Overrides};

pub(super) fn validate(
    listen: Option<String>,
    listeners: Option<Vec<RawListener>>,
    overrides: &Overrides,
    default: std::net::SocketAddr,
) -> Result<Vec<Listener>, ConfigError> {
    let flag_tls = match (&overrides.tls_cert, &overrides.tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig::pair(cert, key)),
        (None, None) => None,
        (Some(_), None) => return Err(invalid("--tls-key", "required with --tls-cert")),
        (None, Some(_)) => return Err(invalid("--tls-cert", "required with --tls-key")),
    };
    if let Some(tls) = &flag_tls {
        check_files(tls, "--tls-cert")?;
    }
    if let Some(bind) = &overrides.listen {
        return Ok(vec![Listener {
            addr: addr(bind, "--bind")?,
            tls: flag_tls,
        }]);
    }
    let mut list = match (listen, listeners) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "listeners",
                "give either `listen` (one plain listener) or `listeners`, not both",
            ))
        }
        (Some(text), None) => vec![Listener::plain(addr(&text, "listen")?)],
        (None, None) => vec![Listener::plain(default)],
        (None, Some(_)) if flag_tls.is_some() => {
            return Err(invalid(
                "--tls-cert",
                "applies to --bind or `listen`; with `listeners`, set `tls` in the file",
            ))
        }
        (None, Some(raw)) if raw.is_empty() => {
            return Err(invalid("listeners", "list at least one listener"))
        }
        (None, Some(raw)) => raw
            .into_iter()
            .enumerate()
            .map(|(i, l)| listener(l, &format!("listeners[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
    };
    for (i, l) in list.iter().enumerate() {
        if list[..i].iter().any(|o| o.addr == l.addr) {
            return Err(invalid(
                format!("listeners[{i}].addr"),
                format!("{} is listed twice", l.addr),
            ));
        }
    }
    if let (Some(tls), [one]) = (flag_tls, list.as_mut_slice()) {
        // `listen` (or its default) with the quick-start flags.
        one.tls = Some(tls);
    }
    Ok(list)
}

fn listener(raw: RawListener, field: &str) -> Result<Listener, ConfigError> {
    Ok(Listener {
        addr: addr(&raw.addr, &format!("{field}.addr"))?,
        tls: raw
            .tls
            .map(|t| tls(t, &format!("{field}.tls")))
            .transpose()?,
    })
}

fn tls(raw: RawTls, field: &str) -> Result<TlsConfig, ConfigError> {
    let default = match (raw.cert_file, raw.key_file) {
        (Some(c), Some(k)) => Some(CertPair {
            cert_file: path(&c, &format!("{field}.cert_file"))?,
            key_file: path(&k, &format!("{field}.key_file"))?,
        }),
        (None, None) => None,
        (Some(_), None) => return Err(invalid(format!("{field}.key_file"), "required")),
        (None, Some(_)) => return Err(invalid(format!("{field}.cert_file"), "required")),
    };
    let certificates = raw
        .certificates
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let at = format!("{field}.certificates[{i}]");
            if c.names.is_empty() {
                return Err(invalid(format!("{at}.names"), "list at least one name"));
            }
            let names = c
                .names
                .iter()
                .enumerate()
                .map(|(j, n)| sni_name(n).map_err(|m| invalid(format!("{at}.names[{j}]"), m)))
                .collect::<Result<_, _>>()?;
            Ok(SniCert {
                names,
                pair: CertPair {
                    cert_file: path(&c.cert_file, &format!("{at}.cert_file"))?,
                    key_file: path(&c.key_file, &format!("{at}.key_file"))?,
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if default.is_none() && certificates.is_empty() {
        return Err(invalid(
            format!("{field}.cert_file"),
            "a TLS listener needs cert_file and key_file, or `certificates`",
        ));
    }
    let client_ca_file = raw
        .client_ca_file
        .map(|f| path(&f, &format!("{field}.client_ca_file")))
        .transpose()?;
    let client_auth = match (raw.client_auth.as_deref(), &client_ca_file) {
        (None, None) => ClientAuth::Off,
        (None | Some("required"), Some(_)) => ClientAuth::Required,
        (Some("optional"), Some(_)) => ClientAuth::Optional,
        (Some("optional" | "required"), None) => {
            return Err(invalid(
                format!("{field}.client_ca_file"),
                "required with client_auth (the CA client certificates must chain to)",
            ))
        }
        (Some(other), _) => {
            return Err(invalid(
                format!("{field}.client_auth"),
                format!("{other:?}: use optional or required"),
            ))
        }
    };
    let tls = TlsConfig {
        default,
        certificates,
        client_ca_file,
        client_auth,
        handshake_timeout: positive(
            raw.handshake_timeout,
            &format!("{field}.handshake_timeout"),
            DEFAULT_HANDSHAKE_TIMEOUT,
        )?,
    };
    check_files(&tls, field)?;
    Ok(tls)
}

/// Reads every pair and the client CA as the server will, so errors come before any bind.
fn check_files(tls: &TlsConfig, field: &str) -> Result<(), ConfigError> {
    crate::tls::Certs::load(tls)
        .map(drop)
        .map_err(|e| invalid(field, e.to_string()))
}

fn path(text: &str, field: &str) -> Result<PathBuf, ConfigError> {
    match text.trim() {
        "" => Err(invalid(field, "empty path")),
        t => Ok(PathBuf::from(t)),
    }
}

/// A DNS name as SNI carries it (lowercase, no port, no trailing dot), or `*.` and one.
fn sni_name(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = name.strip_prefix("*.").unwrap_or(&name);
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(label_ok) {
        return Err(format!(
            "{text:?} is not a DNS name (use e.g. mcp.example.com or *.example.com)"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::sni_name;

    #[test]
    fn sni_names_are_normalized_and_checked() {
        assert_eq!(sni_name("MCP.Example.com.").unwrap(), "mcp.example.com");
        assert_eq!(sni_name("*.example.com").unwrap(), "*.example.com");
        for bad in ["", "*.", "a..b", "host:443", "a.*.b", "ex ample.com"] {
            assert!(sni_name(bad).is_err(), "{bad}");
        }
    }
}
