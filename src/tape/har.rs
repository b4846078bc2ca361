//! `tape export --format har`: a tape as HAR 1.2 (the HTTP Archive format browser tools and
//! HTTP tooling read): one entry per HTTP exchange, its request and response with the
//! headers the tape kept (credentials as `[redacted]`), the body as sent (an SSE response's
//! events as event-stream text), and its timings from the tape's offsets. A tape does not
//! know the URL the client used: entries name `http://shadowcat.invalid/mcp`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::check::Tape;
use super::format::{Direction, Line};
use super::writer::rfc3339;

/// The URL every entry names.
pub const URL: &str = "http://shadowcat.invalid/mcp";

/// The tape as a HAR 1.2 document.
pub fn export(tape: &Tape) -> Value {
    let mut order = Vec::new();
    let mut by_exchange: BTreeMap<u64, Vec<&Line>> = BTreeMap::new();
    for line in &tape.lines {
        by_exchange
            .entry(line.exchange)
            .or_insert_with(|| {
                order.push(line.exchange);
                Vec::new()
            })
            .push(line);
    }
    let started = SystemTime::UNIX_EPOCH + Duration::from_millis(tape.header.started_unix_ms);
    let entries: Vec<Value> = order
        .iter()
        .filter_map(|x| entry(started, by_exchange.get(x)?))
        .collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "shadowcat", "version": tape.header.proxy_version},
            "comment": format!(
                "{} tape, protocol {}, upstream {}",
                tape.header.tape, tape.header.protocol_version, tape.header.upstream
            ),
            "entries": entries,
        }
    })
}

fn entry(started: SystemTime, lines: &[&Line]) -> Option<Value> {
    let request = lines.iter().find(|l| l.dir == Direction::ClientToServer)?;
    let responses: Vec<&&Line> = lines
        .iter()
        .filter(|l| l.dir == Direction::ServerToClient)
        .collect();
    let first = responses.first();
    let last_t = responses.last().map_or(request.t_ms, |l| l.t_ms);
    let wait = first.map_or(0, |l| l.t_ms.saturating_sub(request.t_ms));
    let receive = last_t.saturating_sub(request.t_ms + wait);
    let status = first.and_then(|l| l.status).unwrap_or(0);
    let sse = responses.iter().any(|l| l.sse.is_some());
    let request_body = body_text(request);
    let response_body = match sse {
        true => sse_text(&responses),
        false => first.and_then(|l| body_text(l)).unwrap_or_default(),
    };
    let response_headers = first.map(|l| headers(l)).unwrap_or_default();
    let mime = |l: Option<&Line>, default: &str| {
        l.and_then(|l| l.headers.get("content-type").cloned())
            .unwrap_or_else(|| default.to_owned())
    };
    let mut req = json!({
        "method": request.http.as_deref().unwrap_or("POST"),
        "url": URL,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": headers(request),
        "queryString": [],
        "headersSize": -1,
        "bodySize": request_body.as_ref().map_or(0, |b| b.len() as i64),
    });
    if let Some(text) = request_body {
        req["postData"] =
            json!({"mimeType": mime(Some(request), "application/json"), "text": text});
    }
    let at = started + Duration::from_millis(request.t_ms);
    Some(json!({
        "startedDateTime": rfc3339(at),
        "time": wait + receive,
        "request": req,
        "response": {
            "status": status,
            "statusText": http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or(""),
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": response_headers,
            "content": {
                "size": response_body.len(),
                "mimeType": mime(first.map(|l| &***l), if sse { "text/event-stream" } else { "application/json" }),
                "text": response_body,
            },
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        },
        "cache": {},
        "timings": {"send": 0, "wait": wait, "receive": receive},
    }))
}

fn headers(line: &Line) -> Vec<Value> {
    line.headers
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect()
}

fn body_text(line: &Line) -> Option<String> {
    line.message
        .as_ref()
        .map(|m| m.get().to_owned())
        .or_else(|| line.body.clone())
}

/// An SSE response's events as event-stream text, as the client got them.
fn sse_text(lines: &[&&Line]) -> String {
    let mut out = String::new();
    for line in lines {
        let Some(mark) = &line.sse else { continue };
        if mark.end {
            continue;
        }
        if let Some(event) = &mark.event {
            out.push_str(&format!("event: {event}\n"));
        }
        if let Some(id) = &mark.id {
            out.push_str(&format!("id: {id}\n"));
        }
        if let Some(retry) = mark.retry {
            out.push_str(&format!("retry: {retry}\n"));
        }
        if let Some(data) = body_text(line) {
            for l in data.split('\n') {
                out.push_str(&format!("data: {l}\n"));
            }
        }
        out.push('\n');
    }
    out
}

/// A JSON type check.
type Check = fn(&Value) -> bool;
/// A required field and its type.
type Field<'a> = (&'a str, Check);
/// Required fields and their types.
type Fields<'a> = [Field<'a>];

/// The HAR 1.2 fields every document must have, by the specification's required lists:
/// `None` when `har` has them all with the right JSON types, else the first one missing.
pub fn missing_required(har: &Value) -> Option<String> {
    let log = &har["log"];
    let need = |v: &Value, path: &str, fields: &Fields| {
        fields
            .iter()
            .find(|(f, ok)| !ok(&v[*f]))
            .map(|(f, _)| format!("{path}.{f}"))
    };
    let s: Check = Value::is_string;
    let n: Check = Value::is_number;
    let a: Check = Value::is_array;
    let o: Check = Value::is_object;
    if let Some(m) = need(
        log,
        "log",
        &[("version", s), ("creator", o), ("entries", a)],
    ) {
        return Some(m);
    }
    if let Some(m) = need(
        &log["creator"],
        "log.creator",
        &[("name", s), ("version", s)],
    ) {
        return Some(m);
    }
    for (i, e) in log["entries"].as_array()?.iter().enumerate() {
        let p = format!("log.entries[{i}]");
        let checks: [(&Value, String, Vec<Field>); 5] = [
            (
                e,
                p.clone(),
                vec![
                    ("startedDateTime", s),
                    ("time", n),
                    ("request", o),
                    ("response", o),
                    ("cache", o),
                    ("timings", o),
                ],
            ),
            (
                &e["request"],
                format!("{p}.request"),
                vec![
                    ("method", s),
                    ("url", s),
                    ("httpVersion", s),
                    ("cookies", a),
                    ("headers", a),
                    ("queryString", a),
                    ("headersSize", n),
                    ("bodySize", n),
                ],
            ),
            (
                &e["response"],
                format!("{p}.response"),
                vec![
                    ("status", n),
                    ("statusText", s),
                    ("httpVersion", s),
                    ("cookies", a),
                    ("headers", a),
                    ("content", o),
                    ("redirectURL", s),
                    ("headersSize", n),
                    ("bodySize", n),
                ],
            ),
            (
                &e["response"]["content"],
                format!("{p}.response.content"),
                vec![("size", n), ("mimeType", s)],
            ),
            (
                &e["timings"],
                format!("{p}.timings"),
                vec![("send", n), ("wait", n), ("receive", n)],
            ),
        ];
        for (v, path, fields) in checks {
            if let Some(m) = need(v, &path, &fields) {
                return Some(m);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::check;

    #[test]
    fn an_sse_exchange_exports_as_one_entry_with_every_required_field() {
        let text = concat!(
            r#"{"tape":"shadowcat-tape/1","proxy_version":"0.1.0","protocol_version":"2025-11-25","upstream":"u","started":"2026-12-03T19:00:00.000Z","started_unix_ms":1796324400000,"session":true}"#,
            "\n",
            r#"{"dir":"c2s","exchange":4,"t_ms":0,"http":"POST","headers":{"authorization":"[redacted]"},"message":{"jsonrpc":"2.0","id":1,"method":"ping"}}"#,
            "\n",
            r#"{"dir":"s2c","exchange":4,"t_ms":5,"status":200,"headers":{"content-type":"text/event-stream"},"sse":{"n":0,"id":"0-1"},"message":{"jsonrpc":"2.0","id":1,"result":{}}}"#,
            "\n",
            r#"{"dir":"s2c","exchange":4,"t_ms":9,"status":200,"sse":{"n":1,"end":true}}"#,
            "\n",
            r#"{"dir":"c2s","exchange":5,"t_ms":10,"http":"DELETE"}"#,
            "\n",
            r#"{"dir":"s2c","exchange":5,"t_ms":11,"status":200}"#,
            "\n",
        );
        let har = export(&check::parse(text.as_bytes()).unwrap());
        assert_eq!(missing_required(&har), None, "{har:#}");
        let entries = har["log"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        let e = &entries[0];
        assert_eq!(
            e["response"]["content"]["text"],
            "id: 0-1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
        );
        assert_eq!(e["timings"]["wait"], 5);
        assert_eq!(e["timings"]["receive"], 4);
        assert_eq!(
            e["request"]["postData"]["text"],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#
        );
        assert_eq!(entries[1]["request"]["method"], "DELETE");
        let mut broken = har.clone();
        broken["log"]["entries"][0]["response"]["content"]
            .as_object_mut()
            .unwrap()
            .remove("mimeType");
        assert_eq!(
            missing_required(&broken).as_deref(),
            Some("log.entries[0].response.content.mimeType")
        );
    }
}
