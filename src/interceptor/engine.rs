//! The rules applied to whole messages: what becomes of a client's POST body, of a JSON
//! response body and of one SSE event's data. No Pingora: the proxy phases act on the plans
//! returned here.
//!
//! Every entry point starts with the fast path: the borrowed peek (or, for SSE events, the
//! [`sniff`]) names each message's class, and a message in no class a rule can match is left
//! as its original bytes, never parsed into a `serde_json::Value`. Only messages a rule may
//! match are parsed, evaluated and, when changed, serialized again.
//!
//! A response is matched by the method (and tool or resource) of the request it answers,
//! found by id among the requests of the same exchange ([`Call`]). Server messages (JSON
//! responses, SSE events) are in `server_msgs.rs`.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::edit;
use super::rules::{From, Kind, MessageView, RuleSet, Terminal};
use crate::mcp::peek::{MessageKind, Peek};
use crate::mcp::sniff::sniff;

/// JSON-RPC "invalid params": what an MCP server answers for a tool it does not have.
const UNKNOWN_TOOL: i64 = -32602;

/// The id of the `ping` the proxy adds to a batch left with notifications only: a batch of
/// notifications gets a bodiless 202, which the proxy's own answers could not join. With the
/// ping the upstream answers with a body; the ping's answer is taken out again.
pub const PROBE_ID: &str = "\"shadowcat:probe\"";
const PROBE: &str = r#"{"jsonrpc":"2.0","id":"shadowcat:probe","method":"ping"}"#;

/// Is this message (or SSE event data) the answer to the proxy's probe?
pub fn is_probe(message: &[u8]) -> bool {
    sniff(message).is_some_and(|s| s.id == Some(PROBE_ID.as_bytes()))
}

/// One action taken: the rule and the action's name (`block`, `mock`, `drop`, `set`,
/// `remove`, `hide_tools`, `delay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'r> {
    pub rule: &'r str,
    pub action: &'static str,
}

/// A request of the exchange, so the responses to it can be matched by its method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The id's raw JSON text, as the response echoes it.
    pub id: Box<str>,
    pub method: Box<str>,
    pub name: Option<Box<str>>,
    pub uri: Option<Box<str>>,
}

/// The requests (members with an id and a method) of a peeked body.
pub fn calls_of(peek: &Peek<'_>) -> Vec<Call> {
    peek.messages()
        .iter()
        .filter(|m| m.is_request())
        .filter_map(|m| {
            Some(Call {
                id: m.id?.get().into(),
                method: m.method.as_deref()?.into(),
                name: m.name.as_deref().map(Box::from),
                uri: m.uri.as_deref().map(Box::from),
            })
        })
        .collect()
}

pub(super) fn call_for<'c>(calls: &'c [Call], id: Option<&[u8]>) -> Option<&'c Call> {
    let id = id?;
    calls.iter().find(|c| c.id.as_bytes() == id)
}

/// What becomes of a client's POST body.
#[derive(Debug, Default)]
pub struct RequestPlan<'r> {
    pub hits: Vec<Hit<'r>>,
    /// The body to forward instead of the original (members edited or taken out).
    pub body: Option<Bytes>,
    /// Members still going upstream; 0 means the proxy answers alone.
    pub forwarded: usize,
    /// Of those, the requests (which the upstream answers with JSON or SSE, not 202).
    pub forwarded_requests: usize,
    /// The proxy's own answers (JSON-RPC responses), in member order.
    pub answers: Vec<Bytes>,
    pub delay: Duration,
    pub batch: bool,
    /// The forwarded batch ends with the proxy's probe `ping` (see [`PROBE_ID`]).
    pub probe: bool,
}

impl RequestPlan<'_> {
    /// No rule touched the body.
    pub fn is_pass(&self) -> bool {
        self.hits.is_empty()
    }
}

/// Decides a client's POST body. `upstream` is the name of the upstream it would go to.
pub fn plan_request<'r>(
    rules: &'r RuleSet,
    body: &[u8],
    peeked: &Peek<'_>,
    upstream: Option<&str>,
) -> RequestPlan<'r> {
    let msgs = peeked.messages();
    let mut plan = RequestPlan {
        forwarded: msgs.len(),
        forwarded_requests: msgs.iter().filter(|m| m.is_request()).count(),
        batch: peeked.is_batch(),
        ..RequestPlan::default()
    };
    let wanted: Vec<bool> = msgs
        .iter()
        .map(|m| client_may_match(rules, m.kind, m.method.as_deref()))
        .collect();
    if !wanted.contains(&true) {
        return plan;
    }
    let Some(members) = members(body, peeked.is_batch()) else {
        return plan;
    };
    let mut out: Vec<Member> = Vec::with_capacity(members.len());
    let mut changed = false;
    for (i, raw) in members.iter().enumerate() {
        let kind = msgs.get(i).and_then(|m| client_kind(m.kind));
        let parsed = match (wanted.get(i), kind) {
            (Some(true), Some(kind)) => serde_json::from_str::<Value>(raw.get())
                .ok()
                .map(|v| (kind, v)),
            _ => None,
        };
        let Some((kind, mut value)) = parsed else {
            out.push(Member::Original);
            continue;
        };
        // The id as the client wrote it: a `Value` keeps numbers as f64, so an id such as
        // 123456789012345678901234567890 or 1.0e5 would come back as another number.
        let id = msgs.get(i).and_then(|m| m.id);
        match apply(
            rules,
            From::Client,
            kind,
            None,
            &mut value,
            upstream,
            &mut plan,
        ) {
            Outcome::Keep { edited: false } => out.push(Member::Original),
            Outcome::Keep { edited: true } => match to_raw_keeping_id(&value, id) {
                Ok(v) => {
                    changed = true;
                    out.push(Member::Edited(v));
                }
                Err(_) => out.push(Member::Original),
            },
            Outcome::Remove(answer) => {
                changed = true;
                plan.forwarded -= 1;
                if kind == Kind::Request {
                    plan.forwarded_requests -= 1;
                }
                plan.answers.extend(answer.map(|a| response(id, a)));
                out.push(Member::Gone);
            }
        }
    }
    if changed && plan.forwarded > 0 {
        let kept: Vec<&RawValue> = members
            .iter()
            .zip(&out)
            .filter_map(|(orig, new)| match new {
                Member::Original => Some(*orig),
                Member::Edited(v) => Some(&**v),
                Member::Gone => None,
            })
            .collect();
        plan.probe = plan.batch && plan.forwarded_requests == 0 && !plan.answers.is_empty();
        let probe = plan.probe.then_some(PROBE);
        plan.body = Some(if plan.batch {
            join_array(kept.iter().map(|v| v.get()).chain(probe))
        } else {
            kept.first()
                .map_or_else(Bytes::new, |v| Bytes::copy_from_slice(v.get().as_bytes()))
        });
    }
    plan
}

/// A batch member after the rules.
enum Member {
    Original,
    Edited(Box<RawValue>),
    Gone,
}

fn client_kind(kind: MessageKind) -> Option<Kind> {
    match kind {
        MessageKind::Request => Some(Kind::Request),
        MessageKind::Notification => Some(Kind::Notification),
        MessageKind::Response | MessageKind::Error => Some(Kind::Response),
        MessageKind::Invalid => None,
    }
}

fn client_may_match(rules: &RuleSet, kind: MessageKind, method: Option<&str>) -> bool {
    let Some(kind) = client_kind(kind) else {
        return false;
    };
    let method = method.unwrap_or("");
    rules.may_match(From::Client, kind, method)
        || (kind == Kind::Request && method == "tools/call" && rules.hides_tools())
}

/// The members of a body as raw JSON (one for a single message).
pub(super) fn members(body: &[u8], batch: bool) -> Option<Vec<&RawValue>> {
    if batch {
        serde_json::from_slice(body).ok()
    } else {
        serde_json::from_slice::<&RawValue>(body)
            .ok()
            .map(|v| vec![v])
    }
}

pub(super) fn join_array<'a>(items: impl Iterator<Item = &'a str>) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item.as_bytes());
    }
    out.push(b']');
    Bytes::from(out)
}

/// The JSON array of a response body's messages (an object, an array, or nothing) and the
/// proxy's `answers`; the answer to the proxy's probe is left out.
pub fn merge_answers(body: &[u8], answers: &[Bytes]) -> Bytes {
    let body = body.trim_ascii();
    let mut parts: Vec<&str> = Vec::with_capacity(answers.len() + 1);
    let keep = |m: &&RawValue| !is_probe(m.get().as_bytes());
    if let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(body) {
        parts.extend(items.into_iter().filter(keep).map(RawValue::get));
    } else if let Ok(one) = serde_json::from_slice::<&RawValue>(body) {
        parts.extend(Some(one).filter(keep).map(RawValue::get));
    } else if !body.is_empty() {
        // Not JSON: passed on as it came, rather than lost.
        parts.push(std::str::from_utf8(body).unwrap_or("null"));
    }
    parts.extend(
        answers
            .iter()
            .map(|a| std::str::from_utf8(a).unwrap_or("null")),
    );
    join_array(parts.into_iter())
}

/// The proxy's answer to a request: its result, or an error code and message.
pub(super) type Answer = Result<Value, (i64, String)>;

/// What becomes of one message.
pub(super) enum Outcome {
    Keep {
        edited: bool,
    },
    /// Not forwarded; a request gets the proxy's answer instead (framed by the caller, with
    /// the id's raw text).
    Remove(Option<Answer>),
}

/// Evaluates the rules on one parsed message and applies what they decide.
pub(super) fn apply<'r>(
    rules: &'r RuleSet,
    from: From,
    kind: Kind,
    call: Option<&Call>,
    value: &mut Value,
    upstream: Option<&str>,
    plan: &mut RequestPlan<'r>,
) -> Outcome {
    let str_at = |v: &Value, key: &str| -> Option<String> {
        v.get("params")?.get(key)?.as_str().map(str::to_owned)
    };
    let method = match call {
        Some(c) => c.method.to_string(),
        None => value
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    };
    let tool = call.map_or_else(
        || str_at(value, "name"),
        |c| c.name.as_deref().map(str::to_owned),
    );
    let uri = call.map_or_else(
        || str_at(value, "uri"),
        |c| c.uri.as_deref().map(str::to_owned),
    );
    if let (From::Client, Kind::Request, "tools/call", Some(t)) =
        (from, kind, method.as_str(), &tool)
    {
        if let Some(rule) = rules.hidden_tool(upstream, t) {
            plan.hits.push(Hit {
                rule,
                action: "hide_tools",
            });
            let answer = Err((UNKNOWN_TOOL, format!("Unknown tool: {t}")));
            return Outcome::Remove(Some(answer));
        }
    }
    let view = MessageView {
        from,
        kind,
        method: &method,
        tool: tool.as_deref(),
        uri: uri.as_deref(),
        upstream,
        params: value.get("params"),
    };
    let d = rules.evaluate(&view);
    plan.hits
        .extend(d.hits.iter().map(|&(rule, action)| Hit { rule, action }));
    plan.delay += d.delay;
    if let Some((_, terminal)) = d.terminal {
        let answer = match terminal {
            Terminal::Block { code, message } => Some(Err((*code, message.clone()))),
            Terminal::Mock(m) => Some(m.clone()),
            Terminal::Drop => None,
        };
        return Outcome::Remove(answer.filter(|_| kind == Kind::Request));
    }
    let mut edited = false;
    for (pointer, new) in &d.set {
        match edit::set(value, pointer, new.clone()) {
            Ok(()) => edited = true,
            Err(e) => tracing::warn!(error = %e, method = %method, "interceptor set not applied"),
        }
    }
    for pointer in &d.remove {
        edited |= value.pointer(pointer).is_some();
        edit::remove(value, pointer);
    }
    if !d.hide_tools.is_empty() {
        if let Some(result) = value.get_mut("result") {
            edited |= edit::hide_tools(result, &d.hide_tools) > 0;
        }
    }
    Outcome::Keep { edited }
}

/// A JSON-RPC response with the request's id, echoed as its raw text (`None`: `null`).
pub fn response(id: Option<&RawValue>, outcome: Result<Value, (i64, String)>) -> Bytes {
    #[derive(Serialize)]
    struct Error<'a> {
        code: i64,
        message: &'a str,
    }
    #[derive(Serialize)]
    struct Response<'a> {
        jsonrpc: &'static str,
        id: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<Error<'a>>,
    }
    let (result, error) = match &outcome {
        Ok(result) => (Some(result), None),
        Err((code, message)) => (
            None,
            Some(Error {
                code: *code,
                message,
            }),
        ),
    };
    let body = Response {
        jsonrpc: "2.0",
        id,
        result,
        error,
    };
    // Serializing plain data into memory cannot fail; the fallback only keeps this total.
    Bytes::from(serde_json::to_vec(&body).unwrap_or_else(|_| b"null".to_vec()))
}

/// The id of a message as its raw text (`None` when absent, or when the member is not an
/// object with one `id`).
pub(super) fn raw_id(member: &RawValue) -> Option<&RawValue> {
    #[derive(Deserialize)]
    struct IdOf<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    serde_json::from_str::<IdOf<'_>>(member.get()).ok()?.id
}

/// An edited message as JSON text, with its id as the raw text it came with unless a rule
/// changed it (through a `Value` an id like 123456789012345678901234567890 would lose digits).
pub(super) fn to_raw_keeping_id(
    value: &Value,
    id: Option<&RawValue>,
) -> serde_json::Result<Box<RawValue>> {
    struct KeepId<'a> {
        map: &'a serde_json::Map<String, Value>,
        id: &'a RawValue,
    }
    impl Serialize for KeepId<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut out = s.serialize_map(Some(self.map.len()))?;
            for (k, v) in self.map {
                if k == "id" {
                    out.serialize_entry(k, self.id)?;
                } else {
                    out.serialize_entry(k, v)?;
                }
            }
            out.end()
        }
    }
    let unchanged =
        |id: &RawValue| serde_json::from_str::<Value>(id.get()).ok().as_ref() == value.get("id");
    match (value.as_object(), id) {
        (Some(map), Some(id)) if unchanged(id) => {
            serde_json::value::to_raw_value(&KeepId { map, id })
        }
        _ => serde_json::value::to_raw_value(value),
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
