//! The rules on server messages: a JSON response body, and one SSE event's data. Both work
//! on the members a rule may match (by the method of the request a response answers) and
//! leave every other member as its original text.

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;

use super::engine::{
    apply, call_for, join_array, members, raw_id, to_raw_keeping_id, Call, Hit, Outcome,
    RequestPlan,
};
use super::rules::{From, Kind, RuleSet};
use crate::mcp::peek::{self, MessageKind};
use crate::mcp::sniff::sniff;

/// Applies server-side rules to a JSON response body; `Some` is the changed body.
pub fn plan_response<'r>(
    rules: &'r RuleSet,
    body: &[u8],
    calls: &[Call],
    upstream: Option<&str>,
    hits: &mut Vec<Hit<'r>>,
) -> Option<Bytes> {
    let peeked = peek::peek(body).ok()?;
    let wanted: Vec<Wanted<'_>> = peeked
        .messages()
        .iter()
        .map(|m| {
            let call = call_for(calls, m.id.map(|i| i.get().as_bytes()))?;
            let answer = matches!(m.kind, MessageKind::Response | MessageKind::Error);
            (answer && rules.may_match(From::Server, Kind::Response, &call.method))
                .then_some((Kind::Response, Some(call)))
        })
        .collect();
    match apply_server(rules, body, peeked.is_batch(), &wanted, upstream, hits)? {
        Changed::To(text) => Some(Bytes::from(text)),
        // Server rules cannot drop a response (refused at load).
        Changed::Gone => None,
    }
}

/// What becomes of one SSE event (the codec's verdict).
pub type EventPlan = crate::transport::sse::Verdict;

/// Applies server-side rules to one SSE event's data (the JSON-RPC message it carries).
pub fn plan_event<'r>(
    rules: &'r RuleSet,
    data: &[u8],
    calls: &[Call],
    upstream: Option<&str>,
    hits: &mut Vec<Hit<'r>>,
) -> EventPlan {
    // The fast path: the sniffer names the message's class without parsing it.
    if let Some(s) = sniff(data) {
        let (kind, method) = match (s.method, s.id) {
            (Some(m), Some(_)) => (Kind::Request, m),
            (Some(m), None) => (Kind::Notification, m),
            (None, id) if s.has_result || s.has_error => match call_for(calls, id) {
                Some(c) => (Kind::Response, &*c.method),
                None => return EventPlan::Pass,
            },
            _ => return EventPlan::Pass,
        };
        if !rules.may_match(From::Server, kind, method) {
            return EventPlan::Pass;
        }
    }
    let Ok(peeked) = peek::peek(data) else {
        return EventPlan::Pass;
    };
    let wanted: Vec<Wanted<'_>> = peeked
        .messages()
        .iter()
        .map(|m| {
            let (kind, call) = match m.kind {
                MessageKind::Request => (Kind::Request, None),
                MessageKind::Notification => (Kind::Notification, None),
                MessageKind::Response | MessageKind::Error => (
                    Kind::Response,
                    Some(call_for(calls, m.id.map(|i| i.get().as_bytes()))?),
                ),
                MessageKind::Invalid => return None,
            };
            let method = call.map_or(m.method.as_deref().unwrap_or(""), |c| &*c.method);
            rules
                .may_match(From::Server, kind, method)
                .then_some((kind, call))
        })
        .collect();
    match apply_server(rules, data, peeked.is_batch(), &wanted, upstream, hits) {
        None => EventPlan::Pass,
        Some(Changed::Gone) => EventPlan::Drop,
        Some(Changed::To(text)) => EventPlan::Replace(text),
    }
}

/// A member a server rule may match: its kind, and the request it answers (responses).
type Wanted<'c> = Option<(Kind, Option<&'c Call>)>;

/// A server message after the rules.
enum Changed {
    /// Every member was dropped.
    Gone,
    /// The new JSON text (a batch stays a batch).
    To(String),
}

/// Parses the `wanted` members of a server message and applies the rules to them; `None`
/// when nothing changed (the original bytes stand).
fn apply_server<'r>(
    rules: &'r RuleSet,
    text: &[u8],
    batch: bool,
    wanted: &[Wanted<'_>],
    upstream: Option<&str>,
    hits: &mut Vec<Hit<'r>>,
) -> Option<Changed> {
    if wanted.iter().all(Option::is_none) {
        return None;
    }
    let members = members(text, batch)?;
    let mut plan = RequestPlan::default();
    let mut changed = false;
    let mut out: Vec<Box<RawValue>> = Vec::with_capacity(members.len());
    for (raw, want) in members.iter().zip(wanted) {
        let parsed = want.map(|w| (w, serde_json::from_str::<Value>(raw.get())));
        let Some(((kind, call), Ok(mut value))) = parsed else {
            out.push((*raw).to_owned());
            continue;
        };
        let from = From::Server;
        match apply(rules, from, kind, call, &mut value, upstream, &mut plan) {
            Outcome::Keep { edited: false } => out.push((*raw).to_owned()),
            Outcome::Keep { edited: true } => match to_raw_keeping_id(&value, raw_id(raw)) {
                Ok(v) => {
                    changed = true;
                    out.push(v);
                }
                Err(_) => out.push((*raw).to_owned()),
            },
            Outcome::Remove(_) => changed = true,
        }
    }
    hits.extend(plan.hits);
    if !changed {
        return None;
    }
    Some(match (out.len(), batch) {
        (0, _) => Changed::Gone,
        (_, true) => Changed::To(
            String::from_utf8_lossy(&join_array(out.iter().map(|v| v.get()))).into_owned(),
        ),
        (_, false) => Changed::To(out[0].get().to_owned()),
    })
}
