//! `tape list` and `tape show`: tapes as text for people.

use std::collections::HashSet;
use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use super::check::{self, Tape};
use super::format::{Direction, Line};

/// HTTP exchanges on a tape.
pub fn exchanges(tape: &Tape) -> usize {
    tape.lines
        .iter()
        .map(|l| l.exchange)
        .collect::<HashSet<_>>()
        .len()
}

/// One line per tape file in `dir` (oldest first); a broken one says where it breaks.
pub fn list(dir: &Path) -> std::io::Result<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut out = String::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match check::read(&path) {
            Ok(t) => {
                let h = &t.header;
                let _ = writeln!(
                    out,
                    "{name}  {}  {}  upstream={}  {}  part={}  exchanges={}  lines={}",
                    h.started,
                    h.protocol_version,
                    h.upstream,
                    if h.session { "session" } else { "sessionless" },
                    h.part,
                    exchanges(&t),
                    t.lines.len(),
                );
            }
            Err(e) => {
                let _ = writeln!(out, "{name}  BROKEN {e}");
            }
        }
    }
    Ok(out)
}

/// The tape as a timeline: one row per line.
pub fn timeline(tape: &Tape) -> String {
    let h = &tape.header;
    let mut out = format!(
        "tape {}  started {}  protocol {}  upstream {}  {}{}\n",
        h.tape,
        h.started,
        h.protocol_version,
        h.upstream,
        if h.session { "session" } else { "sessionless" },
        h.principal
            .as_ref()
            .map(|p| format!("  principal {}…", &p[..p.len().min(12)]))
            .unwrap_or_default(),
    );
    for line in &tape.lines {
        let _ = writeln!(out, "{}", row(line));
    }
    out
}

fn row(line: &Line) -> String {
    let t = format!("+{}.{:03}s", line.t_ms / 1000, line.t_ms % 1000);
    let arrow = match line.dir {
        Direction::ClientToServer => "->",
        Direction::ServerToClient => "<-",
    };
    let http = match (&line.http, line.status) {
        (Some(m), _) => m.clone(),
        (None, Some(s)) => s.to_string(),
        (None, None) => String::new(),
    };
    let mut what = String::new();
    if let Some(sse) = &line.sse {
        if sse.end {
            let _ = write!(what, "SSE end ({} events)", sse.n);
        } else {
            let _ = write!(what, "SSE #{}", sse.n);
            if let Some(id) = &sse.id {
                let _ = write!(what, " id={id}");
            }
            what.push(' ');
        }
    }
    match line.message_value() {
        Some(Value::Array(batch)) => {
            let parts: Vec<String> = batch.iter().map(describe).collect();
            let _ = write!(what, "batch [{}]", parts.join(", "));
        }
        Some(message) => what.push_str(&describe(&message)),
        None => {
            if let Some(body) = &line.body {
                let short: String = body.chars().take(60).collect();
                let _ = write!(what, "body {short:?}");
            }
        }
    }
    if let Some(sid) = line.headers.get("mcp-session-id") {
        let _ = write!(what, "  [session {}…]", &sid[..sid.len().min(8)]);
    }
    format!("{t:>10}  {arrow} #{:<4} {http:<6} {what}", line.exchange)
}

/// `tools/call echo id=3`, `result id=3`, `error -32601 id=3`, `notifications/progress`.
fn describe(m: &Value) -> String {
    let id = match &m["id"] {
        Value::Null => String::new(),
        id => format!(" id={id}"),
    };
    if let Some(method) = m["method"].as_str() {
        let name = m["params"]["name"]
            .as_str()
            .or_else(|| m["params"]["uri"].as_str())
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        return format!("{method}{name}{id}");
    }
    if let Some(code) = m["error"]["code"].as_i64() {
        return format!("error {code}{id}");
    }
    format!("result{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_names_methods_results_and_events() {
        let text = concat!(
            r#"{"tape":"shadowcat-tape/1","proxy_version":"0.1.0","protocol_version":"2025-11-25","upstream":"u","started":"2026-12-03T19:00:00.000Z","started_unix_ms":1,"session":true}"#,
            "\n",
            r#"{"dir":"c2s","exchange":4,"t_ms":0,"http":"POST","message":{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}}"#,
            "\n",
            r#"{"dir":"s2c","exchange":4,"t_ms":1250,"status":200,"sse":{"n":0,"id":"0-1"},"message":{"jsonrpc":"2.0","id":1,"result":{}}}"#,
            "\n",
            r#"{"dir":"s2c","exchange":4,"t_ms":1251,"status":200,"sse":{"n":1,"end":true}}"#,
            "\n",
        );
        let tape = check::parse(text.as_bytes()).unwrap();
        let shown = timeline(&tape);
        assert!(shown.contains("tools/call echo id=1"), "{shown}");
        assert!(shown.contains("+1.250s"), "{shown}");
        assert!(shown.contains("SSE #0 id=0-1 result id=1"), "{shown}");
        assert!(shown.contains("SSE end (1 events)"), "{shown}");
        assert_eq!(exchanges(&tape), 1);
    }
}
