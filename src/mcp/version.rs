//! MCP protocol revisions as they matter on the wire.

/// A revision named in `MCP-Protocol-Version`. Unknown values are kept as `Unknown`: the proxy
/// forwards them and lets the upstream answer (with 400, as the spec requires of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// Streamable HTTP introduced; batches allowed. Assumed when the header is missing.
    V2025_03_26,
    V2025_06_18,
    /// Priming events, `retry:`, server-initiated disconnects.
    V2025_11_25,
    /// Sessionless: no `Mcp-Session-Id`, no GET stream, no resumption; closing a request's
    /// stream cancels it.
    V2026_07_28,
    Unknown,
}

impl ProtocolVersion {
    /// Reads the header value; `None` (no header) means 2025-03-26, as the spec says to assume.
    pub fn from_header(value: Option<&[u8]>) -> Self {
        match value.map(<[u8]>::trim_ascii) {
            None => Self::V2025_03_26,
            Some(b"2025-03-26") => Self::V2025_03_26,
            Some(b"2025-06-18") => Self::V2025_06_18,
            Some(b"2025-11-25") => Self::V2025_11_25,
            Some(b"2026-07-28") => Self::V2026_07_28,
            Some(_) => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
            Self::Unknown => "unknown",
        }
    }

    /// 2026-07-28 has no sessions and treats a closed stream as a cancellation.
    pub fn is_sessionless(self) -> bool {
        self == Self::V2026_07_28
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_revision_and_defaults_to_2025_03_26() {
        assert_eq!(
            ProtocolVersion::from_header(None),
            ProtocolVersion::V2025_03_26
        );
        for v in [
            ProtocolVersion::V2025_03_26,
            ProtocolVersion::V2025_06_18,
            ProtocolVersion::V2025_11_25,
            ProtocolVersion::V2026_07_28,
        ] {
            assert_eq!(ProtocolVersion::from_header(Some(v.as_str().as_bytes())), v);
        }
        assert_eq!(
            ProtocolVersion::from_header(Some(b"1999-01-01")),
            ProtocolVersion::Unknown
        );
        assert!(ProtocolVersion::V2026_07_28.is_sessionless());
        assert!(!ProtocolVersion::V2025_11_25.is_sessionless());
    }
}
