//! What a replay serves: the recorded exchanges of one or more tapes, indexed by JSON-RPC
//! method and parameters.
//!
//! Two requests match when their methods are equal and their `params` are equal once
//! normalized: `_meta` (progress tokens, client hints) and every `--ignore` pointer
//! (relative to `params`: `/cursor`, `/arguments/timestamp`) removed, object keys in sorted
//! order. The JSON-RPC `id` never counts. The same request recorded several times is
//! answered with each recording in turn (the last one again once they run out), so a
//! client that polls sees what it saw. A request with no match gets the closest recorded
//! one by name: the same method with the nearest parameters (edit distance), else the
//! nearest method.

use crate::mcp::canonical::canonical;
use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use super::check::{self, Tape};
use super::format::{Direction, Headers, Line};

/// One recorded answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A non-SSE response: status and body (none for 202 and the like).
    Json {
        status: u16,
        headers: Headers,
        body: Option<String>,
    },
    /// An SSE response, event by event.
    Sse { status: u16, events: Vec<Event> },
}

/// One recorded SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Time since the previous event (the first: since the request).
    pub delay_ms: u64,
    pub id: Option<String>,
    pub event: Option<String>,
    pub retry: Option<u64>,
    pub data: Option<String>,
}

/// One recorded request and its answer.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// `params`, normalized (see the module doc).
    pub params: String,
    /// The request as recorded.
    pub request: Value,
    pub answer: Answer,
}

/// The recorded exchanges of a replay.
#[derive(Debug, Default)]
pub struct Library {
    /// The first recorded `initialize`.
    pub initialize: Option<Recorded>,
    /// The recorded server issued a session id (`initialize` answered with one).
    pub sessions: bool,
    /// The first recorded GET's answer (the standalone stream, or its refusal).
    pub get: Option<Answer>,
    exchanges: Vec<Recorded>,
    index: HashMap<(String, String), Vec<usize>>,
    ignore: Vec<Vec<String>>,
}

// === impl Library ===

impl Library {
    /// Reads and checks the tapes; `ignore` are JSON pointers into `params`.
    pub fn load(paths: &[PathBuf], ignore: &[String]) -> Result<Self, String> {
        let mut tapes = Vec::new();
        for path in paths {
            tapes.push(check::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        Self::from_tapes(&tapes, ignore)
    }

    pub fn from_tapes(tapes: &[Tape], ignore: &[String]) -> Result<Self, String> {
        let mut lib = Self::default();
        for pointer in ignore {
            let Some(path) = pointer.strip_prefix('/') else {
                return Err(format!(
                    "--ignore {pointer:?}: a JSON pointer starts with '/'"
                ));
            };
            lib.ignore.push(
                path.split('/')
                    .map(|s| s.replace("~1", "/").replace("~0", "~"))
                    .collect(),
            );
        }
        // The parts of one rotated tape are read as one: an exchange may span two.
        let mut groups: Vec<Vec<&Tape>> = Vec::new();
        for tape in tapes {
            let h = &tape.header;
            let same = |t: &&Tape| {
                t.header.started_unix_ms == h.started_unix_ms
                    && t.header.principal == h.principal
                    && t.header.upstream == h.upstream
            };
            match groups.iter_mut().find(|g| g.first().is_some_and(same)) {
                Some(group) => group.push(tape),
                None => groups.push(vec![tape]),
            }
        }
        for mut group in groups {
            group.sort_by_key(|t| t.header.part);
            lib.add(group.iter().flat_map(|t| &t.lines));
        }
        if lib.exchanges.is_empty() && lib.initialize.is_none() {
            return Err("the tapes hold no request with an answer".to_owned());
        }
        Ok(lib)
    }

    /// Recorded requests with an answer (the initialize one included).
    pub fn len(&self) -> usize {
        self.exchanges.len() + usize::from(self.initialize.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add<'a>(&mut self, lines: impl Iterator<Item = &'a Line>) {
        let mut order = Vec::new();
        let mut by: HashMap<u64, Vec<&Line>> = HashMap::new();
        for line in lines {
            by.entry(line.exchange)
                .or_insert_with(|| {
                    order.push(line.exchange);
                    Vec::new()
                })
                .push(line);
        }
        for x in order {
            let lines = &by[&x];
            let Some(req) = lines.iter().find(|l| l.dir == Direction::ClientToServer) else {
                continue;
            };
            let Some(answer) = answer(req, lines) else {
                continue;
            };
            // A success without a body: the proxy answered it itself (the cache, a rule), and
            // the tape has its status only. Not an answer to replay.
            if matches!(
                answer,
                Answer::Json {
                    status: 200..=299,
                    body: None,
                    ..
                }
            ) && req.http.as_deref() == Some("POST")
                && req.message_value().is_some_and(|m| !m["id"].is_null())
            {
                continue;
            }
            if req.http.as_deref() == Some("GET") {
                self.get.get_or_insert(answer);
                continue;
            }
            let Some(request) = req.message_value() else {
                continue;
            };
            let (Some(method), false) = (request["method"].as_str(), request["id"].is_null())
            else {
                continue;
            };
            let recorded = Recorded {
                method: method.to_owned(),
                params: self.normalize(&request["params"]),
                request: request.clone(),
                answer,
            };
            if method == "initialize" {
                if self.initialize.is_none() {
                    let first = lines.iter().find(|l| l.dir == Direction::ServerToClient);
                    self.sessions = first.is_some_and(|l| l.headers.contains_key("mcp-session-id"));
                    self.initialize = Some(recorded);
                }
                continue;
            }
            let key = (recorded.method.clone(), recorded.params.clone());
            self.index
                .entry(key)
                .or_default()
                .push(self.exchanges.len());
            self.exchanges.push(recorded);
        }
    }

    /// `params` without `_meta` and the ignored fields, keys sorted, as text.
    pub fn normalize(&self, params: &Value) -> String {
        let mut params = params.clone();
        if let Value::Object(map) = &mut params {
            map.remove("_meta");
        }
        for pointer in &self.ignore {
            remove_at(&mut params, pointer);
        }
        let mut out = String::new();
        canonical(&params, &mut out);
        out
    }

    /// The `nth` recording (from 0) of this request, or the last one past them.
    pub fn find(&self, method: &str, params: &str, nth: usize) -> Option<&Recorded> {
        let hits = self.index.get(&(method.to_owned(), params.to_owned()))?;
        let i = hits.get(nth).or(hits.last())?;
        self.exchanges.get(*i)
    }

    /// The recorded request nearest to this one (see the module doc).
    pub fn closest(&self, method: &str, params: &str) -> Option<&Recorded> {
        let cap = |s: &str| s.chars().take(2000).collect::<String>();
        let params = cap(params);
        self.exchanges.iter().min_by(|a, b| {
            let d = |r: &Recorded| {
                let m = if r.method == method {
                    0.0
                } else {
                    2.0 - strsim::jaro_winkler(&r.method, method)
                };
                m + 1.0 - strsim::normalized_levenshtein(&cap(&r.params), &params)
            };
            d(a).total_cmp(&d(b))
        })
    }

    /// Is any request with this method recorded?
    pub fn knows_method(&self, method: &str) -> bool {
        self.exchanges.iter().any(|r| r.method == method)
    }
}

/// A request's answer from its exchange's lines; `None` when it got none (the proxy was
/// cut off before a status).
fn answer(req: &Line, lines: &[&Line]) -> Option<Answer> {
    let responses: Vec<&&Line> = lines
        .iter()
        .filter(|l| l.dir == Direction::ServerToClient)
        .collect();
    let first = responses.first()?;
    let status = first.status?;
    if responses.iter().all(|l| l.sse.is_none()) {
        return Some(Answer::Json {
            status,
            headers: first.headers.clone(),
            body: first
                .message
                .as_ref()
                .map(|m| m.get().to_owned())
                .or_else(|| first.body.clone()),
        });
    }
    let mut events = Vec::new();
    let mut at = req.t_ms;
    for line in responses {
        let Some(mark) = &line.sse else { continue };
        if mark.end {
            break;
        }
        events.push(Event {
            delay_ms: line.t_ms.saturating_sub(at),
            id: mark.id.clone(),
            event: mark.event.clone(),
            retry: mark.retry,
            data: line
                .message
                .as_ref()
                .map(|m| m.get().to_owned())
                .or_else(|| line.body.clone()),
        });
        at = line.t_ms;
    }
    Some(Answer::Sse { status, events })
}

fn remove_at(value: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match value {
        Value::Object(map) if rest.is_empty() => {
            map.remove(first);
        }
        Value::Object(map) => {
            if let Some(v) = map.get_mut(first) {
                remove_at(v, rest);
            }
        }
        Value::Array(items) => {
            if let Some(v) = first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                if rest.is_empty() {
                    *v = Value::Null;
                } else {
                    remove_at(v, rest);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
