//! `recording:` — tapes of MCP traffic (`crate::tape`): where, which sessions, what is
//! redacted, and how large they may grow. `--record DIR` turns it on (or replaces `dir`).

use std::path::PathBuf;

use super::super::raw::RawRecording;
use super::super::ConfigError;
use super::{invalid, size};
use crate::tape::{Redaction, Sample, Settings};

/// `max_bytes_per_tape` when not given.
pub const DEFAULT_PER_TAPE: u64 = 64 << 20;
/// `max_total_bytes` when not given.
pub const DEFAULT_TOTAL: u64 = 1 << 30;

/// `None` without `recording:` and without `--record`.
pub(super) fn validate(
    raw: Option<RawRecording>,
    record: Option<&str>,
) -> Result<Option<Settings>, ConfigError> {
    let raw = match (raw, record) {
        (None, None) => return Ok(None),
        (raw, _) => raw.unwrap_or_default(),
    };
    let (dir, field) = match (record, raw.dir) {
        (Some(d), _) => (d.to_owned(), "--record"),
        (None, Some(d)) => (d, "recording.dir"),
        (None, None) => return Err(invalid("recording.dir", "required")),
    };
    if dir.trim().is_empty() {
        return Err(invalid(field, "must name a directory"));
    }
    let sample = match raw.sessions {
        None => Sample::All,
        Some(serde_yaml::Value::String(s)) if s == "all" => Sample::All,
        Some(serde_yaml::Value::Number(n)) => match n.as_f64() {
            Some(r) if r > 0.0 && r < 1.0 => Sample::Ratio(r),
            Some(r) if r > 0.0 && r <= 1.0 => Sample::All,
            _ => {
                return Err(invalid(
                    "recording.sessions",
                    "a ratio must be > 0 and <= 1",
                ))
            }
        },
        Some(_) => {
            return Err(invalid(
                "recording.sessions",
                "`all`, or the share of sessions to record (e.g. 0.1)",
            ))
        }
    };
    let entries = raw.redact.unwrap_or_default();
    let redact = Redaction::parse(entries.iter().map(String::as_str))
        .map_err(|e| invalid("recording.redact", e.to_string()))?;
    let max_bytes_per_tape = size(
        raw.max_bytes_per_tape,
        "recording.max_bytes_per_tape",
        DEFAULT_PER_TAPE,
    )?;
    if max_bytes_per_tape < 4096 {
        return Err(invalid(
            "recording.max_bytes_per_tape",
            "must be at least 4KiB",
        ));
    }
    let max_total_bytes = size(
        raw.max_total_bytes,
        "recording.max_total_bytes",
        DEFAULT_TOTAL,
    )?;
    if max_total_bytes < max_bytes_per_tape {
        return Err(invalid(
            "recording.max_total_bytes",
            "must be at least recording.max_bytes_per_tape",
        ));
    }
    Ok(Some(Settings {
        dir: PathBuf::from(dir),
        sample,
        redact,
        max_bytes_per_tape,
        max_total_bytes,
    }))
}
