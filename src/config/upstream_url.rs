//! `upstreams[].url`: parsing an upstream's MCP endpoint URL.

use super::UpstreamUrl;

// === impl UpstreamUrl ===

impl UpstreamUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: http::Uri = text
            .trim()
            .parse()
            .map_err(|e| format!("invalid URL {text:?}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(format!(
                    "unsupported scheme {other:?} (use http:// or https://)"
                ))
            }
            None => {
                return Err(format!(
                    "{text:?} is not an absolute URL (use http://host:port/path)"
                ))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{text:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        // `Authority::port_u16` is `None` for an out-of-range port too: check the text.
        let port = match authority.as_str().strip_prefix(authority.host()) {
            Some("") if https => 443,
            Some("") => 80,
            Some(rest) => match rest.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(port)) if port != 0 => port,
                _ => return Err(format!("{text:?} has an invalid port (use 1 to 65535)")),
            },
            None => return Err(format!("{text:?} has an invalid authority")),
        };
        if text.contains('#') {
            return Err(format!("{text:?} has a fragment (#...); remove it"));
        }
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let path_and_query = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            format!("/{path_and_query}")
        };
        Ok(Self {
            https,
            host: host.to_owned(),
            port,
            path_and_query,
            original: text.trim().to_owned(),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// `host:port` for the `Host` header (IPv6 in brackets); the port is always written.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}
