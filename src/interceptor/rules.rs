//! Compiled rules: validated once at load, evaluated per message.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::raw::{RawAction, RawBlock, RawRule, RawRuleFile};
use crate::config::parse_duration;
use crate::glob::Glob;

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum From {
    Client,
    Server,
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// How a chain ends early.
#[derive(Debug, Clone, PartialEq)]
pub enum Terminal {
    /// Answer a client request with this JSON-RPC error; the upstream never sees it.
    Block { code: i64, message: String },
    /// Answer a client request with this result (or error); the upstream never sees it.
    Mock(Result<Value, (i64, String)>),
    /// Forward nothing (a notification, or a server message on an SSE stream).
    Drop,
}

/// A rule's effect.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Action {
    pub terminal: Option<Terminal>,
    pub hide_tools: Vec<Glob>,
    /// JSON pointer into the whole message → new value.
    pub set: Vec<(String, Value)>,
    pub remove: Vec<String>,
    pub delay: Duration,
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    from: From,
    kind: Option<Kind>,
    method: Option<Glob>,
    tool: Option<Glob>,
    uri: Option<Glob>,
    params: Vec<(String, Value)>,
    upstream: Option<String>,
    pub action: Action,
}

/// A message as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    pub from: From,
    pub kind: Kind,
    /// For a response: the method of the request it answers.
    pub method: &'a str,
    pub tool: Option<&'a str>,
    pub uri: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub params: Option<&'a Value>,
}

/// What the matching rules decided, in file order: edits and delays accumulate until the first
/// terminal action, which ends the chain.
#[derive(Debug, Default, PartialEq)]
pub struct Decision<'r> {
    pub matched: Vec<&'r str>,
    /// (rule, action) for every action of every matched rule: metrics and logs.
    pub hits: Vec<(&'r str, &'static str)>,
    pub terminal: Option<(&'r str, &'r Terminal)>,
    pub set: Vec<&'r (String, Value)>,
    pub remove: Vec<&'r str>,
    pub hide_tools: Vec<&'r Glob>,
    pub delay: Duration,
}

/// A rule file that failed validation; names the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

/// Every rule, in file order, and the message classes any of them can match.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Exact methods (no `*`) of rules, per (from, kind or any) class (see [`class`]); looked
    /// up by `&str`, so the fast path allocates nothing.
    exact: [HashSet<String>; 8],
    /// Rules with a method glob or no method: checked one by one in `may_match`.
    wide: Vec<usize>,
    client_rules: bool,
    server_rules: bool,
    hides_tools: bool,
}

/// Index of a (from, kind or any) class in [`RuleSet::exact`].
fn class(from: From, kind: Option<Kind>) -> usize {
    let f = match from {
        From::Client => 0,
        From::Server => 4,
    };
    f + match kind {
        None => 0,
        Some(Kind::Request) => 1,
        Some(Kind::Notification) => 2,
        Some(Kind::Response) => 3,
    }
}

impl RuleSet {
    pub fn load(path: &Path) -> Result<Self, RuleError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RuleError(format!("{}: cannot read: {e}", path.display())))?;
        Self::from_yaml(&text)
    }

    pub fn from_yaml(text: &str) -> Result<Self, RuleError> {
        let raw: RawRuleFile = serde_yaml::from_str(text)
            .map_err(|e| RuleError(format!("rules: {}", one_line(&e.to_string()))))?;
        Self::compile_all(raw.rules)
    }

    /// The rules given inline in the main config (`interceptors.rules`).
    pub fn from_yaml_value(rules: serde_yaml::Value) -> Result<Self, RuleError> {
        let raw: Vec<RawRule> = serde_yaml::from_value(rules)
            .map_err(|e| RuleError(format!("rules: {}", one_line(&e.to_string()))))?;
        Self::compile_all(raw)
    }

    fn compile_all(raw: Vec<RawRule>) -> Result<Self, RuleError> {
        let mut names = HashSet::new();
        let mut rules = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let at = format!("rules[{i}] ({:?})", r.name);
            if r.name.trim().is_empty() {
                return Err(RuleError(format!("rules[{i}]: a rule needs a name")));
            }
            if !names.insert(r.name.clone()) {
                return Err(RuleError(format!("{at}: duplicate rule name")));
            }
            rules.push(compile(r).map_err(|m| RuleError(format!("{at}: {m}")))?);
        }
        let mut set = Self {
            rules,
            ..Self::default()
        };
        for (i, r) in set.rules.iter().enumerate() {
            match &r.method {
                Some(m) if !m.as_str().contains('*') => {
                    set.exact[class(r.from, r.kind)].insert(m.as_str().to_owned());
                }
                _ => set.wide.push(i),
            }
            set.client_rules |= r.from == From::Client;
            set.server_rules |= r.from == From::Server;
            set.hides_tools |= !r.action.hide_tools.is_empty();
        }
        Ok(set)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Any rule about client messages (requests, notifications, responses).
    pub fn has_client_rules(&self) -> bool {
        self.client_rules
    }

    /// Any rule about server messages (JSON responses, SSE events).
    pub fn has_server_rules(&self) -> bool {
        self.server_rules
    }

    /// Any `hide_tools` action (calls to hidden tools are then blocked).
    pub fn hides_tools(&self) -> bool {
        self.hides_tools
    }

    /// The fast path: can any rule match this class of message? When not, the message is
    /// never parsed beyond the peek. Allocates nothing.
    pub fn may_match(&self, from: From, kind: Kind, method: &str) -> bool {
        !self.rules.is_empty()
            && (self.exact[class(from, Some(kind))].contains(method)
                || self.exact[class(from, None)].contains(method)
                || self.wide.iter().any(|&i| {
                    let r = &self.rules[i];
                    r.from == from
                        && r.kind.is_none_or(|k| k == kind)
                        && r.method.as_ref().is_none_or(|g| g.matches(method))
                }))
    }

    /// Evaluates the rules against one message.
    pub fn evaluate(&self, msg: &MessageView<'_>) -> Decision<'_> {
        let mut d = Decision::default();
        for rule in self.rules.iter().filter(|r| r.matches(msg)) {
            d.matched.push(&rule.name);
            let a = &rule.action;
            d.hits
                .extend(a.labels().map(|label| (rule.name.as_str(), label)));
            d.set.extend(a.set.iter());
            d.remove.extend(a.remove.iter().map(String::as_str));
            d.hide_tools.extend(a.hide_tools.iter());
            d.delay += a.delay;
            if let Some(t) = &a.terminal {
                d.terminal = Some((&rule.name, t));
                break;
            }
        }
        d
    }

    /// Tools hidden from `tools/list` answers (from `upstream`) are also blocked when called.
    pub fn hidden_tool(&self, upstream: Option<&str>, tool: &str) -> Option<&str> {
        self.rules
            .iter()
            .filter(|r| r.upstream.is_none() || r.upstream.as_deref() == upstream)
            .find(|r| r.action.hide_tools.iter().any(|g| g.matches(tool)))
            .map(|r| r.name.as_str())
    }
}

impl Action {
    /// The action's parts by their names in the rule file.
    fn labels(&self) -> impl Iterator<Item = &'static str> + '_ {
        let terminal = self.terminal.as_ref().map(|t| match t {
            Terminal::Block { .. } => "block",
            Terminal::Mock(_) => "mock",
            Terminal::Drop => "drop",
        });
        terminal.into_iter().chain(
            [
                (!self.set.is_empty()).then_some("set"),
                (!self.remove.is_empty()).then_some("remove"),
                (!self.hide_tools.is_empty()).then_some("hide_tools"),
                (!self.delay.is_zero()).then_some("delay"),
            ]
            .into_iter()
            .flatten(),
        )
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

impl Rule {
    /// The upstream this rule is limited to, if any.
    pub fn upstream(&self) -> Option<&str> {
        self.upstream.as_deref()
    }

    fn matches(&self, m: &MessageView<'_>) -> bool {
        let glob = |g: &Option<Glob>, v: Option<&str>| {
            g.as_ref().is_none_or(|g| v.is_some_and(|v| g.matches(v)))
        };
        self.from == m.from
            && self.kind.is_none_or(|k| k == m.kind)
            && glob(&self.method, Some(m.method))
            && glob(&self.tool, m.tool)
            && glob(&self.uri, m.uri)
            && self
                .upstream
                .as_deref()
                .is_none_or(|u| Some(u) == m.upstream)
            && self
                .params
                .iter()
                .all(|(p, want)| m.params.and_then(|v| v.pointer(p)) == Some(want))
    }
}

fn pointer(p: &str) -> Result<String, String> {
    let ok = (p.is_empty() || p.starts_with('/'))
        && p.split("~")
            .skip(1)
            .all(|s| s.starts_with('0') || s.starts_with('1'));
    ok.then(|| p.to_owned())
        .ok_or_else(|| format!("{p:?} is not a JSON pointer (/a/b, with ~0 and ~1 escapes)"))
}

fn glob(p: Option<String>, what: &str) -> Result<Option<Glob>, String> {
    match p {
        Some(p) if p.trim().is_empty() => Err(format!("empty {what} pattern")),
        Some(p) => Ok(Some(Glob::new(&p, false))),
        None => Ok(None),
    }
}

fn compile(r: RawRule) -> Result<Rule, String> {
    let m = r.matcher;
    let from = match m.from.as_deref() {
        None | Some("client") => From::Client,
        Some("server") => From::Server,
        Some(o) => return Err(format!("match.from: {o:?} (use client or server)")),
    };
    let kind = match m.kind.as_deref() {
        None => None,
        Some("request") => Some(Kind::Request),
        Some("notification") => Some(Kind::Notification),
        Some("response") => Some(Kind::Response),
        Some(o) => {
            return Err(format!(
                "match.kind: {o:?} (use request, notification or response)"
            ))
        }
    };
    let method = glob(m.method, "method")?;
    let params = m
        .params
        .into_iter()
        .map(|(p, v)| pointer(&p).map(|p| (p, v)))
        .collect::<Result<_, _>>()?;
    let action = action(r.action)?;
    let rule = Rule {
        name: r.name,
        from,
        kind,
        tool: glob(m.tool, "tool")?,
        uri: glob(m.uri, "uri")?,
        upstream: m.upstream,
        params,
        method,
        action,
    };
    check_fits(&rule)?;
    Ok(rule)
}

fn action(raw: RawAction) -> Result<Action, String> {
    let map = match raw {
        RawAction::Word(w) if w == "drop" => {
            return Ok(Action {
                terminal: Some(Terminal::Drop),
                ..Action::default()
            })
        }
        RawAction::Word(w) => return Err(format!("action: {w:?} (the only bare action is drop)")),
        RawAction::Map(m) => m,
    };
    let block = |b: RawBlock| Terminal::Block {
        code: b.code.unwrap_or(-32001),
        message: b.message.unwrap_or_else(|| "blocked by policy".into()),
    };
    let mut terminals = Vec::new();
    if let Some(b) = map.block {
        terminals.push(block(b));
    }
    if let Some(mock) = map.mock {
        terminals.push(Terminal::Mock(match (mock.result, mock.error) {
            (Some(r), None) => Ok(r),
            (None, Some(e)) => Err((
                e.code.unwrap_or(-32603),
                e.message.unwrap_or_else(|| "mocked error".into()),
            )),
            _ => return Err("action.mock: give exactly one of result and error".into()),
        }));
    }
    if map.drop {
        terminals.push(Terminal::Drop);
    }
    if terminals.len() > 1 {
        return Err("action: at most one of block, mock and drop".into());
    }
    let action = Action {
        terminal: terminals.pop(),
        hide_tools: map
            .hide_tools
            .unwrap_or_default()
            .into_iter()
            .map(|g| glob(Some(g), "hide_tools").map(|g| g.unwrap_or_else(|| Glob::new("", false))))
            .collect::<Result<_, _>>()?,
        set: map
            .set
            .unwrap_or_default()
            .into_iter()
            .map(|(p, v)| pointer(&p).map(|p| (p, v)))
            .collect::<Result<_, _>>()?,
        remove: map
            .remove
            .unwrap_or_default()
            .iter()
            .map(|p| pointer(p))
            .collect::<Result<_, _>>()?,
        delay: match map.delay {
            Some(d) => parse_duration(&d).map_err(|e| format!("action.delay: {e}"))?,
            None => Duration::ZERO,
        },
    };
    if action == Action::default() {
        return Err("action: nothing to do".into());
    }
    Ok(action)
}

/// An action that cannot apply to what its rule matches is an error at load, not a surprise
/// in production.
fn check_fits(r: &Rule) -> Result<(), String> {
    let method = r.method.as_ref().map(Glob::as_str);
    let notification = r.kind == Some(Kind::Notification)
        || (r.kind.is_none() && method.is_some_and(|m| m.starts_with("notifications/")));
    match &r.action.terminal {
        Some(Terminal::Block { .. }) if r.from == From::Server => {
            return Err("block applies to client requests, not server messages (use drop)".into())
        }
        Some(Terminal::Block { .. } | Terminal::Mock(_)) if matches!(r.kind, Some(Kind::Notification | Kind::Response)) => {
            return Err("block and mock answer client requests; this rule matches no request".into())
        }
        Some(Terminal::Mock(_)) if r.from == From::Server => {
            return Err("mock answers client requests, not server messages".into())
        }
        Some(Terminal::Drop) if !notification => {
            return Err("drop applies to notifications: a dropped request or response would leave its peer waiting".into())
        }
        _ => {}
    }
    if !r.action.delay.is_zero() && r.from == From::Server {
        return Err("delay applies to client messages (the proxy holds them before the upstream); server messages are never held".into());
    }
    if !r.action.hide_tools.is_empty()
        && (r.from != From::Server
            || method != Some("tools/list")
            || r.kind.is_some_and(|k| k != Kind::Response))
    {
        return Err("hide_tools applies to {from: server, method: tools/list} answers".into());
    }
    Ok(())
}
