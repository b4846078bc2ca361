//! `log:`: how the proxy writes its log lines.

/// `log:` how the proxy writes its log lines (to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `log.format`: human-readable lines, or one JSON object per line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// tracing's text format: `timestamp LEVEL target: message key=value ...`.
    #[default]
    Text,
    /// One JSON object per line; an event's fields are top-level keys.
    Json,
}

impl LogFormat {
    /// `text` or `json` (as written in the config and after `--log-format`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}
