//! `*` globs for tool, method and resource names: `*` matches any run of characters,
//! everything else matches itself, ASCII case-insensitively when asked. Linear time: no
//! backtracking blow-up on hostile input. The `Origin`/`Host` allow-lists build on these with
//! a port rule of their own (`crate::authority`).

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    /// The literal pieces between `*`s.
    parts: Vec<String>,
    case_insensitive: bool,
}

impl Glob {
    pub fn new(pattern: &str, case_insensitive: bool) -> Self {
        let norm = if case_insensitive {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_owned()
        };
        Self {
            parts: norm.split('*').map(str::to_owned).collect(),
            pattern: pattern.to_owned(),
            case_insensitive,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Matches without allocating: case-insensitive globs compare ASCII case-folded bytes
    /// (the pattern is stored lowercased), so an `Origin` or `Host` check per request costs
    /// no copy of the header.
    pub fn matches(&self, text: &str) -> bool {
        let ci = self.case_insensitive;
        let eq = |a: &[u8], b: &[u8]| {
            if ci {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let text = text.as_bytes();
        let (first, rest) = match self.parts.split_first() {
            Some(p) => p,
            None => return text.is_empty(),
        };
        let first = first.as_bytes();
        if text.len() < first.len() || !eq(&text[..first.len()], first) {
            return false;
        }
        let mut text = &text[first.len()..];
        let Some((last, middle)) = rest.split_last() else {
            return text.is_empty();
        };
        // Greedy leftmost matching of the middle pieces is optimal for `*`-only globs.
        for part in middle {
            let part = part.as_bytes();
            match (0..=text.len().saturating_sub(part.len()))
                .find(|&i| text.len() >= part.len() && eq(&text[i..i + part.len()], part))
            {
                Some(i) => text = &text[i + part.len()..],
                None => return false,
            }
        }
        let last = last.as_bytes();
        text.len() >= last.len() && eq(&text[text.len() - last.len()..], last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_globs() {
        let g = Glob::new("http://localhost:*", true);
        assert!(g.matches("http://localhost:3000"));
        assert!(g.matches("HTTP://LocalHost:1"));
        assert!(!g.matches("http://localhost"));
        assert!(
            !g.matches("http://localhost.evil.com:1"),
            "no: ':' must follow the host"
        );
        assert!(Glob::new("*", false).matches(""));
        assert!(Glob::new("delete_*", false).matches("delete_file"));
        assert!(!Glob::new("delete_*", false).matches("Delete_file"));
        assert!(Glob::new("a*b*c", false).matches("a-b-b-c"));
        assert!(!Glob::new("a*b*c", false).matches("a-c-b"));
        assert!(!Glob::new("ab*ba", false).matches("aba"));
        assert!(Glob::new("exact", false).matches("exact"));
        assert!(!Glob::new("exact", false).matches("exactly"));
        assert!(Glob::new("*.example.com", true).matches("a.b.example.com"));
    }
}
