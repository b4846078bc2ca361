//! `Origin` and `Host` allow-lists (DNS-rebinding protection). No Pingora.
//!
//! A value is judged only when it is well-formed: a `Host` (or request-target authority) is
//! `host[:port]` and an `Origin` is `scheme://host[:port]` (or `null`), where `host` is a DNS
//! name, an IPv4 address or a bracketed IPv6 literal and `port` is 1 to 5 digits. Anything else
//! (a path, `user@`, a port with letters) matches no pattern, so a value no browser sends cannot
//! slip through a `*` meant for something narrower.
//!
//! Patterns are `*` globs ([`Glob`], case-insensitive) with one exception: a trailing `:*` is a
//! port wildcard and matches `:` followed by a port only, so `http://localhost:*` is
//! `http://localhost` on any port and never `http://localhost:1.evil.com`. A pattern that is
//! `*` alone matches every well-formed value.

use crate::glob::Glob;

/// One allow-list entry for `Origin` or `Host` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityPattern {
    pattern: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `*`: every well-formed value.
    Any,
    /// `<head>:*`: a value with a port whose part before the port matches `head`.
    AnyPort(Glob),
    /// The whole value matches the glob.
    Whole(Glob),
}

/// A well-formed value split at its port: `before` is everything up to the `:` of the port
/// (the whole value when there is no port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Split<'a> {
    whole: &'a str,
    before: &'a str,
    port: Option<&'a str>,
}

// === impl AuthorityPattern ===

impl AuthorityPattern {
    pub fn new(pattern: &str) -> Self {
        let kind = match pattern.strip_suffix(":*") {
            _ if pattern == "*" => Kind::Any,
            Some(head) => Kind::AnyPort(Glob::new(head, true)),
            None => Kind::Whole(Glob::new(pattern, true)),
        };
        Self {
            pattern: pattern.to_owned(),
            kind,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Does this pattern allow `value`, a `Host` header or request-target authority?
    pub fn matches_host(&self, value: &str) -> bool {
        split_host(value).is_some_and(|s| self.matches(s))
    }

    /// Does this pattern allow `value`, an `Origin` header?
    pub fn matches_origin(&self, value: &str) -> bool {
        split_origin(value).is_some_and(|s| self.matches(s))
    }

    fn matches(&self, value: Split<'_>) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::AnyPort(head) => value.port.is_some() && head.matches(value.before),
            Kind::Whole(glob) => glob.matches(value.whole),
        }
    }
}

/// `host[:port]` (RFC 9110 section 7.2, narrowed to names browsers send).
fn split_host(value: &str) -> Option<Split<'_>> {
    let host_len = if let Some(inner) = value.strip_prefix('[') {
        let end = inner.find(']')?;
        let literal = &inner[..end];
        let ipv6 = literal.contains(':')
            && literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ipv6 {
            return None;
        }
        end + 2
    } else {
        value.find(':').unwrap_or(value.len())
    };
    let (host, rest) = value.split_at(host_len);
    let reg_name = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    if host.is_empty() || (!host.starts_with('[') && !host.bytes().all(reg_name)) {
        return None;
    }
    let port = match rest {
        "" => None,
        _ => {
            let port = rest.strip_prefix(':')?;
            let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
            if !digits || port.parse::<u32>().ok()? > u32::from(u16::MAX) {
                return None;
            }
            Some(port)
        }
    };
    Some(Split {
        whole: value,
        before: host,
        port,
    })
}

/// `scheme://host[:port]` or `null` (RFC 6454 section 7; one origin, as browsers send).
fn split_origin(value: &str) -> Option<Split<'_>> {
    if value == "null" {
        return Some(Split {
            whole: value,
            before: value,
            port: None,
        });
    }
    let (scheme, rest) = value.split_once("://")?;
    let mut bytes = scheme.bytes();
    let scheme_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return None;
    }
    let host = split_host(rest)?;
    Some(Split {
        whole: value,
        before: &value[..scheme.len() + 3 + host.before.len()],
        port: host.port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_wildcards_match_a_port_only() {
        let origin = AuthorityPattern::new("http://localhost:*");
        for ok in [
            "http://localhost:3000",
            "HTTP://LocalHost:1",
            "http://localhost:65535",
        ] {
            assert!(origin.matches_origin(ok), "{ok}");
        }
        for bad in [
            "http://localhost",
            "http://localhost:",
            "http://localhost:1.evil.com",
            "http://localhost:80@evil.com",
            "http://localhost:80/",
            "http://localhost:65536",
            "http://localhost:123456",
            "http://localhost.evil.com:1",
            "http://localhost:8080 http://evil.com",
        ] {
            assert!(!origin.matches_origin(bad), "{bad}");
        }
        let host = AuthorityPattern::new("localhost:*");
        assert!(host.matches_host("localhost:8080"));
        for bad in [
            "localhost",
            "localhost:x.evil.com",
            "localhost:80@evil.com",
            "localhost:-1",
        ] {
            assert!(!host.matches_host(bad), "{bad}");
        }
        let v6 = AuthorityPattern::new("[::1]:*");
        assert!(
            v6.matches_host("[::1]:9") && !v6.matches_host("[::1]") && !v6.matches_host("[::1]:x")
        );
    }

    #[test]
    fn patterns_without_a_port_match_no_garbage() {
        let host = AuthorityPattern::new("localhost");
        assert!(host.matches_host("localhost") && host.matches_host("LOCALHOST"));
        for bad in [
            "localhost:80",
            "localhost:x.evil.com",
            "localhost/",
            "localhost@evil.com",
        ] {
            assert!(!host.matches_host(bad), "{bad}");
        }
        let origin = AuthorityPattern::new("https://app.example.com");
        assert!(origin.matches_origin("https://app.example.com"));
        assert!(!origin.matches_origin("https://app.example.com/"));
        assert!(!origin.matches_origin("https://app.example.com:443"));
    }

    #[test]
    fn other_stars_keep_their_glob_meaning_on_well_formed_values() {
        let any = AuthorityPattern::new("*");
        assert!(any.matches_host("anything.example:1") && any.matches_origin("null"));
        assert!(!any.matches_host("a b") && !any.matches_origin("http://a/b"));
        let sub = AuthorityPattern::new("*.internal:*");
        assert!(sub.matches_host("api.internal:443") && !sub.matches_host("api.internal"));
        let http = AuthorityPattern::new("http://*");
        assert!(http.matches_origin("http://localhost:3000") && !http.matches_origin("https://x"));
        let all_ports = AuthorityPattern::new("*:8080");
        assert!(all_ports.matches_host("[::1]:8080") && !all_ports.matches_host("x:80800"));
        assert!(!AuthorityPattern::new("null").matches_origin("http://null"));
    }

    #[test]
    fn malformed_values_are_never_well_formed() {
        for bad in [
            "",
            ":80",
            "[::1",
            "[zz]:80",
            "[]:1",
            "a:1:2",
            "é.example",
            "a b",
        ] {
            assert!(split_host(bad).is_none(), "{bad:?}");
        }
        for bad in [
            "localhost",
            "://x",
            "1http://x",
            "http:/x",
            "http://",
            "http://x?y",
        ] {
            assert!(split_origin(bad).is_none(), "{bad:?}");
        }
        let s = split_origin("https://[::1]:8443").unwrap();
        assert_eq!((s.before, s.port), ("https://[::1]", Some("8443")));
    }
}
