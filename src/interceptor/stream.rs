//! The rules as a [`Judge`] of one SSE stream's events.
//!
//! Most events are decided from their first bytes: the method, read by [`method_prefix`] as
//! soon as it has arrived, is looked up in a small per-stream memo (a stream carries few
//! distinct methods), and an event no rule can match flows on as its own bytes. The memo also
//! keeps the raw bytes that led up to each method (`{"jsonrpc":"2.0","method":"…"`): an event
//! that starts with the same bytes has the same method, so the usual event is decided by one
//! short comparison. Only events a rule may match are held whole and parsed.

use crate::mcp::sniff::{method_prefix, MethodPrefix};
use crate::transport::sse::{Early, Judge, Verdict};

use super::engine::{is_probe, Call, Hit};
use super::rules::{From, Kind, RuleSet};
use super::server_msgs::plan_event;

/// Could the rest of a message, after its first `method`, hold another top-level `method`
/// key? Only if it contains `"method"` written plainly, or a `\u` escape anywhere (the only
/// escapes that spell letters, so the only way to write `method` otherwise). Two prebuilt
/// SIMD searches; a hit sends the message to the full parse, which keeps the last key as
/// every JSON parser does.
fn later_method_possible(rest: &[u8]) -> bool {
    use std::sync::LazyLock;
    static METHOD: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"method\""));
    static ESCAPE: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\\u"));
    METHOD.find(rest).is_some() || ESCAPE.find(rest).is_some()
}

/// What a stream's events taught: message starts through their method, and methods, each
/// with whether a rule may match.
#[derive(Debug, Default)]
pub struct Memo {
    starts: Vec<(Box<[u8]>, bool)>,
    methods: Vec<(Box<str>, bool)>,
    next_start: usize,
}

impl Memo {
    pub fn new() -> Self {
        Self::default()
    }
}

/// How many entries each part of a stream's memo keeps.
const MEMO_SIZE: usize = 16;

/// The judge for one read of a stream (cheap to build; the memo outlives it). Hits borrow
/// from the rules (`'r`) only, so they outlive the judge's other borrows (`'s`).
pub struct EventJudge<'r, 's> {
    pub rules: &'r RuleSet,
    /// The requests the stream answers (POST streams).
    pub calls: &'s [Call],
    pub upstream: Option<&'s str>,
    pub memo: &'s mut Memo,
    /// The stream carries the answer to the proxy's probe, which is dropped.
    pub probe: bool,
    pub hits: Vec<Hit<'r>>,
}

impl EventJudge<'_, '_> {
    /// Can a rule match a server request or notification with this method?
    fn may_match(&mut self, method: &str) -> bool {
        let memo = &mut self.memo.methods;
        if let Some((_, may)) = memo.iter().find(|(m, _)| &**m == method) {
            return *may;
        }
        let may = self.rules.may_match(From::Server, Kind::Request, method)
            || self
                .rules
                .may_match(From::Server, Kind::Notification, method);
        if memo.len() < MEMO_SIZE {
            memo.push((method.into(), may));
        }
        may
    }

    /// Remembers that messages starting with `start` (through their method) get `may`.
    fn remember_start(&mut self, start: &[u8], may: bool) {
        let memo = &mut self.memo;
        if memo.starts.len() < MEMO_SIZE {
            memo.starts.push((start.into(), may));
        } else {
            // Full of starts that vary (request ids): replace them in turn.
            memo.starts[memo.next_start] = (start.into(), may);
            memo.next_start = (memo.next_start + 1) % MEMO_SIZE;
        }
    }

    /// Can a rule match a response on this stream?
    fn responses_wanted(&self) -> bool {
        self.probe
            || self.calls.iter().any(|c| {
                self.rules
                    .may_match(From::Server, Kind::Response, &c.method)
            })
    }
}

impl Judge for EventJudge<'_, '_> {
    fn early(&mut self, data_prefix: &[u8], complete: bool) -> Early {
        let known = self
            .memo
            .starts
            .iter()
            .find(|(s, _)| data_prefix.starts_with(s))
            .map(|(s, may)| (*may, Some(s.len())));
        let (hold, method_end) = match known {
            Some(k) => k,
            None => match method_prefix(data_prefix) {
                MethodPrefix::Method(m) => {
                    let may = self.may_match(m);
                    // Through the method's closing quote.
                    let end = m.as_ptr() as usize - data_prefix.as_ptr() as usize + m.len() + 1;
                    self.remember_start(&data_prefix[..end], may);
                    (may, Some(end))
                }
                // The top-level object ended without a method: seen whole.
                MethodPrefix::NoMethod => (self.responses_wanted(), None),
                MethodPrefix::Unknown => (true, None),
            },
        };
        let ambiguous =
            complete && method_end.is_some_and(|end| later_method_possible(&data_prefix[end..]));
        if hold || ambiguous {
            Early::Hold
        } else {
            Early::Pass
        }
    }

    fn judge(&mut self, data: &[u8]) -> Verdict {
        if self.probe && is_probe(data) {
            return Verdict::Drop;
        }
        plan_event(self.rules, data, self.calls, self.upstream, &mut self.hits)
    }
}

/// An [`EventJudge`] that owns what it judges with, for a stream that outlives its request
/// (the proxy keeps reading a resumable stream after the client left). Hits are kept by rule
/// name until taken.
#[derive(Debug)]
pub struct OwnedJudge {
    pub rules: std::sync::Arc<RuleSet>,
    pub calls: Vec<Call>,
    pub upstream: String,
    pub probe: bool,
    pub memo: Memo,
    pub hits: Vec<(Box<str>, &'static str)>,
}

impl OwnedJudge {
    fn with<T>(&mut self, f: impl FnOnce(&mut EventJudge<'_, '_>) -> T) -> T {
        let Self {
            rules,
            calls,
            upstream,
            probe,
            memo,
            hits,
        } = self;
        let mut judge = EventJudge {
            rules,
            calls,
            upstream: Some(upstream),
            memo,
            probe: *probe,
            hits: Vec::new(),
        };
        let out = f(&mut judge);
        let new = judge.hits;
        hits.extend(new.iter().map(|h| (Box::from(h.rule), h.action)));
        out
    }
}

impl Judge for OwnedJudge {
    fn early(&mut self, data_prefix: &[u8], complete: bool) -> Early {
        self.with(|j| j.early(data_prefix, complete))
    }

    fn judge(&mut self, data: &[u8]) -> Verdict {
        self.with(|j| j.judge(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge_of<'a>(rules: &'a RuleSet, memo: &'a mut Memo) -> EventJudge<'a, 'a> {
        EventJudge {
            rules,
            calls: &[],
            upstream: None,
            memo,
            probe: false,
            hits: Vec::new(),
        }
    }

    #[test]
    fn decides_from_the_start_and_remembers_it() {
        let rules = RuleSet::from_yaml(
            "rules:\n  - name: d\n    match: {from: server, method: notifications/message}\n    action: drop\n",
        )
        .unwrap();
        let mut memo = Memo::new();
        let mut judge = judge_of(&rules, &mut memo);
        let progress = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"p""#;
        assert_eq!(judge.early(progress, false), Early::Pass);
        assert_eq!(judge.early(progress, false), Early::Pass, "from the memo");
        let log = br#"{"jsonrpc":"2.0","method":"notifications/message","params":"#;
        assert_eq!(judge.early(log, false), Early::Hold);
        assert_eq!(judge.early(log, false), Early::Hold, "from the memo");
        // Same start, longer method: not fooled by the remembered prefix.
        let other = br#"{"jsonrpc":"2.0","method":"notifications/messages2"}"#;
        assert_eq!(judge.early(other, false), Early::Pass);
        assert_eq!(
            judge.early(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, true),
            Early::Pass
        );
        assert_eq!(
            judge.early(br#"{"jsonr"#, false),
            Early::Hold,
            "too short to know"
        );
        assert_eq!(memo.starts.len(), 3);
    }

    /// Regression (security): JSON parsers keep the last of duplicate keys, so a message that
    /// names a harmless method first and a dropped one later must not pass on its first.
    #[test]
    fn regression_a_second_method_key_is_never_passed_early() {
        let rules = RuleSet::from_yaml(
            "rules:\n  - name: no-sampling\n    match: {from: server, method: sampling/createMessage}\n    action: {remove: [\"/params\"]}\n",
        )
        .unwrap();
        let mut memo = Memo::new();
        let mut judge = judge_of(&rules, &mut memo);
        let sneaky = br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{},"method":"sampling/createMessage"}"#;
        assert_eq!(judge.early(sneaky, true), Early::Hold);
        let escaped =
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","\u006dethod":"sampling/createMessage"}"#;
        assert_eq!(judge.early(escaped, true), Early::Hold);
        let mid_escape =
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","m\u0065thod":"sampling/createMessage"}"#;
        assert_eq!(judge.early(mid_escape, true), Early::Hold);
        assert!(
            !judge.verify(sneaky),
            "a flowing event that turns out so is refused"
        );
        // Judged whole, the last method counts, as it does for the client.
        assert!(matches!(judge.judge(sneaky), Verdict::Replace(_)));
        let plain = br#"{"jsonrpc":"2.0","id":2,"method":"ping","params":{}}"#;
        assert_eq!(judge.early(plain, true), Early::Pass);
    }
}
