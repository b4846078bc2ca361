//! `Cache-Control` for SSE responses: the proxy adds what a stream needs and keeps every
//! directive the upstream sent. Replacing the header lost the upstream's `no-transform`, which
//! is what tells compressing intermediaries to leave the stream alone.
//!
//! Directives are split on commas outside quoted strings (`no-cache="a, b"` is one directive),
//! and only a bare directive counts as present: `no-cache="Set-Cookie"` restricts caching of
//! one field, not of the response, so a bare `no-cache` is still added beside it.

/// The single `Cache-Control` value for `lines` (every upstream line, in order) with
/// `directive` added unless it is already there, bare. The upstream's text is kept as sent.
pub fn with_directive(lines: &[&[u8]], directive: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut present = false;
    for line in lines {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        present |= directives(line).any(|d| d.eq_ignore_ascii_case(directive.as_bytes()));
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(line);
    }
    if !present {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(directive.as_bytes());
    }
    out
}

/// Each directive of one header value, trimmed; an argument (`=...`) stays attached, so
/// `max-age=5` never equals `max-age`.
fn directives(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, b) in value.iter().enumerate() {
        match (quoted, escaped, *b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, false, b'"') => quoted = !quoted,
            (false, _, b',') => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
        .into_iter()
        .map(<[u8]>::trim_ascii)
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(lines: &[&str]) -> String {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        String::from_utf8(with_directive(&lines, "no-cache")).unwrap()
    }

    /// Regression: `Cache-Control: no-cache, no-transform` from the upstream reached the client
    /// as `no-cache`.
    #[test]
    fn upstream_no_transform_survives() {
        assert_eq!(
            merged(&["no-cache, no-transform"]),
            "no-cache, no-transform"
        );
        assert_eq!(merged(&["no-transform"]), "no-transform, no-cache");
        assert_eq!(
            merged(&["No-Cache", "no-transform"]),
            "No-Cache, no-transform",
            "names are case-insensitive; several lines become one"
        );
    }

    #[test]
    fn adds_the_directive_when_missing() {
        assert_eq!(merged(&[]), "no-cache");
        assert_eq!(merged(&["  "]), "no-cache");
        assert_eq!(merged(&["max-age=60"]), "max-age=60, no-cache");
        assert_eq!(
            merged(&["private, no-store"]),
            "private, no-store, no-cache"
        );
    }

    #[test]
    fn quoted_and_qualified_forms_are_not_the_bare_directive() {
        assert_eq!(
            merged(&[r#"no-cache="set-cookie""#]),
            r#"no-cache="set-cookie", no-cache"#
        );
        assert_eq!(
            merged(&[r#"private="a, no-cache, b""#]),
            r#"private="a, no-cache, b", no-cache"#,
            "a comma inside quotes does not split"
        );
        assert_eq!(
            merged(&[r#"x="\", no-cache", no-cache"#]),
            r#"x="\", no-cache", no-cache"#,
            "an escaped quote does not end the string"
        );
    }
}
