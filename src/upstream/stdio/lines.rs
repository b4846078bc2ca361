//! Newline-delimited JSON-RPC: a bounded line reader, and a borrowed peek at each message
//! (kind, id, progress token) that routing needs. The line itself is forwarded as it is.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line read, or one that was longer than the limit (its bytes were dropped).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    Text(Bytes),
    TooLong,
}

/// Reads `\n`-terminated lines of at most `max` bytes; a longer line is skipped, never held.
pub(super) struct LineReader<R> {
    reader: R,
    max: usize,
    buf: Vec<u8>,
    skipping: bool,
}

// === impl LineReader ===

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(super) fn new(reader: R, max: usize) -> Self {
        Self {
            reader,
            max,
            buf: Vec::new(),
            skipping: false,
        }
    }

    /// The next non-empty line (a trailing `\r` removed); `None` at the end of the input.
    pub(super) async fn next(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                let last = std::mem::take(&mut self.buf);
                return Ok(match std::mem::take(&mut self.skipping) {
                    true => Some(Line::TooLong),
                    false if last.is_empty() => None,
                    false => Some(Line::Text(Bytes::from(last))),
                });
            }
            let (take, end) = match memchr::memchr(b'\n', available) {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if !self.skipping {
                if self.buf.len() + take > self.max {
                    self.skipping = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&available[..take]);
                }
            }
            self.reader.consume(take + usize::from(end));
            if !end {
                continue;
            }
            if std::mem::take(&mut self.skipping) {
                return Ok(Some(Line::TooLong));
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                self.buf.clear();
                continue;
            }
            return Ok(Some(Line::Text(Bytes::from(std::mem::take(&mut self.buf)))));
        }
    }
}

/// What routing needs to know of one JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Message {
    pub kind: Kind,
    /// The request's id as JSON text (`1`, `"a"`), for requests and responses.
    pub id: Option<String>,
    /// The method, for requests and notifications.
    pub method: Option<String>,
    /// A request's `params._meta.progressToken`, or a progress notification's
    /// `params.progressToken`, as JSON text.
    pub progress_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Request,
    Notification,
    Response,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    result: Option<serde::de::IgnoredAny>,
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
    #[serde(borrow, rename = "_meta")]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
}

/// The JSON-RPC 2.0 message in `text`, or `None` when it is not one.
pub(super) fn peek(text: &[u8]) -> Option<Message> {
    let p: Peek<'_> = serde_json::from_slice(text).ok()?;
    if p.jsonrpc.as_deref() != Some("2.0") {
        return None;
    }
    let id = p.id.map(|id| id.get().to_owned());
    let kind = match (&p.method, &id, p.result.is_some() || p.error.is_some()) {
        (Some(_), Some(_), false) => Kind::Request,
        (Some(_), None, false) => Kind::Notification,
        (None, _, true) => Kind::Response,
        _ => return None,
    };
    let params = p
        .params
        .and_then(|raw| serde_json::from_str::<Params<'_>>(raw.get()).ok());
    let progress_token = params.and_then(|params| match kind {
        Kind::Request => params.meta.and_then(|m| m.progress_token),
        Kind::Notification => params.progress_token,
        Kind::Response => None,
    });
    Some(Message {
        kind,
        id,
        method: p.method.map(Cow::into_owned),
        progress_token: progress_token.map(|t| t.get().to_owned()),
    })
}

/// Every message of a POST body or a stdout line: one object, or the members of a batch
/// (2025-03-26), each with its own bytes. `None` when any member is not JSON-RPC.
pub(super) fn split(text: &Bytes) -> Option<Vec<(Bytes, Message)>> {
    let first = text.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'[' {
        return Some(vec![(text.clone(), peek(text)?)]);
    }
    let members: Vec<&RawValue> = serde_json::from_slice(text).ok()?;
    if members.is_empty() {
        return None;
    }
    members
        .into_iter()
        .map(|m| {
            let bytes = Bytes::copy_from_slice(m.get().as_bytes());
            peek(&bytes).map(|msg| (bytes, msg))
        })
        .collect()
}

/// One SSE event carrying `line`. A raw CR in valid JSON can only be whitespace between
/// tokens (strings escape it), and SSE would read it as a line end: it becomes a space.
pub(super) fn sse_event(line: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(line.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend(line.iter().map(|b| if *b == b'\r' { b' ' } else { *b }));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(4, input), max);
        let mut out = Vec::new();
        while let Some(line) = reader.next().await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn lines_are_bounded_and_split_across_reads() {
        let text = |s: &str| Line::Text(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(
            lines(b"ab\r\n\n  \nlonger-than-8\ncd\nlast", 8).await,
            vec![text("ab"), Line::TooLong, text("cd"), text("last")]
        );
        assert_eq!(lines(b"123456789", 8).await, vec![Line::TooLong]);
        assert_eq!(lines(b"", 8).await, vec![]);
    }

    #[test]
    fn peek_tells_kinds_ids_and_progress_tokens() {
        let req = peek(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":{"progressToken":"t1"}}}"#).unwrap();
        assert_eq!((req.kind, req.id.as_deref()), (Kind::Request, Some("7")));
        assert_eq!(req.progress_token.as_deref(), Some("\"t1\""));
        let note = peek(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t1","progress":1}}"#).unwrap();
        assert_eq!(note.kind, Kind::Notification);
        assert_eq!(note.progress_token.as_deref(), Some("\"t1\""));
        let resp = peek(br#"{"jsonrpc":"2.0","id":"x","result":{}}"#).unwrap();
        assert_eq!(
            (resp.kind, resp.id.as_deref()),
            (Kind::Response, Some("\"x\""))
        );
        let positional = peek(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}"#).unwrap();
        assert_eq!(positional.kind, Kind::Request);
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"jsonrpc":"1.0","id":1,"result":1}"#,
            b"[1]",
        ] {
            assert_eq!(peek(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn batches_split_into_members() {
        let body = Bytes::from_static(
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#,
        );
        let parts = split(&body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(&parts[1].0[..], br#"{"jsonrpc":"2.0","method":"b"}"#);
        assert!(split(&Bytes::from_static(b"[]")).is_none());
        assert!(split(&Bytes::from_static(br#"[{"jsonrpc":"2.0"}]"#)).is_none());
    }

    #[test]
    fn sse_events_never_carry_a_raw_cr() {
        assert_eq!(
            &sse_event(b"{\"a\":\r1}")[..],
            b"event: message\ndata: {\"a\": 1}\n\n"
        );
    }
}
