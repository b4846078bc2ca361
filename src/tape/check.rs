//! Reading a tape back, checked line by line (`shadowcat tape check`; the other tools read
//! through this too). A broken tape is a [`Broken`] naming the first bad line.
//!
//! A tape is valid when it is UTF-8; its first line is a version-1 [`Header`]; every other
//! line is a [`Line`]; every line ends with `\n` (a last line without one is a truncated
//! write); a server line belongs to an exchange whose request came before it (in a later
//! part of a rotated tape: or in an earlier part); an SSE response's events are numbered 0,
//! 1, ... and nothing of that exchange follows its end.

use std::collections::HashMap;
use std::path::Path;

use super::format::{Direction, Header, Line, FORMAT};

/// A tape, read and checked.
#[derive(Debug)]
pub struct Tape {
    pub header: Header,
    pub lines: Vec<Line>,
}

/// The first problem found: its line (1-based; 0 for the file itself) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Broken {
    pub line: usize,
    pub message: String,
}

fn broken(line: usize, message: impl Into<String>) -> Broken {
    Broken {
        line,
        message: message.into(),
    }
}

/// Reads and checks a tape file.
pub fn read(path: &Path) -> Result<Tape, Broken> {
    let bytes = std::fs::read(path).map_err(|e| broken(0, format!("cannot read: {e}")))?;
    parse(&bytes)
}

/// Checks a tape's bytes.
pub fn parse(bytes: &[u8]) -> Result<Tape, Broken> {
    if bytes.is_empty() {
        return Err(broken(1, "empty file: no header line"));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        broken(line, "not UTF-8")
    })?;
    let mut rows = text
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    let (_, first) = rows.next().ok_or_else(|| broken(1, "no header line"))?;
    let header = header(ended(1, first)?)?;
    let mut lines = Vec::new();
    // Per exchange: the next SSE index, and whether its stream ended.
    let mut exchanges: HashMap<u64, (u64, bool)> = HashMap::new();
    for (n, row) in rows {
        let line: Line = serde_json::from_str(ended(n, row)?)
            .map_err(|e| broken(n, format!("not a tape line: {e}")))?;
        match line.dir {
            Direction::ClientToServer => {
                if exchanges.insert(line.exchange, (0, false)).is_some() {
                    return Err(broken(
                        n,
                        format!("exchange {} has a second request", line.exchange),
                    ));
                }
            }
            Direction::ServerToClient => {
                if header.part > 0 && !exchanges.contains_key(&line.exchange) {
                    // An exchange that began in an earlier part of the tape.
                    let next = line.sse.as_ref().map_or(0, |m| m.n);
                    exchanges.insert(line.exchange, (next, false));
                }
                let Some(state) = exchanges.get_mut(&line.exchange) else {
                    return Err(broken(
                        n,
                        format!("exchange {}: a response before its request", line.exchange),
                    ));
                };
                if state.1 {
                    return Err(broken(
                        n,
                        format!("exchange {}: a line after its stream ended", line.exchange),
                    ));
                }
                if let Some(mark) = &line.sse {
                    if mark.n != state.0 {
                        return Err(broken(
                            n,
                            format!(
                                "exchange {}: SSE event {} where {} was next",
                                line.exchange, mark.n, state.0
                            ),
                        ));
                    }
                    state.0 += 1;
                    state.1 = mark.end;
                }
            }
        }
        lines.push(line);
    }
    Ok(Tape { header, lines })
}

/// The line without its `\n`; a line without one was cut short.
fn ended(n: usize, row: &str) -> Result<&str, Broken> {
    row.strip_suffix('\n').ok_or_else(|| {
        broken(
            n,
            "truncated: the line does not end (a write was cut short)",
        )
    })
}

fn header(text: &str) -> Result<Header, Broken> {
    let header: Header =
        serde_json::from_str(text).map_err(|e| broken(1, format!("not a tape header: {e}")))?;
    if header.tape != FORMAT {
        return Err(broken(
            1,
            format!("unknown tape format {:?} (expected {FORMAT})", header.tape),
        ));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"tape":"shadowcat-tape/1","proxy_version":"0.1.0","protocol_version":"2025-11-25","upstream":"u","started":"2026-12-03T19:00:00.000Z","started_unix_ms":1,"session":true}"#;

    fn tape(lines: &[&str]) -> String {
        let mut t = format!("{HEADER}\n");
        for l in lines {
            t.push_str(l);
            t.push('\n');
        }
        t
    }

    #[test]
    fn a_good_tape_reads_back() {
        let t = tape(&[
            r#"{"dir":"c2s","exchange":1,"t_ms":0,"http":"POST","message":{"jsonrpc":"2.0","id":1,"method":"ping"}}"#,
            r#"{"dir":"s2c","exchange":1,"t_ms":1,"status":200,"sse":{"n":0},"message":{"jsonrpc":"2.0","id":1,"result":{}}}"#,
            r#"{"dir":"s2c","exchange":1,"t_ms":1,"status":200,"sse":{"n":1,"end":true}}"#,
        ]);
        let read = parse(t.as_bytes()).unwrap();
        assert_eq!(read.lines.len(), 3);
        assert_eq!(read.header.upstream, "u");
    }

    #[test]
    fn every_kind_of_break_names_its_line() {
        let req = r#"{"dir":"c2s","exchange":1,"t_ms":0,"http":"POST"}"#;
        let full = tape(&[req, r#"{"dir":"s2c","exchange":1,"t_ms":1,"status":202}"#]);
        let truncated = &full[..full.len() - 10];
        assert_eq!(parse(truncated.as_bytes()).unwrap_err().line, 3);
        assert_eq!(parse(b"").unwrap_err().line, 1);
        assert_eq!(parse(b"{\"tape\":\"x\"}\n").unwrap_err().line, 1);
        let cases = [
            (
                tape(&[r#"{"dir":"s2c","exchange":9,"t_ms":1,"status":200}"#]),
                2,
            ),
            (tape(&[req, req]), 3),
            (tape(&[req, "not json"]), 3),
            (
                tape(&[req, r#"{"dir":"s2c","exchange":1,"t_ms":1,"sse":{"n":1}}"#]),
                3,
            ),
            (
                tape(&[
                    req,
                    r#"{"dir":"s2c","exchange":1,"t_ms":1,"sse":{"n":0,"end":true}}"#,
                    r#"{"dir":"s2c","exchange":1,"t_ms":1,"sse":{"n":1}}"#,
                ]),
                4,
            ),
        ];
        for (text, line) in cases {
            assert_eq!(parse(text.as_bytes()).unwrap_err().line, line, "{text}");
        }
        let mut bad_utf8 = tape(&[req]).into_bytes();
        bad_utf8.extend_from_slice(b"\xff\n");
        assert_eq!(parse(&bad_utf8).unwrap_err().line, 3);
    }

    proptest::proptest! {
        /// Hostile bytes never panic the reader, and a good tape cut anywhere is either
        /// whole (cut at a line end) or broken at the line that was cut.
        #[test]
        fn any_bytes_or_any_cut_is_a_tape_or_a_numbered_break(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            cut in 0usize..400,
        ) {
            let _ = parse(&junk);
            let good = tape(&[
                r#"{"dir":"c2s","exchange":1,"t_ms":0,"http":"POST","message":{"jsonrpc":"2.0","id":1,"method":"ping"}}"#,
                r#"{"dir":"s2c","exchange":1,"t_ms":1,"status":200,"sse":{"n":0},"message":{"jsonrpc":"2.0","id":1,"result":{}}}"#,
                r#"{"dir":"s2c","exchange":1,"t_ms":1,"status":200,"sse":{"n":1,"end":true}}"#,
            ]);
            let cut = cut.min(good.len());
            let bytes = &good.as_bytes()[..cut];
            let lines_done = bytes.iter().filter(|b| **b == b'\n').count();
            match parse(bytes) {
                Ok(t) => proptest::prop_assert_eq!(t.lines.len() + 1, lines_done),
                Err(b) => proptest::prop_assert_eq!(b.line, lines_done + 1),
            }
        }
    }
}
